"""train_face_cnn's keep_embedding: continuing a CNN with the penalty keeps its embedding near
the one every learned fusion was trained on. Tiny random faces: this checks the mechanics, not
accuracy (the recipe's figures are in the README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from multimodal_emotion.encoders.face import load_face_cnn
from multimodal_emotion.training import face_cnn as fc

CHANNELS = (4, 8)


def _tiny_data(root, seed):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (96, 48, 48), dtype=np.uint8)
    y = rng.integers(0, 7, 96)
    return {"x_tr": x[:64], "p_tr": np.eye(7, dtype=np.float32)[y[:64]], "x_va": x[64:],
            "y_va": y[64:], "tests": {"fer2013_test": (x[64:], y[64:])}, "data": "random"}


def _drift(out: Path, init: Path, faces: np.ndarray) -> float:
    new, _ = load_face_cnn(out)
    old, _ = load_face_cnn(init)
    x = fc.center_crop(torch.from_numpy(fc.standardise(faces))[:, None], 44)
    with torch.inference_mode():
        return float((new.eval().embed(x) - old.eval().embed(x)).pow(2).mean())


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()  # train_face_cnn sets its own
    yield
    torch.set_num_threads(n)


def test_keep_embedding_holds_a_continued_cnn_near_its_start(tmp_path, monkeypatch):
    monkeypatch.setattr(fc, "_fer2013_data", _tiny_data)
    init = tmp_path / "init"  # a trained start: its BatchNorm statistics are its own
    fc.train_face_cnn(tmp_path, init, epochs=2, channels=CHANNELS, embed_dim=16, batch_size=16)
    faces = _tiny_data(None, 0)["x_tr"]
    drift = {}
    for w in (0.0, 100.0):
        out = tmp_path / f"keep{w:g}"
        info = fc.train_face_cnn(tmp_path, out, epochs=2, channels=CHANNELS, embed_dim=16,
                                 batch_size=16, lr=3e-2, init=init, keep_embedding=w)
        drift[w] = _drift(out, init, faces)
        assert info["training"].get("keep_embedding", 0.0) == w
    assert drift[100.0] < drift[0.0] / 3


def test_keep_embedding_needs_a_start(tmp_path):
    with pytest.raises(ValueError, match="needs init"):
        fc.train_face_cnn(tmp_path, tmp_path / "out", keep_embedding=1.0)


def test_stages_continue_each_other_and_leave_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(fc, "_fer2013_data", _tiny_data)
    out = tmp_path / "model" / "face_cnn"
    info = fc.train_face_cnn_stages(tmp_path, out, [{"epochs": 2, "lr": 3e-3},
                                                    {"epochs": 1, "lr": 1e-3}],
                                    channels=CHANNELS, embed_dim=16, batch_size=16)
    assert info["training"]["epochs"] == 1 and info["training"]["lr"] == 1e-3
    assert info["previous"]["training"]["epochs"] == 2  # the second continued the first
    assert sorted(p.name for p in out.parent.iterdir()) == ["face_cnn"]  # no stage folder left
    assert load_face_cnn(out)[0].channels == CHANNELS


def test_average_is_the_mean_of_the_weights_with_batchnorm_recomputed(tmp_path, monkeypatch):
    monkeypatch.setattr(fc, "_fer2013_data", _tiny_data)
    a, b = tmp_path / "a", tmp_path / "b"
    fc.train_face_cnn(tmp_path, a, epochs=1, channels=CHANNELS, embed_dim=16, batch_size=16)
    fc.train_face_cnn(tmp_path, b, epochs=1, channels=CHANNELS, embed_dim=16, batch_size=16,
                      lr=1e-2, init=a)
    info = fc.average_face_cnns([a, b], tmp_path / "avg", tmp_path)
    ma, mb, avg = (load_face_cnn(p)[0].float().state_dict() for p in (a, b, tmp_path / "avg"))
    conv = "features.0.weight"
    assert torch.allclose(avg[conv], (ma[conv] + mb[conv]) / 2, atol=1e-3)  # fp16 storage
    stat = "features.1.running_mean"  # recomputed on the faces, not averaged
    assert not torch.allclose(avg[stat], (ma[stat] + mb[stat]) / 2, rtol=0.05, atol=0)
    assert "average" in info["training"] and len(info["training"]["averaged"]) == 2

    other = tmp_path / "other"
    fc.train_face_cnn(tmp_path, other, epochs=1, channels=(4, 4), embed_dim=16, batch_size=16)
    with pytest.raises(ValueError, match="architecture"):
        fc.average_face_cnns([a, other], tmp_path / "bad", tmp_path)
