"""``mer adapt`` (issue 15, part 4): refit expert temperatures and product weights on a user's
own labelled clips. A tiny random model stands in for the shipped heads, and a fake recognizer
returns fixed per-clip logits, so no encoder loads and every number is reproducible."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from multimodal_emotion.adapt import ClipLogits, adapt, encode_items, feedback_records, \
    held_out_split
from multimodal_emotion.cli import main
from multimodal_emotion.errors import InputError, MediaError
from multimodal_emotion.evaluation import Item
from multimodal_emotion.feedback_store import FeedbackStore, heads_fingerprint
from multimodal_emotion.labels import LABELS
from multimodal_emotion.model import EmotionModel
from multimodal_emotion.types import WindowLogits

DIMS = {"audio": 12, "text": 8, "face": 6}
C = len(LABELS)


def tiny_model(seed: int = 0) -> EmotionModel:
    torch.manual_seed(seed)
    m = EmotionModel({"dims": DIMS, "experts": {k: {"hidden": 0} for k in DIMS},
                      "fusions": {"product": {"weights": {}}, "sum": {}},
                      "calibration": {"temperature": {"audio": 1.0, "text": 1.0, "face": 1.0}}})
    return m.eval()


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("base")
    tiny_model().save_pretrained(d)
    (d / "face_cnn").mkdir()
    (d / "face_cnn" / "weights.bin").write_bytes(bytes(range(256)))  # an encoder's own folder
    return d


def synthetic_clips(n: int = 420, seed: int = 0, speakers: int = 14):
    """Clips whose experts know something. With a signal ``s`` on the true label plus unit
    Gaussian noise, the calibrated logits are ``s * x``: audio gives 4x (s = 1.2: 3.3 times too
    sure), text 1x (s = 1: calibrated), face 0.6x (s = 2: 3.3 times too unsure, on every other
    clip); text is missing on one clip in five."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    clips = {}
    items = []
    for i in range(n):
        onehot = np.eye(C)[y[i]]
        logits = {"audio": 4.0 * (1.2 * onehot + rng.normal(size=C)),
                  "text": None if i % 5 == 0 else 1.0 * onehot + rng.normal(size=C),
                  "face": (0.6 * (2.0 * onehot + rng.normal(size=C))) if i % 2 else None}
        path = f"clip{i:03d}.mp4"
        clips[path] = [WindowLogits(0.0, 3.0, {m: None if v is None else v.tolist()
                                               for m, v in logits.items()})]
        items.append(Item("video", path, int(y[i]), f"spk{i % speakers}"))
    return items, clips


class FakeRecognizer:
    """Shaped like EmotionRecognizer for adapting: ``model`` and ``analyze(path)`` whose
    answer carries the clip's fixed expert logits; unknown paths are unreadable media."""

    def __init__(self, model: EmotionModel, clips: dict[str, list[WindowLogits]]) -> None:
        self.model, self.clips, self.calls = model, clips, 0

    def analyze(self, source: str) -> SimpleNamespace:
        self.calls += 1
        if source not in self.clips:
            raise MediaError(f"{source}: cannot decode")
        return SimpleNamespace(expert_logits=self.clips[source])


