"""Embeddings are expensive and deterministic: compute once, key by what produced them.

The key is a hash of a JSON-able description (encoder name + config + file list + package
version of the encoder code), so changing anything that could change the numbers misses the
cache, and changing only what comes after (heads, fusion) hits it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

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
