"""Who talked, how much, over whom: per-speaker numbers of a call computed from its turns.

Times are unions of intervals, so a speaker's overlapping turns (a stereo channel cut twice) are
never counted twice.

*Interruption* (exact rule): speaker B interrupts speaker A when a turn of B starts while a turn
of A is under way (``A.start < B.start < A.end``), A stops within ``yield_s`` seconds of B's
start (``A.end - B.start <= yield_s``), and B is still talking when A stops (``B.end > A.end``):
B took the floor. A short "mhm" inside A's turn that ends before A does is overtalk, not an
interruption; A talking on for longer than ``yield_s`` after B started is overtalk too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..labels import LABELS
from ..turns import overlaps
from .analysis import TurnAnalysis

DEFAULT_YIELD_S = 2.0
UNKNOWN = "none"  # share of talk time whose turn had no label (no modality available)

Interval = tuple[float, float]


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Merge overlapping ``[start, end)`` intervals into sorted, disjoint ones."""
    out: list[list[float]] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def total(intervals: Iterable[Interval]) -> float:
    return float(sum(b - a for a, b in union(intervals)))


def intersect(x: Sequence[Interval], y: Sequence[Interval]) -> list[Interval]:
    """Where two unions of intervals overlap."""
    return overlaps(union(x), union(y))


@dataclass
class SpeakerStats:
    """One speaker's share of the call. ``shares``: fraction of their talk time per label
    (``"none"``: turns with no answer), adding up to 1 when they spoke at all."""

    speaker: str
    role: str
    channel: int | None
    turns: int
    talk_s: float
    silent_s: float  # the call's duration minus this speaker's talk time
    overtalk_s: float  # time this speaker talked while someone else did
    interruptions: int  # times this speaker took the floor from someone talking
    interrupted: int  # times someone took the floor from this speaker
    shares: dict[str, float] = field(default_factory=dict)
    timeline: list[tuple[float, float, str | None]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "channel": self.channel, "turns": self.turns,
                "talk_s": round(self.talk_s, 3), "silent_s": round(self.silent_s, 3),
                "overtalk_s": round(self.overtalk_s, 3), "interruptions": self.interruptions,
                "interrupted": self.interrupted,
                "shares": {k: round(v, 4) for k, v in self.shares.items()}}


@dataclass
class CallStats:
    """The call as a whole: per-speaker stats, time nobody spoke, time two spoke at once."""

    duration: float
    speakers: dict[str, SpeakerStats]
    silence_s: float
    longest_silence_s: float
    overtalk_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"silence_s": round(self.silence_s, 3),
                "longest_silence_s": round(self.longest_silence_s, 3),
                "overtalk_s": round(self.overtalk_s, 3),
                "speakers": {s: v.to_dict() for s, v in self.speakers.items()}}


def interruptions(turns: Sequence[TurnAnalysis], yield_s: float = DEFAULT_YIELD_S
                  ) -> list[tuple[TurnAnalysis, TurnAnalysis]]:
    """``(interrupted turn, interrupting turn)`` pairs under the rule in the module docstring."""
    out = []
    ordered = sorted(turns, key=lambda t: t.start)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            if b.start >= a.end:
                break
            if b.speaker != a.speaker and a.start < b.start \
                    and a.end - b.start <= yield_s and b.end > a.end:
                out.append((a, b))
    return out


def call_stats(turns: Sequence[TurnAnalysis], duration: float, roles: dict[str, str],
               speakers: Sequence[str] | None = None,
               yield_s: float = DEFAULT_YIELD_S) -> CallStats:
    """Per-speaker talk time, silence, overtalk, interruptions and emotion shares."""
    names = list(speakers) if speakers is not None else list(dict.fromkeys(
        t.speaker for t in sorted(turns, key=lambda t: t.start)))
    spans = {s: [(t.start, t.end) for t in turns if t.speaker == s] for s in names}
    pairs = interruptions(turns, yield_s)
    out: dict[str, SpeakerStats] = {}
    for s in names:
        mine = sorted((t for t in turns if t.speaker == s), key=lambda t: t.start)
        others = [iv for o, ivs in spans.items() if o != s for iv in ivs]
        talk = total(spans[s])
        shares: dict[str, float] = {}
        spoken = sum(t.duration for t in mine)
        if spoken > 0:
            for t in mine:
                key = t.label or UNKNOWN
                shares[key] = shares.get(key, 0.0) + t.duration / spoken
            shares = {k: shares[k] for k in (*LABELS, UNKNOWN) if k in shares} | \
                {k: v for k, v in shares.items() if k not in LABELS and k != UNKNOWN}
        channels = {t.channel for t in mine}
        out[s] = SpeakerStats(
            s, roles.get(s, "unknown"), channels.pop() if len(channels) == 1 else None,
            len(mine), talk, max(0.0, duration - talk), total(intersect(spans[s], others)),
            sum(1 for _, b in pairs if b.speaker == s), sum(1 for a, _ in pairs if a.speaker == s),
            shares, [(t.start, t.end, t.label) for t in mine])
    speech = union((t.start, t.end) for t in turns)
    gaps = [b - a for a, b in _gaps(speech, duration)]
    overlap: list[Interval] = []
    for i, s in enumerate(names):
        for o in names[i + 1:]:
            overlap.extend(intersect(spans[s], spans[o]))
    return CallStats(duration, out, float(sum(gaps)), float(max(gaps, default=0.0)),
                     total(overlap))


def _gaps(speech: list[Interval], duration: float) -> list[Interval]:
    """Stretches of ``[0, duration)`` with no speech."""
    out, t = [], 0.0
    for a, b in speech:
        if a > t:
            out.append((t, a))
        t = max(t, b)
    if duration > t:
        out.append((t, duration))
    return out
