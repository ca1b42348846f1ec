"""Dataset loaders. Each yields items of one modality (or a whole clip) with a canonical label
and, where the corpus has one, a speaker id for speaker-independent protocols."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_root() -> Path:
    """``$MER_DATA``, else ``../shared/data`` next to the repository checkout."""
    env = os.environ.get("MER_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"
