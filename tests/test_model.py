"""Checkpoint IO: config.json + model.safetensors round-trip, clear errors on bad folders."""

import json

import numpy as np
import pytest
import torch

from multimodal_emotion.errors import InputError, ModelError
from multimodal_emotion.model import DEFAULT_MODEL_DIR, EmotionModel

DIMS = {"audio": 10, "text": 6, "face": 4}


def tiny_model():
    return EmotionModel({"dims": DIMS, "fusions": {"attention": {}, "concat": {}, "sum": {}},
                         "default_fusion": "attention"})


def test_round_trip_gives_identical_predictions(tmp_path):
    m = tiny_model()
    m.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    m2 = EmotionModel.from_pretrained(tmp_path)
    emb = {k: np.random.default_rng(0).normal(size=d) for k, d in DIMS.items()}
    avail = {"audio": True, "text": False, "face": True}
    for f in ("attention", "concat", "sum"):
        a, ea = m.predict(emb, avail, f)
        b, eb = m2.predict(emb, avail, f)
        np.testing.assert_allclose(a, b, rtol=1e-6)
        assert eb["text"] is None and eb["audio"] is not None
        assert a.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_compact_storage_stays_close_and_is_smaller(tmp_path, dtype):
    """The shipped model is stored int8 (weight-only, per-row scales): predictions must stay
    within a fraction of a percent of float32, and the file must actually shrink."""
    m = tiny_model()
    m.save_pretrained(tmp_path / "f32")
    m.save_pretrained(tmp_path / dtype, dtype=dtype)
    assert json.loads((tmp_path / dtype / "config.json").read_text())["dtype"] == dtype
    size = lambda d: (tmp_path / d / "model.safetensors").stat().st_size  # noqa: E731
    assert size(dtype) < 0.75 * size("f32")
    m2 = EmotionModel.from_pretrained(tmp_path / dtype)
    assert all(p.dtype == torch.float32 for p in m2.parameters())
    rng = np.random.default_rng(0)
    for _ in range(5):
        emb = {k: rng.normal(size=d) for k, d in DIMS.items()}
        avail = {k: True for k in DIMS}
        for f in ("attention", "concat", "sum"):
            np.testing.assert_allclose(m2.predict(emb, avail, f)[0], m.predict(emb, avail, f)[0],
                                       atol=5e-3)


def test_int8_keeps_integer_tensors_and_bounds_the_rounding():
    from multimodal_emotion.quantization import dequantise, quantise_int8

    w = torch.randn(8, 5)
    state = {"w": w, "b": torch.randn(5), "count": torch.tensor([3], dtype=torch.long)}
    q = quantise_int8(state)
    assert q["w"].dtype == torch.int8 and q["count"].dtype == torch.long
    back = dequantise(q)
    step = w.abs().amax(1, keepdim=True) / 127
    assert ((back["w"] - w).abs() <= step / 2 + 1e-7).all()
    assert torch.equal(back["count"], state["count"]) and back["b"].dtype == torch.float32


def test_nothing_available_gives_no_answer_rather_than_a_fake_one():
    fused, experts = tiny_model().predict({}, {}, "sum")
    assert fused is None and all(v is None for v in experts.values())


def test_wrong_embedding_size_and_unknown_fusion_are_input_errors():
    m = tiny_model()
    with pytest.raises(InputError, match="expects 10"):
        m.predict({"audio": np.zeros(3)}, {"audio": True})
    with pytest.raises(InputError, match="fusion"):
        m.predict({"audio": np.zeros(10)}, {"audio": True}, "median")


def test_bad_folders_raise_model_error(tmp_path):
    with pytest.raises(ModelError, match="not a model folder"):
        EmotionModel.from_pretrained(tmp_path)
    tiny_model().save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["dims"]["audio"] = 11
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="do not match"):
        EmotionModel.from_pretrained(tmp_path)


def test_shipped_model_is_small_safetensors_with_a_card():
    files = [p for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file()]
    assert (DEFAULT_MODEL_DIR / "config.json").exists()
    assert not [p for p in files if p.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin")]
    assert sum(p.stat().st_size for p in files) < 20 * 2**20
    assert (DEFAULT_MODEL_DIR / "MODEL_CARD.md").exists()
    m = EmotionModel.from_pretrained()
    assert set(m.fusions) == {"product", "concat", "sum", "attention", "late"}
    assert m.default_fusion == "product" and m.keeps_single_modality()
    # clip transcripts go through the spoken-dialogue text head; written text has its own
    assert m.domains("text") == ["spoken", "written"]


def test_domain_heads_are_routed_saved_and_checked(tmp_path):
    """A modality can carry a head per input domain; the clip path uses ``experts[m]``."""
    m = EmotionModel({"dims": DIMS, "fusions": {"sum": {}},
                      "expert_domains": {"text": "spoken"},
                      "domain_experts": {"text": {"written": {"hidden": 0}}}})
    with torch.no_grad():
        for p in m.domain_experts["text"]["written"].parameters():
            p.normal_()
    x = np.random.default_rng(0).normal(size=(3, DIMS["text"])).astype(np.float32)
    spoken = m.expert_proba("text", x)
    assert np.allclose(m.expert_proba("text", x, "spoken"), spoken)
    written = m.expert_proba("text", x, "written")
    assert not np.allclose(written, spoken) and np.allclose(written.sum(1), 1, atol=1e-5)
    # predict() (the clip path) uses the spoken head
    _, experts = m.predict({"text": x[0]}, {"text": True})
    assert np.allclose(experts["text"], spoken[0], atol=1e-6)
    with pytest.raises(InputError, match="no 'sung' head"):
        m.expert_proba("text", x, "sung")
    assert m.domains("audio") == []
    m.save_pretrained(tmp_path)
    again = EmotionModel.from_pretrained(tmp_path)
    assert again.domains("text") == ["spoken", "written"]
    assert np.allclose(again.expert_proba("text", x, "written"), written, atol=1e-6)
