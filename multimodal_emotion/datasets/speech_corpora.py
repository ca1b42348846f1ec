"""The four speech corpora the audio expert learns from, behind one record type.

RAVDESS (English, 24 actors), nEMO (Polish, 9 actors), CASIA (Mandarin, 4 speakers) and URDU
(Urdu talk shows, 29 speaker ids). Each yields :class:`SpeechRecord` with a canonical label (see
:mod:`~multimodal_emotion.labels`; a corpus without a class simply has none of it) and a speaker
id prefixed by the corpus, so ids never collide across corpora and every protocol can group by
speaker. One record type lets the embedding cache, the leave-one-corpus-out protocol and the
bench treat the corpora alike.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ..labels import to_canonical
from .ravdess import load_ravdess

# Order is the order of every table: the shipped corpus first, then by size.
SPEECH_CORPORA: tuple[str, ...] = ("ravdess", "nemo", "casia", "urdu")
LANGUAGES: dict[str, str] = {"ravdess": "English", "nemo": "Polish", "casia": "Mandarin",
                             "urdu": "Urdu"}


@dataclass(frozen=True)
class SpeechRecord:
    """One utterance: absolute path, canonical label, corpus-prefixed speaker, corpus name."""

    path: str
    label: str
    speaker: str
    corpus: str


def _speech_more(root: Path, corpus: str) -> list[SpeechRecord]:
    """A ``speech_more/<corpus>/labels.csv`` corpus (``path,label,speaker``), sorted by path.

    Labels outside the canonical set would raise in :func:`to_canonical` (unknown) or be dropped
    (known to have no place); these three corpora have none of the latter.
    """
    base = root / "speech_more" / corpus
    table = base / "labels.csv"
    if not table.exists():
        raise FileNotFoundError(f"no {corpus} labels.csv under {base}")
    out = []
    with open(table, newline="") as f:
        for row in csv.DictReader(f):
            label = to_canonical(row["label"])
            if label is None:
                continue
            out.append(SpeechRecord(str(base / row["path"]), label,
                                    f"{corpus}:{row['speaker']}", corpus))
    return sorted(out, key=lambda r: r.path)


def load_speech_corpus(name: str, root: str | os.PathLike[str]) -> list[SpeechRecord]:
    """All utterances of corpus ``name`` (one of :data:`SPEECH_CORPORA`) under data ``root``.

    RAVDESS comes through its own loader (labels from file names, calm merged into neutral),
    its speaker is the actor (``ravdess:07``).
    """
    root = Path(root)
    if name == "ravdess":
        return [SpeechRecord(r.path, r.label, f"ravdess:{r.actor:02d}", "ravdess")
                for r in load_ravdess(root)]
    if name not in SPEECH_CORPORA:
        raise ValueError(f"unknown speech corpus {name!r}; choose from {SPEECH_CORPORA}")
    return _speech_more(root, name)
