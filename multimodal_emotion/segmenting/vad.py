"""Voice activity: Silero VAD run chunk by chunk, then speech regions cut from its frame scores.

The model is Silero VAD v6, the ONNX file that ships inside faster-whisper (a core dependency),
so nothing is downloaded and no new package is needed. faster-whisper calls it on a whole array
at once; :class:`StreamingVAD` feeds it the same 512-sample frames a chunk at a time, carrying
the LSTM state (``h``, ``c``) and the 64-sample context from one call to the next, so its scores
are identical to the whole-array call (checked in the tests) while memory holds one chunk. What
is kept is one float per 32 ms frame (450 KB an hour), from which :func:`speech_regions` cuts
the regions once the stream ends: hysteresis on the score, short gaps merged, tiny blips dropped.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from ..media import SAMPLE_RATE

FRAME = 512  # samples per Silero frame at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame Silero v6 sees before each frame
FRAME_S = FRAME / SAMPLE_RATE


@dataclass
class VadConfig:
    """How frame scores become speech regions.

    ``threshold``: a frame at or above it starts speech; ``neg_threshold``: speech goes on until
    a frame falls below it (hysteresis, as Silero's own post-processing, so a dip in the middle
    of a word does not cut it). ``min_gap_s``: silences shorter than this inside one party's
    speech are bridged (a breath is not a new turn). ``min_speech_s``: regions shorter than this
    are dropped (a click, a cough). ``pad_s``: each region is widened by this much on both sides
    (never into its neighbour), since Silero's score rises a frame or two after a soft onset."""

    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_gap_s: float = 0.5
    min_speech_s: float = 0.25
    pad_s: float = 0.05


@functools.lru_cache(maxsize=1)
def _session():
    """The ONNX session of Silero VAD v6 from faster-whisper's assets, loaded once."""
    try:
        import onnxruntime
        from faster_whisper.utils import get_assets_path
    except ImportError as exc:  # pragma: no cover - both are core dependencies
        raise ModelError(f"voice activity detection needs faster-whisper and onnxruntime "
                         f"({exc})") from exc
    import os

    path = os.path.join(get_assets_path(), "silero_vad_v6.onnx")
    if not os.path.exists(path):
        raise ModelError(f"Silero VAD model not found at {path} (reinstall faster-whisper)")
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"],
                                        sess_options=opts)


class StreamingVAD:
    """Silero speech probabilities for audio fed in pieces of any length.

    :meth:`feed` returns the scores of the whole frames completed by this piece (frame ``i``
    covers samples ``[512 i, 512 (i + 1))``) with their 512-sample frames, so a consumer can act
    on speech as it arrives; :meth:`finish` scores the last partial frame (zero-padded).
    ``probs`` holds every score so far."""

    def __init__(self) -> None:
        self.session = _session()
        self.h = np.zeros((1, 1, 128), np.float32)
        self.c = np.zeros((1, 1, 128), np.float32)
        self.context = np.zeros(CONTEXT, np.float32)
        self.rest = np.zeros(0, np.float32)
        self._probs: list[np.ndarray] = []
        self.n_samples = 0

    def feed(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score the whole frames now available; returns ``(probs [k], frames [k, 512])``."""
        audio = np.asarray(audio, np.float32).ravel()
        self.n_samples += audio.size
        data = np.concatenate([self.rest, audio]) if self.rest.size else audio
        k = data.size // FRAME
        self.rest = data[k * FRAME:].copy()
        if not k:
            return np.zeros(0, np.float32), np.zeros((0, FRAME), np.float32)
        return self._score(data[:k * FRAME].reshape(k, FRAME)), data[:k * FRAME].reshape(k, FRAME)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Score what is left (less than one frame), padded with zeros."""
        if not self.rest.size:
            return np.zeros(0, np.float32), np.zeros((0, FRAME), np.float32)
        frame = np.zeros((1, FRAME), np.float32)
        frame[0, :self.rest.size] = self.rest
        self.rest = np.zeros(0, np.float32)
        return self._score(frame), frame

    def _score(self, frames: np.ndarray) -> np.ndarray:
        prev = np.concatenate([self.context[None], frames[:-1, -CONTEXT:]], 0)
        batch = np.ascontiguousarray(np.concatenate([prev, frames], 1))
        out, self.h, self.c = self.session.run(None, {"input": batch, "h": self.h, "c": self.c})
        self.context = frames[-1, -CONTEXT:].copy()
        probs = np.asarray(out, np.float32).ravel()
        self._probs.append(probs)
        return probs

    @property
    def probs(self) -> np.ndarray:
        if len(self._probs) > 1:
            self._probs = [np.concatenate(self._probs)]
        return self._probs[0] if self._probs else np.zeros(0, np.float32)

    @property
    def duration(self) -> float:
        return self.n_samples / SAMPLE_RATE


def hysteresis(probs: np.ndarray, cfg: VadConfig) -> np.ndarray:
    """Speech (True) per frame: on at ``threshold``, off below ``neg_threshold``."""
    out = np.zeros(probs.size, bool)
    on = False
    # a loop over ~112k frames an hour is fast enough and keeps the rule obvious
    for i, p in enumerate(probs.tolist()):
        if on:
            on = p >= cfg.neg_threshold
        else:
            on = p >= cfg.threshold
        out[i] = on
    return out


def speech_regions(probs: np.ndarray, cfg: VadConfig | None = None,
                   duration: float | None = None) -> list[tuple[float, float]]:
    """Speech regions ``(start, end)`` in seconds from Silero frame scores: hysteresis, gaps
    shorter than ``min_gap_s`` bridged, regions shorter than ``min_speech_s`` dropped, then each
    padded by ``pad_s`` (clipped to its neighbours and to ``duration``)."""
    cfg = cfg or VadConfig()
    speech = hysteresis(np.asarray(probs, np.float32), cfg)
    if not speech.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(np.int8), [0]])))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]  # frame [a, b)
    merged: list[list[int]] = []
    gap = cfg.min_gap_s / FRAME_S
    for a, b in runs:
        if merged and a - merged[-1][1] < gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    end_all = duration if duration is not None else probs.size * FRAME_S
    regions = [(a * FRAME_S, min(b * FRAME_S, end_all)) for a, b in merged
               if (b - a) * FRAME_S >= cfg.min_speech_s]
    return pad_regions(regions, cfg.pad_s, end_all)


def pad_regions(regions: list[tuple[float, float]], pad: float,
                end_all: float) -> list[tuple[float, float]]:
    """Widen each region by ``pad`` on both sides without crossing into its neighbours (a gap is
    shared half and half) or past ``[0, end_all]``."""
    out = []
    for i, (a, b) in enumerate(regions):
        lo = 0.0 if i == 0 else (regions[i - 1][1] + a) / 2
        hi = end_all if i == len(regions) - 1 else (b + regions[i + 1][0]) / 2
        out.append((max(lo, a - pad), min(hi, b + pad)))
    return out
