"""Find a recording's turns in one streaming pass: who spoke when, for calls and long files.

:func:`find_turns` decodes the audio track chunk by chunk (video is not decoded: turns come
from speech) and keeps, whatever the length, only a Silero score per 32 ms frame and, for mono,
a 256-float speaker embedding per 0.8 s of speech. Then:

* **stereo** (two channels, as contact centres record calls): voice activity on each channel;
  channel 0 is speaker ``"left"``, channel 1 ``"right"`` (``Turn.channel`` set), and time where
  both channels speak at once is overtalk. A file whose two channels carry the same signal
  (dual mono) is treated as mono, which costs a second pass.
* **mono**: voice activity on the mix, then the speaker windows are clustered
  (:mod:`.diarize`) into ``speakers`` voices, or into an estimated count, and each speech region
  is cut where the nearest window's speaker changes; speakers are named ``"S1"``, ``"S2"``, ...
  in order of first speech.

Turns longer than ``max_turn_s`` are split at the quietest frame near each even cut, so a
monologue does not become one thirty-minute segment to analyze.
"""

from __future__ import annotations

import dataclasses
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..blas import use_one_blas_thread
from ..errors import InputError, MediaError
from ..media import Source
from ..media_stream import MediaChunk, iter_chunks, probe
from ..turns import Turn, overlaps
from .diarize import (DEFAULT_DISTANCE, SpeakerWindows, WindowEmbedder, cluster_speakers,
                      label_frames)
from .vad import FRAME_S, StreamingVAD, VadConfig, speech_regions

CHANNEL_NAMES = ("left", "right")
# A call can be hours long and memory is flat, so the limit here is on time, not memory.
CALL_MAX_DURATION_S = 4 * 3600.0
CHUNK_S = 10.0
MODES = ("auto", "stereo", "mono")


@dataclass
class TurnsResult:
    """Turns of a recording and what was learned finding them.

    ``turns``: sorted by start. ``channels``: 2 when turns come from the two channels of a
    stereo file (one speaker per channel), 1 when they come from diarizing a mono mix.
    ``speakers``: ids of the speakers who have turns (``"left"``/``"right"`` for stereo;
    ``"S1"``, ``"S2"``, ... in order of first speech for mono). ``overtalk``: ``(start, end)``
    stretches where both channels speak (stereo only; a mono mix gives each instant to one
    speaker). ``centroids``: per mono speaker, the L2-normed mean resemblyzer embedding of its
    windows (to match speakers across calls). ``speaker_count``: ``"given"``, ``"estimated"``
    or ``"channels"``. ``duration``: seconds of audio decoded. ``warnings``: what the decoder
    reported (a damaged tail) and notes such as a dual-mono file."""

    turns: list[Turn]
    duration: float
    channels: int
    speakers: list[str]
    overtalk: list[tuple[float, float]] = field(default_factory=list)
    centroids: dict[str, np.ndarray] = field(default_factory=dict)
    speaker_count: str = "channels"
    warnings: list[str] = field(default_factory=list)

    def talk_time(self) -> dict[str, float]:
        """Seconds of turns per speaker."""
        out = {s: 0.0 for s in self.speakers}
        for t in self.turns:
            out[t.speaker] = out.get(t.speaker, 0.0) + t.duration
        return out

    def to_dict(self) -> dict:
        return {
            "duration": round(self.duration, 3), "channels": self.channels,
            "speakers": list(self.speakers), "speaker_count": self.speaker_count,
            "turns": [{"start": round(t.start, 3), "end": round(t.end, 3), "speaker": t.speaker,
                       **({"channel": t.channel} if t.channel is not None else {})}
                      for t in self.turns],
            "overtalk": [[round(a, 3), round(b, 3)] for a, b in self.overtalk],
            "warnings": list(self.warnings),
        }


