"""RAVDESS speech: records parsed from file names, and the speaker-independent folds.

The labels live in the name ``03-01-EE-II-SS-RR-AA.flac`` (EE emotion, II intensity, SS
statement, RR repetition, AA actor), so no label file is needed. Evaluation must never put one
actor's clips on both sides of a split: a random split leaks the voice and inflates scores, so
:func:`ravdess_folds` gives the protocol's 6 folds of 4 consecutive actors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..labels import RAVDESS_8_CLASS, RAVDESS_CODES

RAVDESS_8_LABELS: tuple[str, ...] = tuple(RAVDESS_8_CLASS[f"{i:02d}"] for i in range(1, 9))
N_FOLDS = 6
ACTORS_PER_FOLD = 4


@dataclass(frozen=True)
class RavdessRecord:
    """One clip: where it is and what its name says."""

    path: str
    label: str  # canonical (calm -> neutral)
    label8: str  # original 8-class name
    actor: int
    intensity: int  # 1 normal, 2 strong
    statement: int
    repetition: int


def parse_name(path: str | os.PathLike[str]) -> RavdessRecord:
    """Parse ``03-01-EE-II-SS-RR-AA.<ext>``; raises ``ValueError`` on any other name."""
    stem = Path(path).name.split(".")[0]
    parts = stem.split("-")
    if len(parts) != 7 or not all(p.isdigit() for p in parts) or parts[2] not in RAVDESS_CODES:
        raise ValueError(f"not a RAVDESS file name: {Path(path).name}")
    return RavdessRecord(str(path), RAVDESS_CODES[parts[2]], RAVDESS_8_CLASS[parts[2]],
                         int(parts[6]), int(parts[3]), int(parts[4]), int(parts[5]))


def ravdess_dir(root: str | os.PathLike[str]) -> Path:
    """Accept either the data root (holding ``ravdess_speech/``) or that folder itself."""
    root = Path(root)
    return root / "ravdess_speech" if (root / "ravdess_speech").is_dir() else root


def load_ravdess(root: str | os.PathLike[str]) -> list[RavdessRecord]:
    """All speech clips under ``root`` (``Actor_XX/*.flac`` or ``.wav``), sorted by path."""
    base = ravdess_dir(root)
    files = sorted(p for p in base.glob("Actor_*/03-*") if p.suffix in (".flac", ".wav"))
    if not files:
        raise FileNotFoundError(f"no RAVDESS speech files under {base}")
    return [parse_name(p) for p in files]


def read_audio(path: str | os.PathLike[str], sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 at ``sample_rate`` (the shared FLACs already are 16 kHz mono)."""
    wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    wave = wave.mean(1)
    if sr != sample_rate:
        import librosa

        wave = librosa.resample(wave, orig_sr=sr, target_sr=sample_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)


def ravdess_folds(actors: np.ndarray | list[int]) -> np.ndarray:
    """Fold index 0..5 per actor id: actors 1-4 -> 0, 5-8 -> 1, ..., 21-24 -> 5."""
    a = np.asarray(actors, dtype=int)
    if a.size and (a.min() < 1 or a.max() > N_FOLDS * ACTORS_PER_FOLD):
        raise ValueError("RAVDESS actor ids run from 1 to 24")
    return (a - 1) // ACTORS_PER_FOLD
