"""Audio modality: MFCC front-end, silence handling, the three encoders, RAVDESS parsing/folds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from multimodal_emotion.datasets.ravdess import load_ravdess, parse_name, ravdess_folds
from multimodal_emotion.encoders.audio import (
    SILENCE_DBFS, _dct_matrix, active_level_dbfs, check_audio, mfcc_features, stats_pool,
    time_pool)
from multimodal_emotion.types import Clip

SR = 16000
REPO = Path(__file__).resolve().parents[1]


def sine(freq: float = 440.0, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speechlike(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """Harmonic tone with a wobbling pitch and syllable-rate envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return (0.2 * x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


# ------------------------------------------------------------------------------ MFCC front-end


def test_mfcc_shapes_and_normalisation():
    f = mfcc_features(sine(seconds=1.0), n_mfcc=40)
    # 25 ms window, 10 ms hop: 1 + (16000 - 400) // 160 frames; MFCC + delta + delta-delta.
    assert f.shape == (1 + (SR - 400) // 160, 120)
    assert np.isfinite(f).all()
    np.testing.assert_allclose(f.mean(0), 0, atol=1e-3)
    f13 = mfcc_features(sine(), n_mfcc=13, normalize=False)
    assert f13.shape[1] == 39


def test_mfcc_short_input_is_padded_to_one_frame():
    assert mfcc_features(sine(seconds=0.01), normalize=False).shape == (1, 120)


def test_preemphasis_tilts_spectrum_towards_high_frequencies():
    """Pre-emphasis (x[n] - 0.97 x[n-1]) boosts a 4 kHz tone against a 200 Hz one."""
    x = sine(200) + sine(4000)

    def c0_and_energy_ratio(pre: float) -> float:
        f = mfcc_features(x, preemphasis=pre, normalize=False, n_mfcc=40)
        return float(f[:, 1].mean())  # c1 ~ spectral tilt: low-vs-high balance

    # More high-frequency energy -> the first cepstral slope coefficient drops.
    assert c0_and_energy_ratio(0.97) < c0_and_energy_ratio(0.0)


def test_hamming_window_reduces_leakage():
    """A tone between bins leaks less into far bins with the Hamming window than without."""
    win = 400
    x = sine(1234.5, seconds=win / SR)[:win]
    far = slice(150, 257)
    rect = np.abs(np.fft.rfft(x, 512)) ** 2
    ham = np.abs(np.fft.rfft(x * np.hamming(win), 512)) ** 2
    assert ham[far].sum() / ham.sum() < rect[far].sum() / rect.sum() / 10


def test_dct_is_orthonormal():
    d = _dct_matrix(40, 40)
    np.testing.assert_allclose(d @ d.T, np.eye(40), atol=1e-5)


def test_pooling_helpers():
    frames = np.arange(12, dtype=np.float32).reshape(6, 2)
    assert stats_pool(frames).shape == (4,)
    pooled = time_pool(frames, 4)
    assert pooled.shape == (2, 2)
    np.testing.assert_allclose(pooled[1], frames[4:].mean(0))


# ------------------------------------------------------------------------------ silence / none


def test_silence_and_no_audio_are_unavailable_with_reason():
    assert active_level_dbfs(np.zeros(SR, np.float32)) == float("-inf")
    out = check_audio(np.zeros(SR, np.float32), 8)
    assert out is not None and not out.available and "silent" in out.reason
    quiet = sine(amp=10 ** ((SILENCE_DBFS - 10) / 20))
    assert "silent" in check_audio(quiet, 8).reason
    none = check_audio(None, 8)
    assert not none.available and none.reason == "no audio track"
    assert none.embedding.shape == (8,) and not none.embedding.any()
    assert check_audio(sine(amp=0.05), 8) is None


def test_speech_with_long_pauses_is_not_silent():
    x = np.concatenate([np.zeros(3 * SR, np.float32), speechlike(0.5) * 0.05])
    assert check_audio(x, 8) is None


# ------------------------------------------------------------------------------ wav2vec2 (tiny)


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory) -> str:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 4),
                         conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=4)
    folder = tmp_path_factory.mktemp("w2v")
    Wav2Vec2Model(cfg).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=SR).save_pretrained(folder)
    return str(folder)


def test_wav2vec2_tiny_shape_and_determinism(tiny_wav2vec2):
    from multimodal_emotion.encoders import create

    enc = create("audio", "wav2vec2", model=tiny_wav2vec2, layer=-1)
    assert enc.dim == 64
    x = speechlike()
    a, b = enc.encode_audio(x), enc.encode_audio(x)
    assert a.available and a.embedding.shape == (64,) and np.isfinite(a.embedding).all()
    np.testing.assert_array_equal(a.embedding, b.embedding)
    assert a.sequence.ndim == 2 and a.sequence.shape[1] == 32
    mid = create("audio", "wav2vec2", model=tiny_wav2vec2, layer=1).encode_audio(x)
    assert not np.allclose(mid.embedding, a.embedding)
    assert enc.config()["layer"] == -1
    assert not enc.encode_audio(np.zeros(SR, np.float32)).available


def test_wav2vec2_missing_model_is_a_model_error(tmp_path):
    from multimodal_emotion.encoders import create
    from multimodal_emotion.errors import ModelError

    with pytest.raises(ModelError):
        create("audio", "wav2vec2", model=str(tmp_path / "nope"))


# ------------------------------------------------------------------------------ whisper


@pytest.fixture(scope="module")
def whisper_encoder():
    from multimodal_emotion.encoders import create

    return create("audio", "whisper", cpu_threads=1)


