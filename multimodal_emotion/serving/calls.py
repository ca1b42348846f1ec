"""``/v1/calls``: a call is too long for one request, so it becomes a job.

* ``POST /v1/calls`` -- multipart ``file`` (+ ``speakers``, ``agent_channel``, ``agent``,
  ``labels``, ``transcript``, ``keep_digits``, ``language``) -> 202 ``{"id", "status": "queued", ...}``.
* ``GET /v1/calls/{id}`` -- status and progress; once ``done``, ``result`` is ``mer call
  --json``'s object. ``?format=html`` gives the call's HTML report (409 until done).
* ``DELETE /v1/calls/{id}`` -- removes every file of the job (a running job stops).

Uploads arrive as ``/v1/analyze``'s do (paced, capped, sniffed: :mod:`.upload`), straight into
the job store's folder (``MER_DATA_DIR/calls``, else ``MER_UPLOAD_DIR/mer-calls``), and one
background worker (:class:`~multimodal_emotion.calls.jobs.JobStore`) analyzes them in order.
At most ``MER_QUEUE_SIZE`` calls wait (429 beyond).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ..calls.analysis import check_language
from ..calls.jobs import JOB_ID, JobsFull, JobStore
from ..errors import InputError
from ..label_maps import LabelMap
from .errors import ApiError
from .settings import Settings
from .upload import paced, receive_upload, sweep_stale_uploads

log = logging.getLogger("multimodal_emotion.serving")
CALLS_SUBDIR = "calls"
# the report has no script: nothing in it may run, load or submit anything
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
TurnFinder = tuple[Callable[..., Any], Callable[..., Any]]


def calls_root(settings: Settings) -> Path:
    """Where call jobs live: ``MER_DATA_DIR/calls`` (kept across restarts), else a folder next
    to the uploads."""
    if settings.data_dir:
        return Path(settings.data_dir) / CALLS_SUBDIR
    return Path(settings.upload_dir) / "mer-calls"


def make_runner(state: Any, turn_finder: TurnFinder | None) -> Callable[..., dict[str, Any]]:
    """The job runner: :func:`analyze_call` with the loaded recognizer, then the summary."""

    def run(media: Path, options: Mapping[str, Any], progress: Callable[..., None],
            should_stop: Callable[[], bool]) -> dict[str, Any]:
        from ..calls.analysis import analyze_call
        from ..calls.summary import call_result

        find, roles = turn_finder or (None, None)
        call = analyze_call(str(media), state.recognizer, find_turns=find, assign_roles=roles,
                            speakers=options.get("speakers"),
                            agent_channel=options.get("agent_channel"),
                            agent=options.get("agent"), labels=options.get("labels"),
                            transcripts=options.get("transcript", True),
                            keep_digits=options.get("keep_digits", False),
                            progress=progress, should_stop=should_stop,
                            language=options.get("language", "auto"))
        return call_result(call, path=options.get("filename"))

    return run


def call_option(name: str, value: str) -> dict[str, Any]:
    """Validate one form field of ``POST /v1/calls`` (unknown fields are ignored); values are
    kept JSON-ready, since they are stored with the job."""
    value = value.strip()
    if value == "":
        return {}
    if name == "speakers":
        if not value.isdigit() or not 1 <= int(value) <= 32:
            raise ApiError("invalid_request", f"speakers must be a whole number from 1 to 32, "
                           f"not {value!r}")
        return {"speakers": int(value)}
    if name == "agent_channel":
        if value not in ("left", "right"):
            raise ApiError("invalid_request", f"agent_channel must be left or right, not "
                           f"{value!r}")
        return {"agent_channel": value}
    if name == "language":
        try:
            return {"language": check_language(value)}
        except InputError as exc:
            raise ApiError("invalid_request", str(exc)) from exc
    if name == "agent":
        if len(value) > 64:
            raise ApiError("invalid_request", "agent: at most 64 characters")
        return {"agent": value}
    if name == "labels":
        try:
            return {"labels": LabelMap.parse(value, source="labels").to_dict()}
        except InputError as exc:
            raise ApiError("invalid_request", str(exc)) from exc
    if name in ("transcript", "keep_digits"):
        flag = value.lower()
        if flag not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ApiError("invalid_request", f"{name} must be true or false, not {value!r}")
        return {name: flag in ("true", "1", "yes", "on")}
    return {}


def add_call_routes(app: FastAPI, state: Any, settings: Settings,
                    dependencies: Sequence[Any], turn_finder: TurnFinder | None = None,
                    responses: Callable[..., dict] = lambda *codes: {}) -> JobStore:
    """Register the ``/v1/calls`` routes and build the job store (its worker is started and
    stopped by the app's lifespan). ``responses(*codes)``: the OpenAPI error answers."""
    root = calls_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale_uploads(root)
    store = JobStore(root, make_runner(state, turn_finder), max_waiting=max(1,
                     settings.queue_size), ready=state.ready.is_set,
                     keep_s=settings.call_keep_h * 3600)
    guarded = list(dependencies)

    def full() -> ApiError:
        return ApiError("queue_full", f"{store.max_waiting} calls already wait to be analyzed "
                        "(MER_QUEUE_SIZE); retry later", headers={"Retry-After": "30"})

    @app.post("/v1/calls", dependencies=guarded, tags=["calls"], status_code=202,
              responses=responses("empty_upload", "malformed_request", "unauthorized",
                                  "upload_timeout", "upload_too_large",
                                  "unsupported_media_type", "invalid_request", "queue_full",
                                  "too_many_uploads", "not_ready"),
              openapi_extra={"requestBody": {"required": True, "content": {
                  "multipart/form-data": {"schema": {
                      "type": "object", "required": ["file"], "properties": {
                          "file": {"type": "string", "format": "binary"},
                          "speakers": {"type": "integer", "minimum": 1, "maximum": 32},
                          "agent_channel": {"type": "string", "enum": ["left", "right"]},
                          "agent": {"type": "string", "description": "e.g. first"},
                          "labels": {"type": "string", "description": "a label map"},
                          "transcript": {"type": "boolean", "default": True},
                          "keep_digits": {"type": "boolean", "default": False},
                          "language": {"type": "string", "default": "auto",
                                       "description": "auto, per-turn or a code such as en"}
                      }}}}}})
    async def submit(request: Request) -> Response:
        """Store a call and queue it; poll ``GET /v1/calls/{id}`` for the result."""
        state.require_ready()
        if store.full():
            raise full()
        if not state.receiving.take():
            raise ApiError("too_many_uploads", f"{settings.max_receiving} uploads are already "
                           "arriving; retry shortly", headers={"Retry-After": "2"})
        options: dict[str, Any] = {}
        upload = None
        try:
            try:
                upload = await receive_upload(
                    request.headers, paced(request.stream(), settings.read_timeout_s,
                                           settings.min_upload_kbps * 1024),
                    root, settings.max_upload_bytes,
                    on_field=lambda name, value: options.update(call_option(name, value)))
            finally:
                state.receiving.give()
            options["filename"] = upload.filename
            try:
                job = await asyncio.to_thread(store.submit, upload.path, upload.filename,
                                              options)
            except JobsFull:
                raise full() from None
            log.info("call job %s queued bytes=%d kind=%s", job["id"], upload.size, upload.kind)
            return JSONResponse(_public(job), status_code=202,
                                headers={"Location": f"/v1/calls/{job['id']}"})
        finally:
            if upload is not None:
                upload.path.unlink(missing_ok=True)  # moved into the job, or not wanted

    @app.get("/v1/calls/{job_id}", dependencies=guarded, tags=["calls"],
             responses=responses("unauthorized", "unknown_call", "call_not_done",
                                 "invalid_request"))
    async def get_call(job_id: str, format: str = "json") -> Response:
        """Status and progress, then the result (``?format=html``: the report page)."""
        if format not in ("json", "html"):
            raise ApiError("invalid_request", f"format must be json or html, not {format!r}")
        job = await asyncio.to_thread(store.get, job_id) if JOB_ID.match(job_id) else None
        if job is None:
            raise ApiError("unknown_call", f"no call job has id {job_id[:64]!r} here (it may "
                           "have been deleted)")
        if format == "html":
            if job["status"] != "done":
                raise ApiError("call_not_done", f"the call is {job['status']}; its report "
                               "exists once the status is done")
            from ..calls.report import html_report

            page = html_report(job["result"], title=job.get("filename") or "call")
            return HTMLResponse(page, headers={"Content-Security-Policy": REPORT_CSP,
                                               "Cache-Control": "no-store"})
        return JSONResponse(_public(job), headers={"Cache-Control": "no-store"})

    @app.delete("/v1/calls/{job_id}", dependencies=guarded, tags=["calls"],
                responses=responses("unauthorized", "unknown_call"))
    async def delete_call(job_id: str) -> JSONResponse:
        """Delete the job: its media, state and result."""
        if not JOB_ID.match(job_id) or not await asyncio.to_thread(store.delete, job_id):
            raise ApiError("unknown_call", f"no call job has id {job_id[:64]!r} here")
        return JSONResponse({"id": job_id, "deleted": True})

    return store


def _public(job: Mapping[str, Any]) -> dict[str, Any]:
    """What a client sees of a job: not the stored options' label map in full, nor paths."""
    out = {k: job[k] for k in ("id", "status", "created", "filename", "progress") if k in job}
    for k in ("started", "finished", "error", "result"):
        if k in job:
            out[k] = job[k]
    return out
