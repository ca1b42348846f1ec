"""Core value types that travel through the pipeline: media -> encoders -> fusion -> Prediction.

They are plain dataclasses of numpy arrays so every layer can be tested without models, and so
the shells (CLI, HTTP) can serialise a :class:`Prediction` with ``to_dict()`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .labels import LABELS

MODALITIES: tuple[str, ...] = ("audio", "text", "face")


@dataclass
class Clip:
    """Decoded media, ready for the encoders.

    ``audio`` is float32 mono at ``sample_rate`` (16 kHz) or ``None`` when the file has no audio
    track; ``frames`` is a uint8 array ``[N, H, W, 3]`` (RGB) sampled at ``fps`` or ``None`` when it
    has no video track. ``frame_times`` gives each frame's time in seconds.
    """

    audio: np.ndarray | None
    sample_rate: int
    frames: np.ndarray | None
    frame_times: np.ndarray | None
    fps: float
    duration: float
    source: str = "<arrays>"
    warnings: list[str] = field(default_factory=list)
    """What the decoder skipped (a damaged tail, undecodable packets): the answer still comes,
    but the caller should know it covers less than the file claims."""

    @property
    def has_audio(self) -> bool:
        return self.audio is not None and self.audio.size > 0

    @property
    def has_video(self) -> bool:
        return self.frames is not None and len(self.frames) > 0

    def missing(self) -> list[str]:
        """Tracks the file lacked, in words a user understands."""
        out = []
        if not self.has_audio:
            out.append("audio track")
        if not self.has_video:
            out.append("video track")
        return out

    def window(self, start: float, end: float) -> "Clip":
        """The part of the clip between ``start`` and ``end`` seconds (no copy of the arrays)."""
        audio = None
        if self.audio is not None:
            a, b = int(round(start * self.sample_rate)), int(round(end * self.sample_rate))
            audio = self.audio[a:b]
        frames = times = None
        if self.frames is not None and self.frame_times is not None:
            keep = (self.frame_times >= start) & (self.frame_times < end)
            frames, times = self.frames[keep], self.frame_times[keep] - start
        return Clip(audio, self.sample_rate, frames, times, self.fps, end - start, self.source)


@dataclass
class ModalityOutput:
    """What one encoder says about one clip.

    ``embedding`` is a fixed-size vector ``[D]``; ``sequence`` an optional ``[T, D_seq]`` array
    for attention fusion. ``available`` is False when the modality is absent (no face, silence, no
    speech): the embedding is then zeros *and must be masked*, never used as data. ``reason``
    says why it is unavailable; ``extras`` carries transcript, frames_with_face, etc.
    """

    modality: str
    embedding: np.ndarray
    available: bool
    sequence: np.ndarray | None = None
    reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def missing(cls, modality: str, dim: int, reason: str, **extras: Any) -> "ModalityOutput":
        return cls(modality, np.zeros(dim, np.float32), False, None, reason, dict(extras))


@dataclass
class ModalityView:
    """The label a single modality would give on its own, for the user to compare with fusion."""

    available: bool
    label: str | None
    probabilities: dict[str, float] | None
    reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "available": self.available,
            "label": self.label,
            "probabilities": self.probabilities,
        }
        if self.reason:
            d["reason"] = self.reason
        d.update(self.extras)
        return d


@dataclass
class Explanation:
    """Which modality decided: exact Shapley values of the available modalities for the fused
    probability of ``label``; ``base`` is that probability with no modality (the target prior),
    so ``base + sum(contributions.values()) == probabilities[label]``. Masked modalities
    contribute 0. ``words`` (optional, ``--explain``): transcript words that moved the text
    expert most, with the change in its probability of ``label`` when each is left out."""

    label: str
    base: float
    contributions: dict[str, float]
    words: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.label, "base": round(self.base, 5),
                             "contributions": {m: round(v, 5)
                                               for m, v in self.contributions.items()}}
        if self.words is not None:
            d["words"] = self.words
        return d


@dataclass
class Segment:
    start: float
    end: float
    label: str
    probabilities: dict[str, float]
    confidence: float | None = None
    explanation: Explanation | None = None
    business: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"start": round(self.start, 3), "end": round(self.end, 3),
                             "label": self.label, "probabilities": self.probabilities}
        if self.confidence is not None:
            d["confidence"] = round(self.confidence, 5)
        if self.explanation is not None:
            d["explanation"] = self.explanation.to_dict()
        if self.business is not None:
            d["business"] = self.business
        return d


@dataclass
class WindowLogits:
    """One analyzed window's raw expert logits (``None``: the modality was masked there).

    Not part of :meth:`Prediction.to_dict`: they are for refitting the fusion's numbers
    (``mer adapt``, the server's feedback store), which needs the experts' own outputs, never
    the media."""

    start: float
    end: float
    logits: dict[str, list[float] | None]

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3),
                "logits": {m: None if v is None else [round(float(x), 5) for x in v]
                           for m, v in self.logits.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WindowLogits":
        return cls(float(d["start"]), float(d["end"]),
                   {m: None if v is None else [float(x) for x in v]
                    for m, v in d["logits"].items()})


@dataclass
class Prediction:
    """The answer for one clip: fused label, probabilities over :data:`LABELS`, per-modality views,
    segments for long clips, and where the time went."""

    label: str | None
    probabilities: dict[str, float] | None
    modalities: dict[str, ModalityView]
    fusion: str
    duration_s: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    path: str | None = None
    reason: str | None = None  # why there is no label, when no modality was available
    # the fused probability of ``label`` (calibrated experts, product of experts by default)
    confidence: float | None = None
    # the experts' own labels against the fused one: ``{"score", "agree", "disagree"}``
    agreement: dict[str, Any] | None = None
    explanation: Explanation | None = None
    business: dict[str, Any] | None = None  # the user's categories (``label_maps``)
    warnings: list[str] = field(default_factory=list)
    # per-window raw expert logits, for refitting the fusion (not serialised by to_dict)
    expert_logits: list[WindowLogits] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.path is not None:
            d["path"] = self.path
        d.update({
            "label": self.label,
            "probabilities": self.probabilities,
            "confidence": None if self.confidence is None else round(self.confidence, 5),
            "agreement": self.agreement,
            "explanation": None if self.explanation is None else self.explanation.to_dict(),
            "modalities": {m: v.to_dict() for m, v in self.modalities.items()},
            "fusion": self.fusion,
            "duration_s": round(self.duration_s, 3),
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        })
        if self.business is not None:
            d["business"] = self.business
        if self.reason:
            d["reason"] = self.reason
        if self.warnings:
            d["warnings"] = list(self.warnings)
        if self.segments:
            d["segments"] = [s.to_dict() for s in self.segments]
        return d


def probs_to_dict(probs: np.ndarray) -> dict[str, float]:
    """Probabilities over :data:`LABELS` as a plain, JSON-friendly dict."""
    return {name: round(float(p), 5) for name, p in zip(LABELS, probs)}