def test_whisper_embedding_shape_and_clip_interface(whisper_encoder):
    x = speechlike(2.0)
    out = whisper_encoder.encode_audio(x)
    assert out.available and out.embedding.shape == (whisper_encoder.dim,) == (768,)
    assert np.isfinite(out.embedding).all() and out.embedding.dtype == np.float32
    assert out.sequence.shape == (20, 384)  # 2 s at 10 frames/s
    clip = Clip(x, SR, None, None, 0.0, 2.0)
    np.testing.assert_allclose(whisper_encoder.encode(clip).embedding, out.embedding, atol=1e-5)
    no_audio = whisper_encoder.encode(Clip(None, SR, None, None, 0.0, 2.0))
    assert not no_audio.available and no_audio.reason == "no audio track"
    assert not whisper_encoder.encode_audio(np.zeros(2 * SR, np.float32)).available


def test_whisper_frames_cover_only_real_audio_and_chunk_long_clips(whisper_encoder):
    assert whisper_encoder.frames(speechlike(1.0)).shape == (50, 384)
    long = np.tile(speechlike(1.0), 31)  # 31 s: two chunks
    assert whisper_encoder.frames(long).shape == (31 * 50, 384)


def test_whisper_shares_a_given_model_instance(whisper_encoder):
    from multimodal_emotion.encoders.audio import WhisperAudioEncoder

    other = WhisperAudioEncoder(whisper_model=whisper_encoder.whisper_model)
    assert other.whisper_model is whisper_encoder.whisper_model
    x = speechlike(1.0)
    np.testing.assert_allclose(other.encode_audio(x).embedding,
                               whisper_encoder.encode_audio(x).embedding, atol=1e-5)


def test_whisper_layers_concatenate_per_layer_statistics(whisper_encoder):
    """``layers``: the torch encoder's listed layers, mean+std each, concatenated; its final
    layer is CTranslate2's output (int8 there, so close, not equal) and goes to the decoder."""
    from multimodal_emotion.encoders import create
    from multimodal_emotion.encoders.audio import WhisperAudioEncoder
    from multimodal_emotion.errors import ModelError

    layered = WhisperAudioEncoder(whisper_model=whisper_encoder.whisper_model, layers=[2, 4])
    assert layered.dim == 2 * 2 * 384 and layered.config()["layers"] == [2, 4]
    assert layered.config() != whisper_encoder.config()  # never shares a cache entry
    x = speechlike(2.0)
    out = layered.encode_audio(x)
    assert out.available and out.embedding.shape == (1536,) and out.sequence.shape == (20, 384)
    final = out.embedding[768:]
    ref = whisper_encoder.encode_audio(x).embedding
    assert final @ ref / np.linalg.norm(final) / np.linalg.norm(ref) > 0.99
    assert not np.allclose(out.embedding[:768], final)  # layer 2 is not the final layer
    chunks = out.extras["whisper_encoder_output"]  # plain (StorageView, n_frames) pairs
    assert np.asarray(chunks[0][0]).shape[-1] == 384 and chunks[0][1] == 100
    assert layered.frames(x).shape == (100, 384)
    assert not layered.encode_audio(np.zeros(2 * SR, np.float32)).available
    with pytest.raises(ModelError, match="do not exist"):
        create("audio", "whisper", whisper_model=whisper_encoder.whisper_model, layers=[5])


# ------------------------------------------------------------------------------ mfcc-lstm


def test_mfcc_lstm_shipped_weights_embed():
    from multimodal_emotion.encoders import create
    from multimodal_emotion.encoders.audio import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "mfcc_lstm" / "model.safetensors").exists():
        pytest.skip("MFCC-LSTM weights not trained yet (multimodal_emotion.training.mfcc_lstm)")
    enc = create("audio", "mfcc-lstm")
    out = enc.encode_audio(speechlike(1.5))
    assert out.available and out.embedding.shape == (enc.dim,)
    assert np.isfinite(out.embedding).all()
    assert (WEIGHTS_DIR / "mfcc_lstm" / "model.safetensors").stat().st_size < 3e6


# ------------------------------------------------------------------------------ RAVDESS


def test_parse_name_and_folds_without_data():
    r = parse_name("Actor_07/03-01-02-02-01-02-07.flac")
    assert (r.label, r.label8, r.actor, r.intensity, r.statement, r.repetition) == (
        "neutral", "calm", 7, 2, 1, 2)
    with pytest.raises(ValueError):
        parse_name("notes.flac")
    folds = ravdess_folds(np.arange(1, 25))
    assert folds.tolist() == [i // 4 for i in range(24)]
    with pytest.raises(ValueError):
        ravdess_folds([25])


def _data_root() -> Path:
    return Path(os.environ.get("MER_DATA", REPO.parent / "shared" / "data"))


@pytest.mark.data
def test_ravdess_records_and_speaker_independent_folds():
    base = _data_root() / "ravdess_speech"
    if not base.is_dir():
        pytest.skip(f"RAVDESS speech not found at {base} (set MER_DATA)")
    recs = load_ravdess(_data_root())
    assert len(recs) == 1440
    by_name = {Path(r.path).name: r for r in recs}
    r = by_name["03-01-05-02-01-01-01.flac"]
    assert (r.label, r.label8, r.actor, r.intensity) == ("angry", "angry", 1, 2)
    r = by_name["03-01-02-01-02-02-24.flac"]
    assert (r.label, r.label8, r.actor) == ("neutral", "calm", 24)
    actors = np.asarray([r.actor for r in recs])
    fold = ravdess_folds(actors)
    for f in range(6):
        assert not set(actors[fold == f]) & set(actors[fold != f])
        assert len(set(actors[fold == f])) == 4
    assert sorted(set(r.label8 for r in recs)) == sorted(
        ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"])
