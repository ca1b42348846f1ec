"""Turns: who spoke when, and the media of each turn.

A call is analyzed turn by turn, not in fixed windows: a :class:`Turn` is one speaker's stretch
of speech (``channel`` set for stereo recordings, where each party has a channel). Finding turns
(voice activity, channels, speaker clustering) happens elsewhere and yields a short list of
:class:`Turn`; :func:`iter_turn_clips` then streams the recording once more and hands each turn
its media as a :class:`~multimodal_emotion.types.Clip` (that speaker's channel when the turn has
one), holding only the chunks the unfinished turns still need, so memory is bounded by the
longest turn, not by the recording.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from .media import SAMPLE_RATE
from .media_stream import MediaChunk
from .types import Clip


@dataclass
class Turn:
    """``[start, end)`` seconds of one speaker. ``channel``: 0 left, 1 right for stereo
    recordings (``None`` for mono, where ``speaker`` comes from clustering voices)."""

    start: float
    end: float
    speaker: str
    channel: int | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


def overlaps(a: list[tuple[float, float]], b: list[tuple[float, float]]
             ) -> list[tuple[float, float]]:
    """Intersections of two sorted lists of disjoint intervals (overtalk between channels,
    overlap between speakers)."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def iter_turn_clips(chunks: Iterable[MediaChunk], turns: Iterable[Turn], fps: float,
                    name: str = "<stream>") -> Iterator[tuple[Turn, Clip]]:
    """Each turn (in order of start) with its media: audio of the turn's channel when it has
    one and the chunks kept channels, else the mono mix; the frames inside the turn, with times
    relative to its start."""
    pending = sorted(turns, key=lambda t: (t.start, t.end))
    held: deque[MediaChunk] = deque()
    source = iter(chunks)
    exhausted = False
    for i, turn in enumerate(pending):
        while not exhausted and (not held or held[-1].end < turn.end):
            try:
                held.append(next(source))
            except StopIteration:
                exhausted = True
        yield turn, _cut(held, turn, fps, name)
        # drop what no later turn needs (turns are sorted by start)
        keep_from = pending[i + 1].start if i + 1 < len(pending) else float("inf")
        while held and held[0].end <= keep_from:
            held.popleft()


def _cut(held: Iterable[MediaChunk], turn: Turn, fps: float, name: str) -> Clip:
    pieces: list[np.ndarray] = []
    frames: list[np.ndarray] = []
    times: list[float] = []
    any_audio = False
    for c in held:
        if c.end <= turn.start or c.start >= turn.end:
            continue
        audio = c.audio
        if turn.channel is not None and c.channels is not None \
                and turn.channel < c.channels.shape[0]:
            audio = c.channels[turn.channel]
        if audio is not None:
            any_audio = True
            a = max(0, int(round((turn.start - c.start) * SAMPLE_RATE)))
            b = max(a, int(round((turn.end - c.start) * SAMPLE_RATE)))
            pieces.append(audio[a:b])
        if c.frames is not None:
            keep = (c.frame_times >= turn.start) & (c.frame_times < turn.end)
            frames.extend(c.frames[keep])
            times.extend((c.frame_times[keep] - turn.start).tolist())
    audio = np.concatenate(pieces) if any_audio and pieces else None
    return Clip(audio if audio is not None and audio.size else None, SAMPLE_RATE,
                np.stack(frames) if frames else None,
                np.asarray(times, dtype=np.float64) if times else None, fps, turn.duration, name)
