"""The face CNN's staged recipe: stages continue each other, and their average is the mean of
the weights with BatchNorm's statistics recomputed. Tiny random faces: this checks the
mechanics, not accuracy (the recipe's figures are in the README)."""

from __future__ import annotations


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
    fc.average_face_cnns([a, b], tmp_path / "again", tmp_path)
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == \
        (tmp_path / "avg" / "model.safetensors").read_bytes()  # a rerun is the same

    other = tmp_path / "other"
    fc.train_face_cnn(tmp_path, other, epochs=1, channels=(4, 4), embed_dim=16, batch_size=16)
    with pytest.raises(ValueError, match="architecture"):
        fc.average_face_cnns([a, other], tmp_path / "bad", tmp_path)
