"""The audio expert on Whisper base (the candidate recipe, ``training.speech``): a model folder
whose audio encoder reads base's layers must load each Whisper once and give each its own job,
stop the encoder after the last listed layer, and analyze a clip; the linear probe head must be
the logistic regression it was fitted as."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from multimodal_emotion.encoders.audio import WhisperAudioEncoder
from multimodal_emotion.encoders.whisper_models import whisper_model_label
from multimodal_emotion.encoders.whisper_torch import WhisperEncoderTorch
from multimodal_emotion.errors import ModelError
from multimodal_emotion.heads import LinearConfig, fit_linear_head, predict_proba
from multimodal_emotion.labels import LABELS
from multimodal_emotion.model import EmotionModel
from multimodal_emotion.recognizer import EmotionRecognizer, _base_audio_whisper
from test_text import _tiny_bert

LAYERS = [1, 2]
# trim_db: the silence trim (off in the shipped recipe) rides along so the export's copy of it
# is checked too
AUDIO = {"name": "whisper", "model_path": "base", "layers": LAYERS, "pad_to_s": 5.0,
         "loudness_dbfs": -20.0, "trim_db": 35.0}
DIMS = {"audio": 2 * 512 * len(LAYERS), "text": 32, "face": 256}


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    wave = 0.1 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return (wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("base_audio_model")
    text = _tiny_bert(d / "mpnet", layers=1, kind="mpnet")
    torch.manual_seed(0)
    model = EmotionModel({
        "dims": DIMS,
        "experts": {"audio": {"hidden": 0}, "text": {"hidden": 0}, "face": {"hidden": 0}},
        "fusions": {"product": {}}, "default_fusion": "product",
        "encoders": {"audio": AUDIO, "transcriber": {"name": "faster-whisper"},
                     "text": {"name": "hf", "model": str(text)},
                     "face": {"name": "haar-cnn"}},
    })
    model.save_pretrained(d)
    return d


def test_only_a_default_base_audio_config_takes_language_ids_model() -> None:
    assert _base_audio_whisper(AUDIO)
    assert _base_audio_whisper({**AUDIO, "name": "whisper-onnx", "checkpoint": "audio.onnx"})
    assert not _base_audio_whisper({"name": "whisper", "layers": [1, 2, 3, 4]})
    assert not _base_audio_whisper({**AUDIO, "compute_type": "float32"})


def test_each_whisper_is_loaded_once_and_does_its_own_job(base_dir: Path, demo_clip) -> None:
    """base's CTranslate2 model serves language ID and the audio front end; tiny.en stays the
    transcriber and never decodes base's output; the clip is analyzed with all its parts."""
    rec = EmotionRecognizer.from_pretrained(base_dir)
    audio = rec.audio.wrapped
    assert audio.model_label == whisper_model_label("base") and audio.dim == DIMS["audio"]
    assert audio.whisper_model is rec.language.base
    assert rec.transcriber.wrapped.model is not audio.whisper_model
    assert not rec._shares_whisper and not audio.final_layer
    d = rec.analyze(demo_clip).to_dict()
    assert d["modalities"]["audio"]["available"]
    assert d["modalities"]["text"]["language"] == "en"
    assert "happy" in d["modalities"]["text"]["transcript"].lower()


def test_stopping_after_the_last_listed_layer_changes_nothing() -> None:
    kw = dict(model_path="base", layers=LAYERS, pad_to_s=5.0, loudness_dbfs=-20.0)
    full = WhisperAudioEncoder(**kw)
    short = WhisperAudioEncoder(**kw, final_layer=False)
    wave = speechlike(2.0)
    a, b = full.encode_audio(wave), short.encode_audio(wave)
    np.testing.assert_array_equal(a.embedding, b.embedding)
    assert "whisper_encoder_output" in a.extras and "whisper_encoder_output" not in b.extras
    with pytest.raises(ModelError, match="final_layer=True"):
        short.frames(wave)


def test_upto_returns_the_first_states_unchanged() -> None:
    enc = WhisperEncoderTorch.from_ct2("base")
    mel = torch.randn(1, enc.n_mels, 200)
    with torch.inference_mode():
        full, short = enc(mel), enc(mel, upto=2)
    assert len(full) == enc.n_layers + 1 and len(short) == 3
    for a, b in zip(full[:3], short):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_linear_head_is_the_fitted_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)) * rng.uniform(0.5, 20, 12) + rng.normal(size=12) * 5
    y = (x[:, 0] > x[:, 0].mean()).astype(int) * 2 + (x[:, 1] > x[:, 1].mean())  # classes 0-3
    head = fit_linear_head(x, y, len(LABELS), LinearConfig(C=0.1))
    z = (x - x.mean(0)) / x.std(0)
    ref = LogisticRegression(C=0.1, max_iter=1000).fit(z, y)
    p = predict_proba(head, x)
    np.testing.assert_allclose(p[:, :4], ref.predict_proba(z), atol=1e-4)
    assert p[:, 4:].max() < 1e-9  # classes never seen are never predicted
    assert (p.argmax(1) == y).mean() > 0.9


def test_int8_layers_stay_near_float32_and_key_their_own_cache(base_dir: Path,
                                                                demo_clip) -> None:
    """``mer call --fast``: the int8 encoder's embedding of real speech is float32's to within
    int8 rounding, yet not float32's (the int8 maps really run); its config, the embedding
    cache's key, says so; a batch of one is the clip alone; int8 without torch layers is
    refused rather than silently ignored."""
    from multimodal_emotion import media
    from multimodal_emotion.encoders.audio_features import clip_audio

    kw = dict(model_path="base", layers=LAYERS, pad_to_s=5.0, loudness_dbfs=-20.0,
              final_layer=False)
    fp32, int8 = WhisperAudioEncoder(**kw), WhisperAudioEncoder(**kw, int8=True)
    wave = clip_audio(media.load(demo_clip))
    a, b = fp32.encode_audio(wave).embedding, int8.encode_audio(wave).embedding
    assert not np.array_equal(a, b)
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.99
    assert fp32.config() != int8.config() and "int8" in int8.config()["compute_type"]
    [batched] = int8.encode_audio_batch([wave])
    np.testing.assert_allclose(batched.embedding, b, rtol=1e-4, atol=1e-4)
    with pytest.raises(ModelError, match="layers"):
        WhisperAudioEncoder(model_path="base", int8=True)
    rec = EmotionRecognizer.from_pretrained(base_dir, audio_int8=True)
    assert rec.audio.wrapped.int8
    assert rec.analyze(demo_clip).to_dict()["modalities"]["audio"]["available"]
