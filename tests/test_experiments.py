"""Fusion experiments: the protocol keeps speakers apart, test labels never reach training, the
metrics give known answers on fixed inputs, and a small experiment writes a full report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from multimodal_emotion.errors import InputError
from multimodal_emotion.experiments import (ExperimentData, ModalityData, ProtocolConfig,
                                            TrainSettings, load_config, run_experiment)
from multimodal_emotion.experiments.config import from_dict
from multimodal_emotion.experiments.data import speaker_normalise
from multimodal_emotion.experiments.metrics import (aggregate, paired_test, roc_auc_ovr,
                                                    run_report, uar)
from multimodal_emotion.experiments.protocol import Split, check_split, make_splits
from multimodal_emotion.experiments.trainer import train_late, train_neural, train_product

REPO = Path(__file__).resolve().parents[1]


def synthetic(n_speakers: int = 12, per: int = 24, n_classes: int = 4, seed: int = 0,
              split: bool = False) -> ExperimentData:
    """``signal`` separates the classes (noisy), ``noise`` carries nothing, ``weak`` a little;
    every speaker adds a constant offset (what speaker normalisation removes)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_speakers), per)
    y = np.tile(np.arange(n_classes), n_speakers * per // n_classes)
    centers = rng.normal(0, 1.0, (n_classes, 8))
    offset = rng.normal(0, 1.0, (n_speakers, 8))[groups]
    signal = centers[y] + offset + rng.normal(0, 1.0, (len(y), 8))
    weak = 0.3 * centers[y][:, :4] + rng.normal(0, 1.0, (len(y), 4))
    noise = rng.normal(0, 1.0, (len(y), 6))
    ones = np.ones(len(y), bool)
    mods = {"audio": ModalityData(signal.astype(np.float32), ones),
            "face": ModalityData(weak.astype(np.float32), ones),
            "text": ModalityData(noise.astype(np.float32), ones)}
    sp = np.where(groups < n_speakers * 2 // 3, "train", "test") if split else None
    return ExperimentData("synthetic", y, [f"c{i}" for i in range(n_classes)], groups, mods,
                          split=sp, reference={"x": signal.astype(np.float32)})


# --------------------------------------------------------------------------------- protocol

def test_kfold_splits_keep_speakers_apart_and_cover_every_item_once_per_seed():
    data = synthetic()
    splits = make_splits(data, ProtocolConfig("speaker-kfold", folds=4, val_speakers=2),
                         seeds=[0, 1])
    assert len(splits) == 8
    for seed in (0, 1):
        tested = np.concatenate([s.test for s in splits if s.seed == seed])
        assert sorted(tested.tolist()) == list(range(len(data.y)))
    for s in splits:
        spk = {k: set(data.groups[getattr(s, k)].tolist()) for k in ("train", "val", "test")}
        assert not spk["train"] & spk["test"] and not spk["val"] & spk["test"]
        assert not spk["train"] & spk["val"]
        assert len(spk["val"]) == 2
    # validation speakers are drawn anew per seed
    v0 = {tuple(sorted(set(data.groups[s.val]))) for s in splits if s.seed == 0}
    v1 = {tuple(sorted(set(data.groups[s.val]))) for s in splits if s.seed == 1}
    assert v0 != v1


def test_given_split_draws_validation_from_training_speakers_only():
    data = synthetic(split=True)
    (s,) = make_splits(data, ProtocolConfig("given", val_speakers=0.25), seeds=[3])
    assert set(s.test.tolist()) == set(np.flatnonzero(data.split == "test").tolist())
    assert set(data.split[s.val]) == {"train"}
    assert len(set(data.groups[s.val])) == 2  # 25% of 8 training speakers


def test_check_split_refuses_a_speaker_on_both_sides():
    data = synthetic()
    rows = np.arange(len(data.y))
    leak = Split(0, 0, rows[:100], rows[100:130], rows[120:200])  # item 120-129 twice
    with pytest.raises(AssertionError, match="speakers in both"):
        check_split(data, leak)


def test_test_labels_never_influence_training():
    """Scramble the test items' labels: training curves, stopping epoch and test predictions
    must be bit-identical, because the trainer only ever reads train and validation labels."""
    data = synthetic()
    (s,) = make_splits(data, ProtocolConfig("speaker-kfold", folds=4, val_speakers=2), [0])[:1]
    settings = TrainSettings(epochs=6, patience=3, width=32)
    y2 = data.y.copy()
    y2[s.test] = np.random.default_rng(1).permutation(y2[s.test])
    a = train_neural("concat", data.modalities, data.y, s.train, s.val, s.test, 4, settings, 0)
    b = train_neural("concat", data.modalities, y2, s.train, s.val, s.test, 4, settings, 0)
    assert a.history == b.history and a.best_epoch == b.best_epoch
    np.testing.assert_array_equal(a.test_proba, b.test_proba)


def test_late_fusion_choices_come_from_validation_speakers_only():
    """train_late picks each expert's penalty and the modality weights on validation speakers:
    scrambling the test labels changes nothing, and the informative modality is trusted most."""
    data = synthetic()
    (s,) = make_splits(data, ProtocolConfig("speaker-kfold", folds=4, val_speakers=2), [0])[:1]
    settings = TrainSettings()
    y2 = data.y.copy()
    y2[s.test] = np.random.default_rng(1).permutation(y2[s.test])
    a = train_late(data.modalities, data.y, s.train, s.val, s.test, 4, settings, 0,
                   missing=True)
    b = train_late(data.modalities, y2, s.train, s.val, s.test, 4, settings, 0, missing=True)
    assert a.chosen == b.chosen
    np.testing.assert_array_equal(a.test_proba, b.test_proba)
    assert len(a.chosen["val_by_C"]) == 4 ** 3  # every combination of penalties was scored
    w = a.chosen["weights"]
    assert w["audio"] > 2 * w["text"]
    assert uar(data.y[s.test], a.test_proba.argmax(1)) > 0.5  # chance is 0.25
    # dropping the informative modality at test time costs the most
    drop = {m: uar(data.y[s.test], p.argmax(1)) for m, p in a.missing_proba.items()}
    assert min(drop, key=drop.get) == "audio"


def test_product_fusion_is_fitted_on_validation_speakers_only():
    """train_product chooses each expert's penalty, temperature and the product's weights on
    validation speakers: scrambled test labels change nothing; the informative modality wins,
    and with the others removed the answer is that expert's calibrated answer."""
    data = synthetic()
    (s,) = make_splits(data, ProtocolConfig("speaker-kfold", folds=4, val_speakers=2), [0])[:1]
    settings = TrainSettings()
    y2 = data.y.copy()
    y2[s.test] = np.random.default_rng(1).permutation(y2[s.test])
    a = train_product(data.modalities, data.y, s.train, s.val, s.test, 4, settings, 0,
                      missing=True)
    b = train_product(data.modalities, y2, s.train, s.val, s.test, 4, settings, 0, missing=True)
    assert a.chosen == b.chosen
    np.testing.assert_array_equal(a.test_proba, b.test_proba)
    assert len(a.chosen["val_by_C"]) == 4 * 3  # each expert's penalties, judged alone
    assert uar(data.y[s.test], a.test_proba.argmax(1)) > 0.5  # chance is 0.25
    drop = {m: uar(data.y[s.test], p.argmax(1)) for m, p in a.missing_proba.items()}
    assert min(drop, key=drop.get) == "audio"
    # the text modality is noise: its calibrated expert is near-flat (a high temperature)
    assert a.chosen["temperature"]["text"] > a.chosen["temperature"]["audio"]
    only = {"audio": data.modalities["audio"]}
    alone = train_product(only, data.y, s.train, s.val, s.test, 4, settings, 0)
    assert np.allclose(alone.test_proba.sum(1), 1, atol=1e-5)


def test_speaker_normalise_zero_mean_unit_std_per_speaker():
    data = synthetic()
    x = speaker_normalise(data.modalities["audio"].x, data.groups)
    for g in np.unique(data.groups):
        block = x[data.groups == g]
        np.testing.assert_allclose(block.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(block.std(0), 1, atol=1e-3)


# ---------------------------------------------------------------------------------- metrics

def test_uar_and_report_on_known_input():
    y = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 0, 1, 1, 1])
    assert uar(y, pred) == pytest.approx((0.75 + 1.0) / 2)
    proba = np.eye(2)[pred] * 0.8 + 0.1
    rep = run_report(y, proba, ["a", "b"])
    assert rep["accuracy"] == pytest.approx(5 / 6)
    assert rep["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert rep["confusion_matrix"] == [[3, 1], [0, 2]]


def test_roc_auc_known_values():
    y = np.array([0, 0, 1, 1])
    assert roc_auc_ovr(y, np.array([[.9, .1], [.8, .2], [.3, .7], [.1, .9]])) == 1.0
    assert roc_auc_ovr(y, np.array([[.1, .9], [.2, .8], [.7, .3], [.9, .1]])) == 0.0
    three = np.array([0, 1, 2])
    assert roc_auc_ovr(three, np.eye(3)) == 1.0
    assert np.isnan(roc_auc_ovr(np.array([0, 0, 1]), np.full((3, 3), 1 / 3)))  # class 2 absent


def test_aggregate_and_paired_test():
    reps = [run_report(np.array([0, 1]), np.array([[.9, .1], [.2, .8]]), ["a", "b"]),
            run_report(np.array([0, 1]), np.array([[.9, .1], [.9, .1]]), ["a", "b"])]
    agg = aggregate(reps)
    assert agg["accuracy"]["mean"] == pytest.approx(0.75)
    assert agg["accuracy"]["std"] == pytest.approx(np.std([1.0, 0.5], ddof=1))
    assert agg["confusion_matrix"] == [[2, 0], [1, 1]]
    a = [0.80, 0.82, 0.85, 0.79, 0.88, 0.84]
    b = [0.70, 0.74, 0.75, 0.72, 0.77, 0.73]
    p = paired_test(a, b)
    assert p["wins"] == 6 and p["losses"] == 0
    assert p["mean_diff"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert p["wilcoxon_p"] == pytest.approx(0.03125)  # exact two-sided, n=6, all positive
    assert p["ttest_p"] < 0.001
    same = paired_test([0.5, 0.6], [0.5, 0.6])
    assert same["wilcoxon_p"] == 1.0 and same["ties"] == 2


# ----------------------------------------------------------------------------------- config

def test_config_yaml_toml_and_overrides(tmp_path: Path):
    y = tmp_path / "e.yaml"
    y.write_text("dataset: ravdess\nmodalities: {audio: {source: whisper}}\nseeds: [0, 1]\n")
    cfg = load_config(y, ["seeds=[7]", "protocol.folds=3", "train.lr=0.01"])
    assert cfg.name == "e" and cfg.seeds == [7] and cfg.protocol.folds == 3
    assert cfg.train.lr == 0.01
    t = tmp_path / "e.toml"
    t.write_text('dataset = "cmu-mosi"\nfusions = ["sum"]\n[modalities.text]\n'
                 'source = "minilm"\n[protocol]\nkind = "given"\n')
    assert load_config(t).fusions == ["sum"]
    for bad in ({"dataset": "x", "modalities": {}, "typo": 1},
                {"dataset": "x", "modalities": {}, "fusions": ["nope"]},
                {"dataset": "x", "modalities": {"audio": {}}}):
        with pytest.raises(InputError):
            from_dict(bad)


def test_shipped_configs_parse():
    for path in sorted((REPO / "bench" / "experiments").glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.modalities and cfg.fusions


# ------------------------------------------------------------------------------ end to end

def test_small_experiment_writes_a_full_report(tmp_path: Path):
    cfg = from_dict({"name": "tiny", "dataset": "synthetic",
                     "modalities": {m: {"source": "given"} for m in ("audio", "face", "text")},
                     "reference": {"source": "given"}, "seeds": [0, 1],
                     "protocol": {"kind": "speaker-kfold", "folds": 3, "val_speakers": 2},
                     "train": {"epochs": 15, "patience": 5, "width": 32},
                     "fusion_options": {"attention": {"width": 32, "layers": 1}}})
    res = run_experiment(cfg, data=synthetic(), out=tmp_path, progress=False)
    rows = res["rows"]
    assert set(rows) == {"product", "concat", "sum", "attention", "late", "audio only", "face only",
                         "text only", "reference", "linear probe"}
    assert all(r["summary"]["runs"] == 6 for r in rows.values())
    # the informative modality beats noise; fusion is not worse than noise
    assert rows["audio only"]["summary"]["uar"]["mean"] > rows["text only"]["summary"]["uar"][
        "mean"] + 0.2
    assert set(res["missing_modality"]["concat"]) == {"without audio", "without face",
                                                      "without text"}
    assert res["paired_test"]["n"] == 6 and res["best"] == res["ranking"][0]
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["rows"]["sum"]["summary"]["uar"]["mean"] == rows["sum"]["summary"]["uar"][
        "mean"]
    md = (tmp_path / "results.md").read_text()
    assert "| row | kind |" in md and "Paired test" in md
    assert "| late | audio |" in md  # late fusion's modality weights are reported
    assert "| product | audio |" in md  # and the product's
    assert "keeps a lone expert's answer" in md
    product_row = next(line for line in md.splitlines() if line.startswith("| ")
                       and "product" in line.split("|")[1] and "| fusion |" in line)
    assert product_row.rstrip().endswith("| yes |")
    assert (tmp_path / "config.yaml").read_text().startswith("config:")
    import matplotlib.image as mpimg

    for png in ("comparison.png", "curves.png", "missing_modality.png", "confusion_concat.png",
                "confusion_sum.png", "confusion_attention.png", "confusion_late.png",
                "confusion_reference.png", "late_weights.png"):
        img = mpimg.imread(tmp_path / png)
        assert img.shape[0] > 200 and img.shape[1] > 300
        assert img[..., :3].std() > 0.05, f"{png} looks blank"


def test_speaker_norm_helps_when_speakers_shift_features(tmp_path: Path):
    base = {"name": "sn", "dataset": "synthetic", "modalities": {"audio": {"source": "given"}},
            "fusions": ["concat"], "unimodal": False, "linear_probe": False, "missing_modality": False, "seeds": [0],
            "protocol": {"kind": "speaker-kfold", "folds": 3, "val_speakers": 2},
            "train": {"epochs": 20, "patience": 6, "width": 32}}
    data = synthetic()
    data.modalities = {"audio": data.modalities["audio"]}
    off = run_experiment(from_dict(base), data=data, progress=False)
    on = run_experiment(from_dict({**base, "speaker_norm": True}), data=data, progress=False)
    assert on["rows"]["concat"]["summary"]["uar"]["mean"] > \
        off["rows"]["concat"]["summary"]["uar"]["mean"]


# ------------------------------------------------------------------------------- real data

@pytest.mark.data
def test_mosi_loader_aligns_modalities_and_keeps_split_speaker_disjoint(data_root: Path):
    from multimodal_emotion.experiments.data import load_dataset

    mods = {"audio": {"source": "mosi-audio"}, "face": {"source": "mosi-video"},
            "text": {"source": "mosi-text"}}
    data = load_dataset("cmu-mosi", data_root, mods)
    assert len(data.y) == 1447 + 752
    assert (data.split == "train").sum() == 1447
    assert [d.dim for d in data.modalities.values()] == [73, 100, 100]
    train_spk = set(data.groups[data.split == "train"])
    test_spk = set(data.groups[data.split == "test"])
    assert not train_spk & test_spk and len(train_spk) > 50 and len(test_spk) > 25


@pytest.mark.data
def test_ravdess_action_units_pair_with_every_audio_clip(data_root: Path):
    from multimodal_emotion.experiments.data import load_dataset

    data = load_dataset("ravdess", data_root, {"face": {"source": "openface-au"}})
    assert data.modalities["face"].x.shape == (1440, 35)
    assert sorted(set(data.fold.tolist())) == list(range(6))
    assert data.n_classes == 8


def test_text_source_checkpoint_is_the_shipped_tuned_encoder(tmp_path: Path, monkeypatch):
    """``checkpoint: text_encoder`` in a config means the shipped model's adapters (as in a
    model's own config.json), so the MOSI config uses the encoder `mer analyze` uses."""
    from multimodal_emotion.experiments.data import _text_block

    monkeypatch.setenv("MER_CACHE", str(tmp_path))
    texts = ["I loved every minute of it", "this was a waste of time", ""]
    plain = _text_block(texts, {"source": "mpnet"}, "t")
    tuned = _text_block(texts, {"source": "mpnet", "checkpoint": "text_encoder"}, "t")
    assert tuned.description["encoder"]["tuned_layers"]
    assert "tuned_layers" not in plain.description["encoder"]
    assert not np.allclose(plain.x[:2], tuned.x[:2])
    assert tuned.available.tolist() == [True, True, False]  # empty text is masked, not embedded
    with pytest.raises(Exception, match="no_such_folder"):
        _text_block(texts, {"source": "mpnet", "checkpoint": "no_such_folder"}, "t")


def _tiny_text_encoder(folder: Path):
    """A randomly initialised 1-layer, 32-wide BERT with MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    from multimodal_emotion.encoders.text import HFTextEncoder, default_text_model_path

    torch.manual_seed(0)
    src = Path(default_text_model_path())
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                 "tokenizer.json"):
        (folder / name).write_bytes((src / name).read_bytes())
    return HFTextEncoder(str(folder))


def test_crossfit_text_fine_tuning_never_sees_a_row_it_embeds(tmp_path: Path, monkeypatch):
    """Each training row is embedded by an encoder tuned without its speaker, test rows only by
    encoders tuned on training rows, test labels change nothing, and the caller's encoder is
    left as it was."""
    from multimodal_emotion.experiments import text_finetune as tf

    enc = _tiny_text_encoder(tmp_path / "bert")
    before = {k: v.clone() for k, v in enc.model.state_dict().items()}
    words = ["good", "bad", "great", "awful", "fine", "poor"]
    texts = [f"{words[i % 6]} movie number {i}" for i in range(36)]
    y = np.asarray([i % 2 for i in range(36)])
    groups = np.repeat(np.arange(9), 4)
    train = groups < 6
    seen: list[set[str]] = []
    real = tf.fine_tune_encoder

    def spy(encoder, fit_texts, *args, **kwargs):
        seen.append(set(fit_texts))
        return real(encoder, fit_texts, *args, **kwargs)

    monkeypatch.setattr(tf, "fine_tune_encoder", spy)
    monkeypatch.setenv("MER_CACHE", str(tmp_path / "c1"))
    x = tf.crossfit_text_embeddings(enc, texts, y, groups, train, 2, folds=3, epochs=1,
                                    lr=1e-3, batch_size=8)
    assert x.shape == (36, 32)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert len(seen) == 3
    test_texts = {t for t, tr in zip(texts, train) if not tr}
    fold_of = tf.group_folds(groups[train], 3, 0)
    for k, fit in enumerate(seen):
        assert not fit & test_texts  # no test row ever trains an encoder
        held = {t for t, g, tr in zip(texts, groups, train) if tr and fold_of[g] == k}
        assert held and not fit & held  # the fold it embeds is not in its training rows
    for k_, v in enc.model.state_dict().items():
        assert torch_equal(v, before[k_])
    monkeypatch.setenv("MER_CACHE", str(tmp_path / "c2"))  # recompute, with test labels flipped
    y2 = np.where(train, y, 1 - y)
    x2 = tf.crossfit_text_embeddings(enc, texts, y2, groups, train, 2, folds=3, epochs=1,
                                     lr=1e-3, batch_size=8)
    assert np.allclose(x, x2, atol=1e-6)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_text_finetune_needs_a_fixed_split():
    from multimodal_emotion.experiments.data import _text_block

    with pytest.raises(InputError, match="train/test split"):
        _text_block(["a", "b"], {"source": "minilm", "finetune": {"epochs": 1}}, "t")
