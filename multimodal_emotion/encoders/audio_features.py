"""Audio helpers that need no torch: levels and silence, Whisper's log-mel pieces, pooling.

Why a module of its own: the ONNX runtime (``onnx_runtime.py``) must embed audio exactly as the
PyTorch ``whisper`` encoder does without importing torch, so everything the two share lives
here and :mod:`.audio` imports it back (its public names are unchanged).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..types import Clip, ModalityOutput

SAMPLE_RATE = 16000
SILENCE_DBFS = -60.0
LEVEL_FRAME_S = 0.02
LEVEL_PERCENTILE = 95.0
SILENCE_RULE = f"p{LEVEL_PERCENTILE:g} 20ms RMS < {SILENCE_DBFS:g} dBFS"
MIN_SECONDS = 0.1


def rms_dbfs(wave: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale square wave is 0 dBFS)."""
    if wave.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def active_level_dbfs(wave: np.ndarray) -> float:
    """95th percentile of 20 ms frame RMS levels, in dBFS: the level of the speech itself."""
    n = int(LEVEL_FRAME_S * SAMPLE_RATE)
    if wave.size < n:
        return rms_dbfs(wave)
    frames = wave[: wave.size // n * n].reshape(-1, n).astype(np.float64)
    rms = float(np.percentile(np.sqrt(np.mean(frames**2, axis=1)), LEVEL_PERCENTILE))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def normalize_loudness(wave: np.ndarray, target_dbfs: float) -> np.ndarray:
    """``wave`` scaled so its active level (:func:`active_level_dbfs`) is ``target_dbfs``.

    One gain per utterance, from that utterance alone: a quiet studio and a loud one reach the
    encoder at the same level, and no other clip is consulted. Float audio, so no clipping.
    """
    level = active_level_dbfs(wave)
    if not np.isfinite(level):
        return wave
    return (wave * np.float32(10.0 ** ((target_dbfs - level) / 20.0))).astype(np.float32)


def trim_silence(wave: np.ndarray, below_db: float, margin_s: float = 0.1) -> np.ndarray:
    """``wave`` without its leading and trailing stretches more than ``below_db`` dB under its
    active level (:func:`active_level_dbfs`), keeping ``margin_s`` around the speech.

    Why: a mean+std pooled embedding counts every frame, so how much silence a recording keeps
    around the words (a second on each side of every RAVDESS sentence, almost none in other
    corpora or in a call's voice-cut turns) would otherwise move the embedding as much as the
    voice does. Per utterance, from that utterance alone; pauses inside the speech are kept.
    """
    n = int(LEVEL_FRAME_S * SAMPLE_RATE)
    k = wave.size // n
    if k < 3:
        return wave
    frames = wave[: k * n].reshape(k, n).astype(np.float64)
    level = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    loud = np.flatnonzero(level > np.percentile(level, LEVEL_PERCENTILE) - below_db)
    if loud.size == 0:
        return wave
    margin = int(round(margin_s / LEVEL_FRAME_S))
    start, stop = max(0, loud[0] - margin), loud[-1] + 1 + margin
    return wave[start * n: wave.size if stop >= k else stop * n]


def check_audio(wave: np.ndarray | None, dim: int) -> ModalityOutput | None:
    """The ``missing`` output when there is nothing worth embedding, else ``None``."""
    if wave is None or wave.size == 0:
        return ModalityOutput.missing("audio", dim, reason="no audio track")
    if wave.size < MIN_SECONDS * SAMPLE_RATE:
        return ModalityOutput.missing("audio", dim, reason=f"audio shorter than {MIN_SECONDS} s")
    level = active_level_dbfs(wave)
    if level < SILENCE_DBFS:
        return ModalityOutput.missing("audio", dim, reason=f"audio is silent (active level "
                                      f"{level:.1f} dBFS < {SILENCE_DBFS:.0f} dBFS)",
                                      level_dbfs=level)
    return None


def clip_audio(clip: Clip) -> np.ndarray | None:
    if not clip.has_audio:
        return None
    wave = np.asarray(clip.audio, dtype=np.float32)
    if clip.sample_rate != SAMPLE_RATE:
        import librosa

        wave = librosa.resample(wave, orig_sr=clip.sample_rate, target_sr=SAMPLE_RATE)
    return wave


def kept_frames(chunks: list[tuple[Any, int]]) -> np.ndarray:
    return np.concatenate([np.asarray(sv)[0][:n] for sv, n in chunks]).astype(np.float32)


def stats_pool(frames: np.ndarray) -> np.ndarray:
    """Mean and standard deviation over time: [T, D] -> [2D]."""
    return np.concatenate([frames.mean(0), frames.std(0)]).astype(np.float32)


def time_pool(frames: np.ndarray, factor: int) -> np.ndarray:
    """Average consecutive groups of ``factor`` frames (the last group may be shorter)."""
    if factor <= 1 or len(frames) <= 1:
        return frames.astype(np.float32)
    n = len(frames)
    starts = np.arange(0, n, factor)
    return (np.add.reduceat(frames, starts, axis=0) / np.diff(np.append(starts, n))[:, None]
            ).astype(np.float32)


def whisper_pieces(feature_extractor: Any, wave: np.ndarray, pad_to_s: float,
                   loudness_dbfs: float | None = None, trim_db: float | None = None
                   ) -> Iterator[tuple[np.ndarray, int]]:
    """``(mel [n_mels, T_even], n_keep)`` for each <= 30 s piece of ``wave``: the log-mel
    zero-padded to ``pad_to_s`` seconds and how many of the encoder's 50 frames/s cover real
    audio (a last piece shorter than MIN_SECONDS is dropped when there is an earlier one).
    ``trim_db``: first drop leading/trailing silence (:func:`trim_silence`); ``loudness_dbfs``:
    then scale to that active level (:func:`normalize_loudness`)."""
    from faster_whisper.audio import pad_or_trim

    if trim_db is not None:
        wave = trim_silence(wave, trim_db)
    if loudness_dbfs is not None:
        wave = normalize_loudness(wave, loudness_dbfs)
    chunk = feature_extractor.n_samples  # 30 s
    for start in range(0, len(wave), chunk):
        piece = wave[start:start + chunk]
        if len(piece) < MIN_SECONDS * SAMPLE_RATE and start:
            break
        mel = feature_extractor(piece)  # [n_mels, frames + 1], 100 frames/s
        n_keep = max(1, int(np.ceil(len(piece) / SAMPLE_RATE * 50)))
        mel = mel[:, : 2 * n_keep]  # drop the extractor's extra frame
        mel = pad_or_trim(mel, max(mel.shape[1], int(round(pad_to_s * 100))))
        if mel.shape[1] % 2:  # the encoder's stride-2 conv wants an even length
            mel = np.pad(mel, ((0, 0), (0, 1)))
        yield np.ascontiguousarray(mel), n_keep


class LayeredOutput:
    """One piece's layered-encoder result: ``final`` (a CTranslate2 ``StorageView`` the
    transcriber decodes from) + the listed layers' kept frames."""

    __slots__ = ("final", "layers")

    def __init__(self, final: Any, layers: list[np.ndarray]) -> None:
        self.final, self.layers = final, layers


def pool_layers(chunks: list[tuple[LayeredOutput, int]], n_layers: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(embedding, sequence) of layered pieces: each layer's mean + std, concatenated; the
    sequence is the layers' mean frame at 10 frames/s."""
    per_layer = [np.concatenate([enc.layers[j] for enc, _ in chunks]).astype(np.float32)
                 for j in range(n_layers)]
    embedding = np.concatenate([stats_pool(f) for f in per_layer])
    return embedding, time_pool(np.mean(per_layer, axis=0), 5)



def ct2_encode(whisper_model: Any, wave: np.ndarray, pad_to_s: float = 10.0,
               loudness_dbfs: float | None = None) -> list[tuple[Any, int]]:
    """CTranslate2's Whisper encoder (final layer, a ``StorageView``) on each piece of
    ``wave``: ``(encoder_output, n_keep)`` pairs a transcriber can decode from."""
    fe = whisper_model.feature_extractor
    return [(whisper_model.encode(mel), n_keep)
            for mel, n_keep in whisper_pieces(fe, wave, pad_to_s, loudness_dbfs)]