def find_turns(source: Source, *, speakers: int | None = None, max_turn_s: float = 30.0,
               mode: str = "auto", vad: VadConfig | None = None,
               distance: float = DEFAULT_DISTANCE, min_run_s: float = 0.4,
               max_duration: float | None = CALL_MAX_DURATION_S, chunk_s: float = CHUNK_S,
               progress: Callable[[float, float | None], None] | None = None) -> TurnsResult:
    """The turns of ``source`` (a path, bytes or a file object with audio).

    ``speakers``: how many voices a mono recording holds (``None``: estimated, see
    :func:`.diarize.cluster_speakers`; ignored for stereo). ``mode``: ``"auto"`` (stereo when the
    file has two or more channels that differ), ``"stereo"`` or ``"mono"`` (diarize the mix even
    of a stereo file, for a stereo microphone). ``distance``: the clustering threshold used when
    the count is estimated. ``min_run_s``: within one speech region, a speaker change that lasts
    less than this is absorbed by its neighbour. ``progress(done_s, total_s)`` is called after
    each decoded chunk (``total_s`` from the header, ``None`` when it says nothing).
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if speakers is not None and (not isinstance(speakers, int) or speakers < 1):
        raise InputError(f"speakers must be a positive whole number, not {speakers!r}")
    if not (isinstance(max_turn_s, (int, float)) and math.isfinite(max_turn_s)
            and max_turn_s >= 1.0):
        raise InputError(f"max_turn_s must be at least 1 second, not {max_turn_s!r}")
    use_one_blas_thread()  # the same turns on any core count, no spinning core (blas.py)
    source = _reopenable(source)
    info = probe(source)
    if not info.has_audio:
        raise MediaError(f"{info.name}: the file has no audio track, so it has no turns to find")
    if mode == "stereo" and info.channels < 2:
        raise InputError(f"{info.name}: mode 'stereo' needs two audio channels; the file has "
                         f"{info.channels}")
    cfg = vad or VadConfig()
    stereo = info.channels >= 2 and mode != "mono"
    audio_only = dataclasses.replace(info, has_video=False)
    chunks = iter_chunks(source, chunk_s=chunk_s, max_duration=max_duration,
                         keep_channels=stereo, info=audio_only)
    warnings: list[str] = []
    if stereo:
        vads = [StreamingVAD(), StreamingVAD()]
        energy = np.zeros(2)  # sum of (l - r)^2 and of l^2 + r^2: is it dual mono?
        # the right channel is scored on a second thread while the left is scored here
        # (onnxruntime lets go of the GIL): each channel keeps its own state and order, so the
        # scores are the same, in about half the time on two cores
        with ThreadPoolExecutor(1, thread_name_prefix="mer-vad") as other:
            for chunk in chunks:
                warnings.extend(chunk.warnings)
                if chunk.channels is not None:
                    right = other.submit(vads[1].feed, chunk.channels[1])
                    vads[0].feed(chunk.channels[0])
                    both = chunk.channels.astype(np.float64)
                    # sums, not a BLAS dot product: OpenBLAS's idle threads spin (see blas.py)
                    energy += (float(np.square(both[0] - both[1]).sum()),
                               float(np.square(both).sum()))
                    right.result()
                if progress:
                    progress(chunk.end, info.declared_duration)
        if mode == "auto" and energy[0] <= 1e-6 * energy[1] and energy[1] > 0:
            result = find_turns(source, speakers=speakers, max_turn_s=max_turn_s, mode="mono",
                                vad=cfg, distance=distance, min_run_s=min_run_s,
                                max_duration=max_duration, chunk_s=chunk_s, progress=progress)
            result.warnings.insert(0, "both channels carry the same signal (dual mono): "
                                      "speakers were found by clustering voices")
            return result
        for v in vads:
            v.finish()
        return _stereo_result(vads, cfg, max_turn_s, warnings)
    probs, duration, windows = mono_pass(chunks, cfg, warnings, progress, info.declared_duration)
    return mono_turns(probs, duration, windows, cfg, speakers, distance, min_run_s, max_turn_s,
                      warnings)


def mono_pass(chunks: Iterable[MediaChunk], cfg: VadConfig, warnings: list[str],
              progress: Callable[[float, float | None], None] | None = None,
              total: float | None = None) -> tuple[np.ndarray, float, SpeakerWindows]:
    """The streaming pass over a mono mix: Silero scores, duration and speaker windows.

    Silero scores each chunk on a second thread while the speaker windows of the chunk before
    are embedded here (both let go of the GIL in their engines): the chunks reach the VAD and
    the embedder in order, so the result is the one-thread result, and one more chunk is
    held."""
    v = StreamingVAD()
    embedder = WindowEmbedder(cfg)
    with ThreadPoolExecutor(1, thread_name_prefix="mer-vad") as scorer:
        scored = None  # the scores and frames of the last chunk, being computed
        for chunk in chunks:
            warnings.extend(chunk.warnings)
            if chunk.audio is not None:
                following = scorer.submit(v.feed, chunk.audio)
                if scored is not None:
                    embedder.add(*scored.result())
                scored = following
            if progress:
                progress(chunk.end, total)
        if scored is not None:
            embedder.add(*scored.result())
    embedder.add(*v.finish())
    return v.probs, v.duration, embedder.finish()


# -- stereo ----------------------------------------------------------------------------------
def _stereo_result(vads: list[StreamingVAD], cfg: VadConfig, max_turn_s: float,
                   warnings: list[str]) -> TurnsResult:
    duration = max(v.duration for v in vads)
    turns: list[Turn] = []
    regions = []
    for c, v in enumerate(vads):
        regs = speech_regions(v.probs, cfg, duration)
        regions.append(regs)
        for a, b in regs:
            turns.extend(Turn(x, y, CHANNEL_NAMES[c], c)
                         for x, y in split_long(a, b, v.probs, max_turn_s))
    turns.sort(key=lambda t: (t.start, t.end))
    names = [CHANNEL_NAMES[c] for c in (0, 1) if regions[c]]
    return TurnsResult(turns, duration, 2, names, overlaps(regions[0], regions[1]),
                       speaker_count="channels", warnings=warnings)


# -- mono ------------------------------------------------------------------------------------
def mono_turns(probs: np.ndarray, duration: float, windows: SpeakerWindows, cfg: VadConfig,
               speakers: int | None, distance: float = DEFAULT_DISTANCE,
               min_run_s: float = 0.4, max_turn_s: float = 30.0,
               warnings: list[str] | None = None) -> TurnsResult:
    """The turns of a mono recording from what its pass kept: Silero scores and the speaker
    windows (the benchmark reuses one pass to try clustering settings)."""
    regions = speech_regions(probs, cfg, duration)
    labels, cents = cluster_speakers(windows, speakers, distance)
    segments: list[tuple[float, float, int]] = []
    for a, b in regions:
        if not len(labels):  # speech too short to embed anywhere: one unnamed voice
            segments.append((a, b, 0))
            continue
        segments.extend(_cut_region(a, b, windows, labels, probs, min_run_s))
    # speakers are named by their first turn (a cluster may own no turn once short runs are
    # absorbed, so the clusters' own order is not enough)
    order: list[int] = []
    for _, _, k in sorted(segments):
        if k not in order:
            order.append(k)
    name = {k: f"S{i + 1}" for i, k in enumerate(order)}
    turns = [Turn(x, y, name[k]) for a, b, k in sorted(segments)
             for x, y in split_long(a, b, probs, max_turn_s)]
    centroids = {name[k]: cents[k] for k in order if k < len(cents)}
    return TurnsResult(turns, duration, 1, [name[k] for k in order], [], centroids,
                       "given" if speakers is not None else "estimated", list(warnings or []))


def _cut_region(a: float, b: float, windows, labels: np.ndarray, probs: np.ndarray,
                min_run_s: float) -> list[tuple[float, float, int]]:
    """One speech region split where the speaker changes: each frame takes the speaker of the
    nearest window; runs shorter than ``min_run_s`` join the longer neighbour; each boundary
    moves to the quietest frame within 0.3 s (a change of speaker is a dip in speech)."""
    n = max(1, int(round((b - a) / FRAME_S)))
    times = a + (np.arange(n) + 0.5) * (b - a) / n
    lab = label_frames(windows, labels, times)
    runs = _runs(lab)
    step = (b - a) / n
    min_frames = max(1, int(round(min_run_s / step)))
    changed = True
    while changed and len(runs) > 1:
        changed = False
        short = [i for i, (s, e, _) in enumerate(runs) if e - s < min_frames]
        if short:
            i = min(short, key=lambda i: runs[i][1] - runs[i][0])
            s, e, _ = runs[i]
            left = runs[i - 1] if i > 0 else None
            right = runs[i + 1] if i + 1 < len(runs) else None
            into = left if right is None or (left is not None and
                                             left[1] - left[0] >= right[1] - right[0]) else right
            lab[s:e] = into[2]
            runs = _runs(lab)
            changed = True
    out = []
    bounds = [a]
    for s, _, _ in runs[1:]:
        t = a + s * step
        bounds.append(_quietest(probs, t, 0.3, lo=bounds[-1] + step, hi=b - step))
    bounds.append(b)
    for (s, e, k), x, y in zip(runs, bounds[:-1], bounds[1:]):
        out.append((x, y, k))
    return out


def _runs(lab: np.ndarray) -> list[tuple[int, int, int]]:
    edges = np.flatnonzero(np.diff(lab)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [lab.size]])
    return [(int(s), int(e), int(lab[s])) for s, e in zip(starts, ends)]


def _quietest(probs: np.ndarray, t: float, reach: float, lo: float, hi: float) -> float:
    """The start of the frame with the lowest speech score within ``reach`` of ``t`` (and inside
    ``[lo, hi]``); ``t`` itself when there is no frame there."""
    i0 = int(math.floor(max(lo, t - reach) / FRAME_S))
    i1 = int(math.ceil(min(hi, t + reach) / FRAME_S))
    if i1 <= i0 or i0 >= probs.size:
        return min(max(t, lo), hi)
    seg = probs[i0:min(i1, probs.size)]
    return min(max((i0 + int(np.argmin(seg))) * FRAME_S, lo), hi)


# -- both ------------------------------------------------------------------------------------
def split_long(a: float, b: float, probs: np.ndarray, max_turn_s: float
               ) -> list[tuple[float, float]]:
    """``[a, b)`` in pieces of at most ``max_turn_s``: even cuts, each moved to the quietest
    frame within a second (as long as no piece gets longer than the limit)."""
    n = math.ceil((b - a) / max_turn_s - 1e-9)
    if n <= 1:
        return [(a, b)]
    cuts = [a]
    for j in range(1, n):
        even = a + j * (b - a) / n
        lo = max(cuts[-1] + 1.0, b - (n - j) * max_turn_s)
        hi = min(cuts[-1] + max_turn_s, b - 1.0)
        cuts.append(_quietest(probs, even, 1.0, lo, hi) if hi > lo else even)
    cuts.append(b)
    return list(zip(cuts[:-1], cuts[1:]))


def _reopenable(source: Source) -> Source:
    """A source that can be decoded twice (each track and the dual-mono pass open it again):
    paths and bytes as they are; a file object by its path, else read once."""
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        return source
    path = getattr(source, "name", None)
    if isinstance(path, str) and os.path.isfile(path):
        return path
    return source.read()
