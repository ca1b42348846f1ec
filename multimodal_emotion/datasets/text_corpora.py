"""Text emotion corpora (GoEmotions, MELD) mapped onto the canonical :data:`LABELS`.

Why both: GoEmotions is written Reddit text, MELD is spoken dialogue (closer to a transcript);
the text expert is trained on both so it neither over-fits forum style nor sitcom lines.
"""

from __future__ import annotations

import csv
import logging
import re
import unicodedata
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..labels import LABEL_TO_INDEX, to_canonical

log = logging.getLogger(__name__)

# Typographic characters MELD (and Reddit) use, folded to ASCII so the tokenizer sees the same
# word whether the writer typed "don’t" or "don't". The mojibake forms are what UTF-8 curly
# quotes become when a file was decoded as cp1252 once too often (present in some MELD copies).
_REPLACE = {
    "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2014": " - ", "\u2013": " - ",
    "\u2026": "...", "\u00a0": " ",
    "\u00e2\u20ac\u2122": "'", "\u00e2\u20ac\u02dc": "'", "\u00e2\u20ac\u0153": '"',
    "\u00e2\u20ac\u009d": '"', "\u00e2\u20ac\u201d": " - ", "\u00e2\u20ac\u201c": " - ",
    "\u00e2\u20ac\u00a6": "...", "\u00c2\u00a0": " ",
}
_REPLACE_RE = re.compile("|".join(sorted(map(re.escape, _REPLACE), key=len, reverse=True)))


def normalize_text(text: str) -> str:
    """Fold curly quotes, dashes, ellipses and their mojibake to ASCII; collapse whitespace."""
    text = _REPLACE_RE.sub(lambda m: _REPLACE[m.group(0)], text)
    text = unicodedata.normalize("NFKC", text)
    return re.sub(r"\s+", " ", text).strip()


def _check(root: str | Path, split: str) -> Path:
    if split not in ("train", "dev"):
        raise InputError(f"split must be 'train' or 'dev', got {split!r}")
    root = Path(root)
    if not root.exists():
        raise InputError(f"data folder not found: {root}")
    return root


def load_goemotions(root: str | Path, split: str, scheme: str = "ekman"
                    ) -> tuple[list[str], np.ndarray]:
    """GoEmotions ``split`` as (texts, canonical label indices).

    ``root`` is the ``goemotions`` folder. Rows whose labels map to more (or fewer) than one
    canonical label are dropped: a single-label head cannot learn from "joy and anger" at once.
    With ``scheme="original"`` the 28 labels go through :func:`to_canonical`, which keeps only
    the names that are themselves Ekman-style emotions (joy, anger, fear, ...) and drops others.
    """
    folder = _check(root, split) / scheme
    names = (folder / "labels.txt").read_text().split()
    mapped: list[str | None] = []
    for n in names:
        try:
            mapped.append(to_canonical(n))
        except KeyError:
            mapped.append(None)  # fine-grained GoEmotions label with no canonical place
    texts, labels, dropped = [], [], 0
    with open(folder / f"{split}.tsv", encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) < 2:
                continue
            canon = {mapped[int(i)] for i in row[1].split(",") if i.strip()}
            if len(canon) != 1 or None in canon:
                dropped += 1
                continue
            texts.append(normalize_text(row[0]))
            labels.append(LABEL_TO_INDEX[canon.pop()])  # type: ignore[index]
    log.info("goemotions/%s/%s: kept %d rows, dropped %d multi-label or unmapped",
             scheme, split, len(texts), dropped)
    load_goemotions.last_dropped = dropped  # type: ignore[attr-defined]
    return texts, np.asarray(labels, dtype=np.int64)


def _meld_rows(root: str | Path, split: str) -> list[dict[str, str]]:
    """The CSV rows of MELD ``split`` whose emotion has a canonical name (the rows every MELD
    loader returns, in file order), with ``canon`` added."""
    path = _check(root, split) / f"{split}_sent_emo.csv"
    with open(path, encoding="utf-8", newline="") as f:
        rows = [{**row, "canon": to_canonical(row["Emotion"])} for row in csv.DictReader(f)]
    return [r for r in rows if r["canon"] is not None]


def load_meld(root: str | Path, split: str) -> tuple[list[str], np.ndarray, list[str]]:
    """MELD ``split`` utterances as (texts, canonical label indices, speakers).

    ``root`` is the ``meld`` folder holding ``{train,dev}_sent_emo.csv``.
    """
    rows = _meld_rows(root, split)
    texts = [normalize_text(r["Utterance"]) for r in rows]
    labels = [LABEL_TO_INDEX[r["canon"]] for r in rows]
    speakers = [normalize_text(r["Speaker"]) for r in rows]
    return texts, np.asarray(labels, dtype=np.int64), speakers


def meld_dialogue_ids(root: str | Path, split: str) -> np.ndarray:
    """The ``Dialogue_ID`` of each utterance :func:`load_meld` returns, in the same order (so
    validation can hold out whole dialogues, and context can follow one)."""
    return np.asarray([r["Dialogue_ID"] for r in _meld_rows(root, split)])
