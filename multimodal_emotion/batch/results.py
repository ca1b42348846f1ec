"""The results file: one JSON object per line, appended and flushed as each input finishes, so
a run that dies loses at most the line being written, and a rerun knows what is done.

Only the process that owns a :class:`ResultWriter` writes the file (the parent of the worker
pool, or the Ray driver): lines never interleave and workers need no shared storage for it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import InputError

try:  # POSIX: a second `mer batch` on the same file is refused instead of interleaving
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass
class Existing:
    """What a results file already holds: the paths answered, those that failed, and
    whether a partial last line (a crash mid-write) was cut off."""

    done: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    repaired_bytes: int = 0


def read_existing(path: Path, repair: bool = True) -> Existing:
    """Scan ``path`` (absent: nothing done), streaming it: a line is about 1.5 KB, so 100,000
    results are some 150 MB. A last line without its newline is a write cut short: it is kept (and its newline
    added) when it parses, else cut off, so appends start on a fresh line. A broken line
    anywhere else means the file is not ours: refused rather than appended to."""
    out = Existing()
    if not path.exists():
        return out
    good_end = 0  # bytes up to the end of the last complete line
    tail = b""
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):  # only the last line can lack it
                tail = line
                break
            good_end += len(line)
            if not line.strip():
                continue
            rec = _parse(line)
            if rec is None:
                raise InputError(f"{path}: line {n} is not a result line (JSON with a 'path'); "
                                 "is this the output of `mer batch`? Give another --out")
            _note(out, rec)
    if tail:
        rec = _parse(tail)
        if rec is not None:  # complete JSON, only its newline is missing
            _note(out, rec)
            if repair:
                with path.open("ab") as f:
                    f.write(b"\n")
        else:
            out.repaired_bytes = len(tail)
            if repair:
                with path.open("r+b") as f:
                    f.truncate(good_end)
    return out


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("path"), str) else None


def _note(out: Existing, rec: dict[str, Any]) -> None:
    # a later line for the same path (a retried failure) overrides an earlier one
    if "error" in rec:
        out.failed.add(rec["path"])
        out.done.discard(rec["path"])
    else:
        out.done.add(rec["path"])
        out.failed.discard(rec["path"])


class ResultWriter:
    """Appends one line per result and flushes it at once (to the OS; ``close`` also fsyncs),
    holding an exclusive lock on the file so two runs cannot write it together."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f: IO[str] = path.open("a", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._f.close()
                raise InputError(f"{path} is being written by another `mer batch`; wait for "
                                 "it or give another --out") from None

    def write(self, line: str) -> None:
        self._f.write(line if line.endswith("\n") else line + "\n")
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def __enter__(self) -> "ResultWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
