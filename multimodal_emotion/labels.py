"""The canonical emotion set and how each dataset's names map onto it.

Every model in the package predicts over :data:`LABELS`. Datasets name emotions differently
("calm", "joy", "ANG", "fear"...), so each loader maps through :func:`to_canonical`; names with no
place in the set (boredom, contempt, ...) map to ``None`` and loaders drop them with a count.
"""

from __future__ import annotations

LABELS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
LABEL_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}

# Lower-cased source name -> canonical name. Shared by all datasets: their vocabularies overlap
# and never conflict, so one table is easier to audit than eight.
_SYNONYMS: dict[str, str | None] = {
    # neutral
    "neutral": "neutral", "neu": "neutral", "calm": "neutral", "n": "neutral",
    # happy
    "happy": "happy", "happiness": "happy", "joy": "happy", "hap": "happy", "h": "happy",
    "pleasant_surprise": "surprised",  # TESS writes it "ps"
    # sad
    "sad": "sad", "sadness": "sad", "sa": "sad",
    # angry
    "angry": "angry", "anger": "angry", "ang": "angry", "a": "angry",
    # fearful
    "fearful": "fearful", "fear": "fearful", "fea": "fearful", "f": "fearful", "anxiety": "fearful",
    # disgust
    "disgust": "disgust", "disgusted": "disgust", "dis": "disgust", "d": "disgust",
    # surprised
    "surprised": "surprised", "surprise": "surprised", "sur": "surprised", "ps": "surprised",
    # outside the set
    "boredom": None, "contempt": None, "xx": None,
}

# Dataset-specific codes that are not words.
RAVDESS_CODES: dict[str, str] = {
    "01": "neutral", "02": "neutral", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}
RAVDESS_8_CLASS: dict[str, str] = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}
FER2013_CODES: dict[int, str] = {
    0: "angry", 1: "disgust", 2: "fearful", 3: "happy", 4: "sad", 5: "surprised", 6: "neutral",
}
# EmoDB file names carry a German letter code at position 5.
EMODB_CODES: dict[str, str | None] = {
    "W": "angry", "L": None, "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral",
}


def to_canonical(name: str) -> str | None:
    """Map a dataset's emotion name to the canonical set, or ``None`` if it has no place there.

    Raises ``KeyError`` for a name never seen, so a new dataset cannot silently lose a class.
    """
    key = name.strip().lower().replace(" ", "_")
    if key in LABEL_TO_INDEX:
        return key
    if key not in _SYNONYMS:
        raise KeyError(f"unknown emotion name {name!r}; add it to labels._SYNONYMS")
    return _SYNONYMS[key]
