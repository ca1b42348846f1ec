"""Which files a batch analyzes: explicit paths, directories walked for media files, and
manifests (a CSV with a ``path`` column, or a TXT with one path per line).

Every path is made absolute (not resolved through symlinks) so that the output's ``path``
field is the same key whatever directory a rerun starts from: resuming compares these keys.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError

# Suffixes a directory walk picks up. Explicit paths and manifest rows are taken whatever their
# suffix (the decoder decides); a walk must not feed a folder's .csv and .json to the decoder.
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac", ".wma"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".flv", ".m4v", ".3gp",
                            ".mpg", ".mpeg", ".ts", ".wmv"})
MEDIA_SUFFIXES = AUDIO_SUFFIXES | VIDEO_SUFFIXES
MANIFEST_SUFFIXES = frozenset({".csv", ".txt"})


def list_inputs(items: Iterable[str | os.PathLike]) -> list[str]:
    """Absolute media paths from ``items``, in the order given, each at most once.

    A directory contributes its media files (recursively, sorted, hidden entries skipped); an
    existing ``.csv`` / ``.txt`` file is a manifest; anything else, missing files included, is
    taken as a media path, so a missing file becomes that file's error line rather than
    stopping a run of thousands.
    """
    seen: dict[str, None] = {}
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths: Iterable[Path] = walk_media(p)
        elif p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            paths = read_manifest(p)
        else:
            paths = [p]
        for q in paths:
            seen.setdefault(os.path.abspath(q), None)
    return list(seen)


def walk_media(folder: Path) -> Iterator[Path]:
    """Media files under ``folder`` by suffix, sorted for a reproducible order."""
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in MEDIA_SUFFIXES:
                yield Path(root) / name


def read_manifest(path: Path) -> list[Path]:
    """Paths listed by a manifest; relative ones are relative to the manifest's folder (as in
    ``mer evaluate --manifest``), so a manifest travels with its media.

    CSV: a header with a ``path`` column (other columns, e.g. ``label``, are ignored).
    TXT: one path per line; blank lines and lines starting with ``#`` are skipped.
    """
    try:
        with path.open(newline="", encoding="utf-8") as f:
            if path.suffix.lower() == ".csv":
                reader = csv.DictReader(f)
                if "path" not in (reader.fieldnames or []):
                    raise InputError(f"manifest {path}: needs a 'path' column (found "
                                     f"{', '.join(reader.fieldnames or []) or 'no header'})")
                rows = [(r.get("path") or "").strip() for r in reader]
            else:
                rows = [line.strip() for line in f]
                rows = [r for r in rows if not r.startswith("#")]
    except UnicodeDecodeError as exc:
        raise InputError(f"manifest {path}: not UTF-8 text ({exc.reason})") from None
    return [p if p.is_absolute() else path.parent / p for p in map(Path, filter(None, rows))]