@pytest.fixture(scope="module")
def adapted(base_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    items, clips = synthetic_clips()
    items.append(Item("video", "broken.mp4", 0, "spk0"))
    rec = FakeRecognizer(EmotionModel.from_pretrained(base_dir), clips)
    records, skipped = encode_items(rec, items, progress=False)
    out = tmp_path_factory.mktemp("adapted") / "model"
    result = adapt(rec.model, base_dir, records, out, holdout=0.3, seed=0, skipped=skipped)
    return result, rec, out


def test_each_clip_is_encoded_once_and_unreadable_ones_are_listed(adapted):
    result, rec, _ = adapted
    assert rec.calls == 421
    assert result.report["clips"]["skipped"] == 1
    assert result.report["skipped"][0]["source"] == "broken.mp4"
    assert result.report["clips"]["fit"] + result.report["clips"]["held_out"] == 420


def test_an_overconfident_experts_temperature_goes_up_and_held_out_calibration_improves(adapted):
    result, _, _ = adapted
    t = result.report["fitted"]["temperature"]
    assert 3.0 < t["audio"]["after"] < 5.5  # audio was made four times too sure
    assert 0.8 < t["text"]["after"] < 1.25  # text was calibrated
    assert t["face"]["after"] < 1.0  # face was under-confident
    before, after = (result.report["held_out_scores"][k] for k in ("before", "after"))
    assert after["audio"]["ece"] < before["audio"]["ece"] / 2
    assert after["audio"]["nll"] < before["audio"]["nll"]
    assert after["fused"]["nll"] <= before["fused"]["nll"]
    # a temperature never changes an expert's ranking
    for m in DIMS:
        assert after[m]["accuracy"] == before[m]["accuracy"]
        assert after[m]["uar"] == before[m]["uar"]


def test_the_adapted_folder_loads_and_differs_only_in_the_fusions_numbers(adapted, base_dir):
    result, _, out = adapted
    model = EmotionModel.from_pretrained(out)
    assert model.calibration.temperature["audio"] == pytest.approx(result.temperature["audio"],
                                                                   abs=1e-5)
    assert model.fusions["product"].weights == pytest.approx(result.weights, abs=1e-5)
    base_cfg = json.loads((base_dir / "config.json").read_text())
    out_cfg = json.loads((out / "config.json").read_text())
    for cfg in (base_cfg, out_cfg):
        cfg.pop("calibration")
        cfg["fusions"]["product"].pop("weights")
    assert out_cfg == base_cfg
    assert (out / "model.safetensors").read_bytes() == \
        (base_dir / "model.safetensors").read_bytes()
    assert (out / "face_cnn" / "weights.bin").read_bytes() == bytes(range(256))
    report = json.loads((out / "adapt_report.json").read_text())
    assert report["clips"]["held_out"] == result.report["clips"]["held_out"]
    md = (out / "adapt_report.md").read_text()
    assert "before vs after" in md and "broken.mp4" in md


@pytest.mark.parametrize("only", list(DIMS))
def test_one_modality_is_still_exactly_that_experts_answer_after_adapting(adapted, only):
    _, _, out = adapted
    model = EmotionModel.from_pretrained(out)
    assert any(abs(w - 1.0) > 1e-3 for w in model.fusions["product"].weights.values())
    rng = np.random.default_rng(1)
    emb = {k: rng.normal(size=d).astype(np.float32) for k, d in DIMS.items()}
    fused, experts = model.predict(emb, {k: k == only for k in DIMS})
    np.testing.assert_allclose(fused, experts[only], atol=1e-5)


def test_held_out_split_is_seeded_stratified_and_never_splits_a_speaker():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    speakers = [f"s{i % 20}" for i in range(400)]
    held = held_out_split(y, speakers, 0.3, seed=3)
    np.testing.assert_array_equal(held, held_out_split(y, speakers, 0.3, seed=3))
    assert not np.array_equal(held, held_out_split(y, speakers, 0.3, seed=4))
    for s in set(speakers):
        sel = np.array([x == s for x in speakers])
        assert held[sel].all() or not held[sel].any()
    # one clip per group: plain stratified sampling, every label near 30 %
    ungrouped = held_out_split(y, [str(i) for i in range(400)], 0.3, seed=0)
    for c in range(4):
        assert abs(ungrouped[y == c].mean() - 0.3) < 0.03


def clip(label: int, group: str, audio: list[float] | None = None) -> ClipLogits:
    z = audio if audio is not None else list(np.eye(C)[label] * 2)
    return ClipLogits(group, label, group, [WindowLogits(0, 1, {"audio": z, "text": None,
                                                               "face": None})])


def test_refuses_one_label_and_no_readable_clip(base_dir, tmp_path):
    model = EmotionModel.from_pretrained(base_dir)
    with pytest.raises(InputError, match="at least 2 labels"):
        adapt(model, base_dir, [clip(1, f"c{i}") for i in range(10)], tmp_path / "a")
    with pytest.raises(InputError, match="no readable clip"):
        adapt(model, base_dir, [], tmp_path / "b",
              skipped=[{"source": "x.mp4", "reason": "cannot decode"}])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_few_clips_are_adapted_with_a_clear_warning_and_a_lone_modality_keeps_weights(
        base_dir, tmp_path):
    model = EmotionModel.from_pretrained(base_dir)
    rng = np.random.default_rng(0)
    records = [clip(i % 3, f"c{i}", list(rng.normal(size=C) * 3)) for i in range(24)]
    for r in records[:4]:  # four clips with a face too: too few to say how much it counts
        r.windows[0].logits["face"] = list(np.eye(C)[r.label] * 5)
    result = adapt(model, base_dir, records, tmp_path / "small")
    warnings = " ".join(result.report["warnings"])
    assert "fewer than 30" in warnings and "product weights kept" in warnings
    assert result.weights == {"audio": 1.0, "text": 1.0, "face": 1.0}
    assert "text: base temperature kept" in warnings and "face: base temperature kept" \
        in warnings


def test_cli_refuses_labels_outside_the_set_with_exit_2(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.mp4,angry\nb.mp4,contempt\n")
    assert main(["adapt", "--manifest", str(manifest), "--out", str(tmp_path / "o")]) == 2
    assert "contempt" in capsys.readouterr().err
    manifest.write_text("path,label\na.mp4,angry\nb.mp4,grumpy\n")
    assert main(["adapt", "--manifest", str(manifest), "--out", str(tmp_path / "o")]) == 2
    assert "grumpy" in capsys.readouterr().err
    assert main(["adapt", "--out", str(tmp_path / "o")]) == 2  # neither manifest nor feedback
    assert not (tmp_path / "o").exists()


def test_feedback_rows_from_these_heads_are_used_and_others_left_out(base_dir, tmp_path):
    model = EmotionModel.from_pretrained(base_dir)
    store = FeedbackStore.open(tmp_path / "data")
    mine = heads_fingerprint(model)
    assert mine == heads_fingerprint(EmotionModel.from_pretrained(base_dir))
    w = [WindowLogits(0, 2, {"audio": [0.1] * C, "text": None, "face": [0.2] * C})]
    a = store.record(w, mine)
    b = store.record(w, "0123456789abcdef")
    store.record(w, mine)  # never labelled
    assert store.set_label(a, "angry") and store.set_label(b, "sad")
    records, counts = feedback_records(tmp_path / "data", model)
    assert counts == {"labelled": 2, "used": 1, "other_heads": 1}
    assert records[0].label == LABELS.index("angry") and records[0].windows[0].logits == \
        w[0].logits
    with pytest.raises(InputError, match="not found"):
        feedback_records(tmp_path / "nowhere", model)


def test_scoring_on_cached_logits_matches_what_analyze_shows(long_clip):
    """The shipped recognizer on a 25 s clip (three windows): the fused and expert
    probabilities adapt computes from the cached logits are the ones analyze returns."""
    from multimodal_emotion import EmotionRecognizer
    from multimodal_emotion.adapt import clip_probabilities

    rec = EmotionRecognizer.from_pretrained()
    seen = []
    spy = SimpleNamespace(model=rec.model,
                          analyze=lambda s: seen.append(rec.analyze(s)) or seen[-1])
    records, skipped = encode_items(spy, [Item("video", long_clip, 1)], progress=False)
    pred = seen[0]
    assert len(pred.expert_logits) == 3 and "expert_logits" not in pred.to_dict()
    assert not skipped and len(records[0].windows) == 3
    probs = clip_probabilities(records, rec.model.calibration, rec.model.fusions["product"]
                               .weights, rec.model.modalities)
    np.testing.assert_allclose(probs["fused"][0], [pred.probabilities[k] for k in LABELS],
                               atol=2e-5)
    for m, view in pred.modalities.items():
        if view.available:
            np.testing.assert_allclose(probs[m][0], [view.probabilities[k] for k in LABELS],
                                       atol=2e-5)


def test_text_rows_go_through_the_clip_text_expert(base_dir):
    """A manifest's text rows (transcripts) count as text-only clips, through the head clip
    transcripts use."""
    model = EmotionModel.from_pretrained(base_dir)
    embed = {"I am furious": np.full(8, 0.5, np.float32), "what a lovely day":
             np.full(8, -0.5, np.float32)}
    text = SimpleNamespace(text_encoder=SimpleNamespace(
        embed_texts=lambda texts: np.stack([embed[t] for t in texts])))
    rec = SimpleNamespace(model=model, text=text)
    records, skipped = encode_items(rec, [Item("text", "I am furious", 3),
                                          Item("text", "what a lovely day", 1)], progress=False)
    assert not skipped and [r.label for r in records] == [3, 1]
    want = model.expert_logits({"text": embed["I am furious"]}, {"text": True})["text"]
    got = records[0].windows[0].logits
    assert got["audio"] is None and got["face"] is None
    np.testing.assert_allclose(got["text"], want, atol=1e-6)
