"""A small SQLite store of analyzed clips' expert logits and the labels people gave them.

The server (``MER_FEEDBACK=1``) writes one row per analyzed clip: a random ``analysis_id``, the
per-window raw expert logits and which modalities were there, and a fingerprint of the expert
heads that produced them. ``POST /v1/feedback`` later adds a person's label to that row, and
``mer adapt --feedback DB`` reads the labelled rows back to refit the fusion's numbers.

What it never holds: the media (not a byte of it), the file name, and the transcript unless the
operator turned on ``MER_LOG_CONTENT``. Logits are enough because adapting changes only
temperatures and product weights, which act on logits. No FastAPI here: the CLI reads the same
file without the server's dependencies.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .errors import InputError
from .labels import LABELS
from .types import WindowLogits

DB_NAME = "feedback.sqlite3"
# what secrets.token_urlsafe gives; anything else (a lone surrogate, which SQLite cannot even
# encode) names no analysis
ANALYSIS_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (
    analysis_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    heads TEXT NOT NULL,          -- fingerprint of the expert heads that gave the logits
    labels TEXT NOT NULL,         -- JSON list: the label order of the logits
    windows TEXT NOT NULL,        -- JSON list of WindowLogits.to_dict()
    transcript TEXT,              -- only with MER_LOG_CONTENT on
    label TEXT,                   -- a person's label (canonical name), NULL until given
    labelled REAL
)
"""


@dataclass
class FeedbackRow:
    """One labelled analysis, as ``mer adapt`` uses it."""

    analysis_id: str
    label: str
    heads: str
    labels: list[str]
    windows: list[WindowLogits]


def heads_fingerprint(model: Any) -> str:
    """A short hash of the clip expert heads' tensors and label order: logits stored under one
    fingerprint are only meaningful to a model with the same heads (an adapted copy keeps
    them, so its feedback can refit the base it came from)."""
    import numpy as np

    h = hashlib.sha256(json.dumps(list(model.labels)).encode())
    state = model.experts.state_dict()
    for key in sorted(state):
        h.update(key.encode())
        h.update(np.ascontiguousarray(state[key].detach().cpu().numpy()).tobytes())
    return h.hexdigest()[:16]


class FeedbackStore:
    """The SQLite file ``<data_dir>/feedback.sqlite3`` (or any path ending in ``.sqlite3``).

    Each call opens its own short connection, so the store can be used from the server's
    worker threads and the event loop alike; a lock serialises writers within one process."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.path = path / DB_NAME if path.is_dir() or not path.suffix else path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path, create: bool = True) -> "FeedbackStore":
        store = cls(path)
        if not create and not store.path.exists():
            raise InputError(f"feedback store {store.path} not found (the server writes it "
                             f"under MER_DATA_DIR when MER_FEEDBACK=1)")
        store.path.parent.mkdir(parents=True, exist_ok=True)
        with store._connect() as db:
            db.execute(SCHEMA)
        return store

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(self, windows: Iterable[WindowLogits], heads: str,
               labels: Iterable[str] = LABELS, transcript: str | None = None) -> str:
        """Store one analysis; returns its new random ``analysis_id``."""
        analysis_id = secrets.token_urlsafe(16)
        row = (analysis_id, time.time(), heads, json.dumps(list(labels)),
               json.dumps([w.to_dict() for w in windows]), transcript)
        with self._lock, self._connect() as db:
            db.execute("INSERT INTO analyses (analysis_id, created, heads, labels, windows, "
                       "transcript) VALUES (?, ?, ?, ?, ?, ?)", row)
        return analysis_id

    def set_label(self, analysis_id: str, label: str) -> bool:
        """Give (or correct) the label of an analysis; False when the id is unknown."""
        if label not in LABELS:
            raise InputError(f"label {label!r} is not one of {list(LABELS)}")
        if not ANALYSIS_ID.fullmatch(analysis_id):
            return False
        with self._lock, self._connect() as db:
            cur = db.execute("UPDATE analyses SET label = ?, labelled = ? WHERE analysis_id = ?",
                             (label, time.time(), analysis_id))
            return cur.rowcount == 1

    def get(self, analysis_id: str) -> dict[str, Any] | None:
        """One stored analysis as a dict (for tests and inspection); ``None`` if unknown."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM analyses WHERE analysis_id = ?",
                             (analysis_id,)).fetchone()
        return None if row is None else dict(row)

    def labelled(self) -> list[FeedbackRow]:
        """Every analysis a person has labelled, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT analysis_id, label, heads, labels, windows FROM analyses "
                              "WHERE label IS NOT NULL ORDER BY created").fetchall()
        return [FeedbackRow(a, lab, h, json.loads(ls),
                            [WindowLogits.from_dict(w) for w in json.loads(ws)])
                for a, lab, h, ls, ws in rows]

    def counts(self) -> dict[str, int]:
        with self._connect() as db:
            total, done = db.execute("SELECT COUNT(*), COUNT(label) FROM analyses").fetchone()
        return {"analyses": int(total), "labelled": int(done)}
