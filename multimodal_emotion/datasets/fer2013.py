"""FER2013 (Kaggle CSV layout) as numpy arrays with labels on the canonical :data:`LABELS`.

The CSV stores each 48x48 face as 2,304 space-separated numbers; parsing them row by row in
Python is slow, so all pixel strings are joined and parsed by one ``np.fromstring`` call.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..labels import FER2013_CODES, LABEL_TO_INDEX

# FER2013 code -> canonical index, as a lookup array.
_CODE_TO_INDEX = np.array([LABEL_TO_INDEX[FER2013_CODES[c]] for c in range(7)], dtype=np.int64)


def load_fer2013(root: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``root/fer2013/fer2013.csv.gz`` (``root`` may also be the fer2013 folder or the file).

    Returns ``images`` uint8 ``[N, 48, 48]``, ``labels`` int64 canonical indices into LABELS and
    ``usage`` str array (``Training``/``Test``; other Kaggle splits pass through unchanged).
    """
    root = Path(root)
    candidates = [root, root / "fer2013.csv.gz", root / "fer2013" / "fer2013.csv.gz"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise InputError(f"FER2013 not found under {root} (expected fer2013/fer2013.csv.gz)")
    with gzip.open(path, "rb") as f:
        text = f.read().decode("ascii")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    col = {name: i for i, name in enumerate(header)}
    codes, pixels, usage = [], [], []
    for row in reader:
        if not row:
            continue
        codes.append(int(row[col["emotion"]]))
        pixels.append(row[col["pixels"]])
        usage.append(row[col["Usage"]])
    flat = np.fromstring(" ".join(pixels), dtype=np.int32, sep=" ")  # one C-level parse
    if flat.size != len(codes) * 48 * 48:
        raise InputError(f"{path}: expected {len(codes)} x 2304 pixels, got {flat.size}")
    images = flat.astype(np.uint8).reshape(len(codes), 48, 48)
    labels = _CODE_TO_INDEX[np.asarray(codes, dtype=np.int64)]
    return images, labels, np.asarray(usage)
