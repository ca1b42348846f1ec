"""``POST /v1/feedback`` and the ``/v1/analyze`` hook that makes it possible (``MER_FEEDBACK=1``).

With feedback on, every analysis stores its per-window raw expert logits and availability (no
media, no file name, the transcript only with ``MER_LOG_CONTENT=1``) in the SQLite store under
``MER_DATA_DIR`` (:mod:`multimodal_emotion.feedback_store`), and the analyze answer carries the
row's random ``analysis_id``. A person who knows the true emotion posts
``{"analysis_id": ..., "label": "angry"}``; ``mer adapt --feedback MER_DATA_DIR`` then refits
the fusion on the labelled rows. With feedback off nothing is stored and the route answers 404
``feedback_disabled``, saying how to turn it on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import weakref
from functools import lru_cache
from typing import Any, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..feedback_store import FeedbackStore, heads_fingerprint
from ..labels import LABELS
from .errors import ApiError
from .settings import Settings
from .upload import paced

log = logging.getLogger("multimodal_emotion.serving")
MAX_BODY_BYTES = 4096  # an id and a label: anything bigger is not a feedback request
_FINGERPRINTS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


@lru_cache(maxsize=8)
def _open(data_dir: str) -> FeedbackStore:
    return FeedbackStore.open(data_dir)


def store_for(settings: Settings) -> FeedbackStore | None:
    """The feedback store when feedback is on (created on first use), else ``None``."""
    return _open(str(settings.data_dir)) if settings.feedback and settings.data_dir else None


def _fingerprint(model: Any) -> str:
    fp = _FINGERPRINTS.get(model)
    if fp is None:
        fp = _FINGERPRINTS[model] = heads_fingerprint(model)
    return fp


def record_sync(settings: Settings, rec: Any, pred: Any) -> dict[str, str]:
    """Store one analysis; ``{"analysis_id": ...}`` to add to the answer, or ``{}`` when
    feedback is off or the analysis has nothing to learn from (no modality, no logits)."""
    store = store_for(settings)
    windows = list(getattr(pred, "expert_logits", None) or [])
    if store is None or pred.label is None or not windows:
        return {}
    transcript = None
    if settings.log_content and "text" in pred.modalities:
        transcript = pred.modalities["text"].extras.get("transcript") or None
    return {"analysis_id": store.record(windows, _fingerprint(rec.model), rec.model.labels,
                                        transcript)}


async def record_analysis(settings: Settings, rec: Any, pred: Any) -> dict[str, str]:
    """:func:`record_sync` off the event loop (one SQLite insert). A store that cannot be
    written (disk full, permissions) costs the answer its ``analysis_id``, not the analysis."""
    if not settings.feedback:
        return {}
    try:
        return await asyncio.to_thread(record_sync, settings, rec, pred)
    except (sqlite3.Error, OSError) as exc:
        log.error("feedback store not written: %s", exc)
        return {}


async def _read_bounded(request: Request, limit: int, settings: Settings) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError("body_too_large", f"a feedback body is at most {limit} bytes")
    data = bytearray()
    async for chunk in paced(request.stream(), settings.read_timeout_s,
                             settings.min_upload_kbps * 1024):  # a stalled body is dropped
        data += chunk
        if len(data) > limit:
            raise ApiError("body_too_large", f"a feedback body is at most {limit} bytes")
    return bytes(data)


def add_feedback_route(app: FastAPI, settings: Settings, dependencies: Sequence[Any]) -> None:
    """Register ``POST /v1/feedback`` (behind the same API-key guard as the other ``/v1``
    routes). Opening the store here makes a bad ``MER_DATA_DIR`` fail at start, not later."""
    if settings.feedback:
        store_for(settings)

    @app.post("/v1/feedback", dependencies=list(dependencies), tags=["api"],
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {
                      "type": "object", "required": ["analysis_id", "label"], "properties": {
                          "analysis_id": {"type": "string", "maxLength": 64},
                          "label": {"type": "string", "enum": list(LABELS)}}}}}}})
    async def feedback(request: Request) -> JSONResponse:
        """Record a person's label for an earlier analysis (needs ``MER_FEEDBACK=1``)."""
        store = store_for(settings)
        if store is None:
            raise ApiError("feedback_disabled", "feedback is off on this server; start it with "
                           "MER_FEEDBACK=1 and MER_DATA_DIR=<folder> to collect labels")
        raw = await _read_bounded(request, MAX_BODY_BYTES, settings)
        try:
            body = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):  # 2 KB of "[" recurse too deep
            body = None
        if not isinstance(body, dict):
            raise ApiError("invalid_request", 'the body must be a JSON object: '
                           '{"analysis_id": "<from /v1/analyze>", "label": "<emotion>"}')
        analysis_id, label = body.get("analysis_id"), body.get("label")
        if not isinstance(analysis_id, str) or not 0 < len(analysis_id) <= 64:
            raise ApiError("invalid_request", "analysis_id must be the string /v1/analyze "
                           "returned")
        if label not in LABELS:
            raise ApiError("invalid_request", f"label must be one of {list(LABELS)}, not "
                           f"{label!r}")
        found = await asyncio.to_thread(store.set_label, analysis_id, label)
        if not found:
            raise ApiError("unknown_analysis", f"no stored analysis has id {analysis_id!r} "
                           "(ids come from /v1/analyze on this server while feedback is on)")
        return JSONResponse({"analysis_id": analysis_id, "label": label, "stored": True})
