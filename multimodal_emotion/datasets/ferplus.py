"""FER+ (ten annotators' votes per FER2013 image) on the canonical :data:`LABELS`.

FER2013's own labels come from one keyword search and are wrong for roughly one image in ten;
FER+ re-labelled every image with ten crowd votes, so a model trained on the vote distribution
learns what people actually see (and how ambiguous each face is).

Mapping onto the seven canonical labels: neutral, happiness, surprise, sadness, anger, disgust
and fear map one to one. ``contempt`` has no canonical class (``labels.to_canonical`` maps it to
``None``), and ``unknown`` / ``NF`` (not a face) are not emotions, so their votes are dropped and
the remaining votes renormalised; an image left with no canonical votes is dropped. The
*majority* label used for test accuracy is the class with the most of all ten vote kinds; images
whose majority is contempt/unknown/NF, or whose top count is tied between two kinds, have no
unambiguous canonical majority and are left out of that metric (their count is reported).

FER+ names images by their row in the *original* Kaggle ``fer2013.csv``; a copy of FER2013 whose
rows were re-ordered (sorted by label, say) cannot be joined to it by position, and nothing in the
CSVs allows another join. :func:`load_ferplus` therefore checks the join: FER+ majorities agree
with FER2013's own labels far above chance when rows line up, and at chance level when they
do not, so a low agreement is an error, never a silent mislabelling of every image.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..labels import LABEL_TO_INDEX, to_canonical
from .fer2013 import load_fer2013

VOTE_COLUMNS: tuple[str, ...] = ("neutral", "happiness", "surprise", "sadness", "anger",
                                 "disgust", "fear", "contempt", "unknown", "NF")


def _ferplus_csv(root: Path) -> Path:
    candidates = [root, root / "fer2013new.csv.gz", root / "ferplus" / "fer2013new.csv.gz"]
    path = next((p for p in candidates if p.is_file() and p.name.endswith(".csv.gz")), None)
    if path is None:
        raise InputError(f"FER+ not found under {root} (expected ferplus/fer2013new.csv.gz)")
    return path


def load_ferplus_votes(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Raw FER+ rows: ``votes`` int ``[N, 10]`` in :data:`VOTE_COLUMNS` order and ``usage``
    (``Training`` / ``PublicTest`` / ``PrivateTest``, or ``""`` where FER+ dropped the image)."""
    path = _ferplus_csv(Path(root))
    with gzip.open(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        col = {name: i for i, name in enumerate(header)}
        cols = [col[c] for c in VOTE_COLUMNS]
        votes, usage = [], []
        for row in reader:
            if not row:
                continue
            usage.append(row[col["Usage"]] if row[col["Image name"]].strip() else "")
            votes.append([int(row[c] or 0) for c in cols])
    return np.asarray(votes, dtype=np.int64), np.asarray(usage)


def canonical_votes(votes: np.ndarray) -> np.ndarray:
    """``[N, 10]`` FER+ vote counts -> ``[N, 7]`` counts over LABELS (contempt/unknown/NF dropped)."""
    out = np.zeros((len(votes), len(LABEL_TO_INDEX)), dtype=np.float32)
    for j, name in enumerate(VOTE_COLUMNS):
        canon = to_canonical(name) if name not in ("unknown", "NF") else None
        if canon is not None:
            out[:, LABEL_TO_INDEX[canon]] += votes[:, j]
    return out


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """Canonical index of each row's unambiguous majority vote, or -1 (see module docstring)."""
    canon_of = np.array([LABEL_TO_INDEX[c] if (c := (to_canonical(n) if n not in
                         ("unknown", "NF") else None)) else -1 for n in VOTE_COLUMNS])
    top = votes.max(1, keepdims=True)
    tied = (votes == top).sum(1) > 1
    lab = canon_of[votes.argmax(1)]
    lab[tied | (top[:, 0] == 0)] = -1
    return lab


MIN_AGREEMENT = 0.4  # row-aligned copies agree far above this; shuffled rows sit near 0.2


def alignment_agreement(votes: np.ndarray, usage: np.ndarray,
                        fer2013_labels: np.ndarray) -> float:
    """Share of FER+-kept rows with an unambiguous canonical majority equal to FER2013's label."""
    maj = majority_labels(votes)
    ok = (usage != "") & (maj >= 0)
    return float((maj[ok] == fer2013_labels[ok]).mean()) if ok.any() else 0.0


def check_alignment(votes: np.ndarray, usage: np.ndarray, fer2013_labels: np.ndarray) -> None:
    """Raise :class:`InputError` when FER+ rows do not line up with the FER2013 images."""
    agree = alignment_agreement(votes, usage, fer2013_labels)
    if agree < MIN_AGREEMENT:
        raise InputError(
            f"FER+ votes do not line up with this copy of fer2013.csv.gz: their majority "
            f"agrees with FER2013's own label on only {agree:.1%} of rows (chance level; "
            f"row-aligned copies agree far more often). FER+ indexes images by their row in "
            f"the original Kaggle fer2013.csv (Training, PublicTest, PrivateTest in that "
            f"order); use a copy in that original row order.")


def load_ferplus(root: str | Path) -> dict[str, np.ndarray]:
    """FER2013 images with FER+ labels, rows FER+ kept and with at least one canonical vote.

    ``root`` is the data root holding ``fer2013/`` and ``ferplus/``. Returns a dict of arrays,
    row-aligned: ``images`` uint8 ``[N,48,48]``, ``soft`` float32 ``[N,7]`` vote distributions,
    ``majority`` int64 (-1 = none), ``usage`` (FER+ split), ``fer2013_label`` (FER2013's original
    canonical label) and ``index`` (row in ``fer2013.csv.gz``, so FER2013 splits can be joined).
    """
    root = Path(root)
    images, fer_labels, _ = load_fer2013(root)
    votes, usage = load_ferplus_votes(root)
    if len(votes) != len(images):
        raise InputError(f"FER+ has {len(votes)} rows but FER2013 {len(images)}; "
                         "they must be row-aligned")
    check_alignment(votes, usage, fer_labels)
    counts = canonical_votes(votes)
    keep = (usage != "") & (counts.sum(1) > 0)
    idx = np.flatnonzero(keep)
    return {"images": images[idx], "soft": counts[idx] / counts[idx].sum(1, keepdims=True),
            "majority": majority_labels(votes[idx]), "usage": usage[idx],
            "fer2013_label": fer_labels[idx], "index": idx}
