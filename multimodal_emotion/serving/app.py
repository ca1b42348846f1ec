"""The HTTP API and web page: a FastAPI app factory, its routes, and ``mer serve``.

* ``GET /healthz``   -- 503 while models load, 200 once ``analyze`` can answer (always open).
* ``POST /v1/analyze`` -- multipart ``file`` (+ ``fusion``, ``fps``) -> ``mer analyze --json``'s
  object, with ``path`` set to the client's file name (or ``null``), never a server path.
* ``POST /v1/fuse``  -- fuse embeddings (trained fusion) or probabilities (late-fusion rule).
* ``POST /v1/calls``, ``GET|DELETE /v1/calls/{id}`` -- a long call as a job (:mod:`.calls`).
* ``GET /v1/models`` -- encoders, sizes, fusions, labels, versions, provenance.
* ``GET /``          -- one static page (``static/``) that drives the API from a browser.
* ``WS /v1/stream``  -- live analysis: PCM16 audio and JPEG frames in, a result per window out
  (:mod:`.stream` documents the messages); ``GET /live`` is its page (camera + microphone).

Models load once, in a background thread started by the app's lifespan, so the port opens at
once and ``/healthz`` can say "not yet". Inference runs on a bounded pool
(:mod:`.work`), never on the event loop; a request takes a slot there only once its body is in
(bodies are paced and capped: :func:`.upload.paced`), so slow senders lock nobody out. Uploads stream to a temporary file that is deleted
when the request ends, whatever happened (:mod:`.upload`). Nothing of the media, the file name
or the transcript is logged unless ``MER_LOG_CONTENT=1``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .. import __version__
from ..errors import InputError, MediaError, MediaLimitError, MerError
from ..types import MODALITIES
from .errors import ERRORS, ApiError, error_response
from ..fusion import FUSIONS
from ..label_maps import LabelMap
from .calls import add_call_routes
from .feedback import add_feedback_route, record_analysis
from .fuse import LATE_FUSION_RULES, FuseRequest, fuse
from .settings import Settings
from .stream import add_stream_route
from .upload import paced, receive_upload, sweep_stale_uploads
from .work import Slots, WorkQueue

log = logging.getLogger("multimodal_emotion.serving")
STATIC_DIR = Path(__file__).resolve().parent / "static"
RecognizerFactory = Callable[[], Any]


@dataclass
class ServerState:
    """What the routes share: settings, the work queue, and the recognizer once loaded."""

    settings: Settings
    queue: WorkQueue
    receiving: Slots
    recognizer: Any = None
    load_error: str | None = None
    started: float = field(default_factory=time.monotonic)
    load_s: float | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def load(self, factory: RecognizerFactory) -> None:
        """Build the recognizer (runs in a thread: model loading takes seconds)."""
        try:
            rec = factory()
        except Exception as exc:  # noqa: BLE001 -- reported by /healthz, not raised into void
            log.exception("model loading failed")
            self.load_error = f"{type(exc).__name__}: {exc}"
            return
        self.recognizer = rec
        self.load_s = time.monotonic() - self.started
        self.ready.set()
        log.info("models ready in %.1f s", self.load_s)

    def require_ready(self) -> Any:
        if self.load_error is not None:
            raise ApiError("model_load_failed", f"the models could not be loaded: "
                           f"{self.load_error}")
        if not self.ready.is_set():
            raise ApiError("not_ready", f"models are loading ({time.monotonic() - self.started:.1f}"
                           " s so far); retry shortly", headers={"Retry-After": "2"})
        return self.recognizer


def create_app(recognizer_factory: RecognizerFactory | None = None,
               settings: Settings | None = None,
               call_turns: tuple[Callable[..., Any], Callable[..., Any]] | None = None
               ) -> FastAPI:
    """Build the app. ``recognizer_factory()`` returns an object shaped like
    :class:`~multimodal_emotion.recognizer.EmotionRecognizer` (``analyze``, ``model``,
    ``model_dir``, ``fps``); by default the one in ``settings.model_dir`` (the shipped model).
    Tests pass light fakes and settings with a tiny upload limit or queue. ``call_turns``:
    ``(find_turns, assign_roles)`` for ``/v1/calls`` (default: ``multimodal_emotion.segmenting``).
    """
    settings = settings or Settings.from_env()
    if recognizer_factory is None:
        def recognizer_factory() -> Any:
            from ..recognizer import EmotionRecognizer

            return EmotionRecognizer.from_pretrained(settings.model_dir,
                                                     window_s=settings.window_s,
                                                     max_duration_s=settings.max_duration_s)
    Path(settings.upload_dir).mkdir(parents=True, exist_ok=True)
    sweep_stale_uploads(settings.upload_dir)
    state = ServerState(settings, WorkQueue(settings.workers, settings.queue_size),
                        Slots(settings.max_receiving))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.started = time.monotonic()
        threading.Thread(target=state.load, args=(recognizer_factory,), name="mer-load",
                         daemon=True).start()
        calls.start()
        yield
        calls.stop()
        state.queue.shutdown()

    # /docs from the swagger-ui-bundle-v2 package's files, not FastAPI's default CDN (which
    # leaves an offline server with a blank page); ReDoc has no offline package, so it is off.
    app = FastAPI(title="multimodal-emotion", version=__version__, lifespan=lifespan,
                  description="Emotion from video: voice, words and face, fused.",
                  docs_url=None, redoc_url=None)
    app.state.mer = state
    _install_error_handlers(app)

    def require_key(request: Request) -> None:
        """``MER_API_KEY`` check for ``/v1/*``: ``X-API-Key`` or ``Authorization: Bearer``."""
        if not settings.api_key:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if not given or not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise ApiError("unauthorized", "a valid API key is required: send it as "
                           "'X-API-Key: <key>' or 'Authorization: Bearer <key>'",
                           headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(require_key)]

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> JSONResponse:
        """Ready once the models are loaded; never needs the API key."""
        extra = {"auth_required": bool(settings.api_key), "version": __version__}
        try:
            state.require_ready()
        except ApiError as err:
            return error_response(err.status, err.code, err.message, err.headers,
                                  status="loading" if err.code == "not_ready" else "failed",
                                  **extra)
        return JSONResponse({"status": "ready", "load_s": round(state.load_s or 0.0, 2),
                             "queue": state.queue.stats(),
                             "max_upload_mb": settings.max_upload_mb, **extra})

    @app.get("/v1/models", dependencies=guarded, tags=["api"])
    async def models() -> dict[str, Any]:
        """What is loaded: encoders and their embedding sizes, fusions, labels, versions."""
        return describe_models(state.require_ready(), settings)

    @app.post("/v1/fuse", dependencies=guarded, tags=["api"], responses=_error_responses(
        "unauthorized", "body_too_large", "upload_timeout", "invalid_request", "queue_full",
        "not_ready"), openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": FuseRequest.model_json_schema()}}}})
    async def fuse_route(request: Request) -> JSONResponse:
        """Fuse per-modality embeddings or probabilities: send exactly one of ``embeddings`` or
        ``probabilities``. The body is capped (``MER_MAX_JSON_KB``) and read before parsing,
        and the fusion runs under the same queue as ``/v1/analyze``."""
        rec = state.require_ready()
        if state.queue.full():
            raise _queue_full(settings)
        raw = await read_json_body(request, settings)
        try:
            # off the event loop: parsing up to MER_MAX_JSON_KB of numbers takes a while
            body = await asyncio.to_thread(FuseRequest.model_validate_json, raw or b"null")
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False, include_input=False)) \
                from None
        ticket = state.queue.admit()
        if ticket is None:
            raise _queue_full(settings)
        try:
            return JSONResponse(await ticket.run(fuse, rec.model, body))
        finally:
            ticket.close()

    @app.post("/v1/analyze", dependencies=guarded, tags=["api"], responses=_error_responses(
        "empty_upload", "unreadable_media", "malformed_request", "unauthorized",
        "upload_timeout", "upload_too_large", "media_too_long", "unsupported_media_type",
        "invalid_request", "queue_full", "too_many_uploads", "not_ready"),
              openapi_extra={"requestBody": {"required": True, "content": {
                  "multipart/form-data": {"schema": {
                      "type": "object", "required": ["file"], "properties": {
                          "file": {"type": "string", "format": "binary"},
                          "fusion": {"type": "string", "enum": sorted(FUSIONS)},
                          "labels": {"type": "string", "description":
                                     "a label map (YAML or JSON) of your own categories, e.g. "
                                     "{\"labels\": {\"satisfied\": [\"happy\", "
                                     "\"surprised\"], ...}}; every emotion in one category"},
                          "fps": {"type": "number", "minimum": settings.min_fps,
                                  "maximum": settings.max_fps}}}}}}})
    async def analyze(request: Request) -> JSONResponse:
        """Analyze one uploaded clip; the answer is ``mer analyze --json``'s object."""
        rec = state.require_ready()
        return await _analyze(request, rec, state)

    add_feedback_route(app, settings, guarded)  # POST /v1/feedback (MER_FEEDBACK=1)
    calls = add_call_routes(app, state, settings, guarded, call_turns,  # /v1/calls
                            _error_responses)

    add_stream_route(app, state, settings)  # WS /v1/stream (its own key check and limit)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/live", include_in_schema=False)
    async def live() -> FileResponse:
        return FileResponse(STATIC_DIR / "live.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_offline_docs(app)
    return app


def _add_offline_docs(app: FastAPI) -> None:
    """``GET /docs``: Swagger UI with its script, style and icon served from this server."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json",
                                   title=f"{app.title} - API",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon-32x32.png")


# -- /v1/analyze -----------------------------------------------------------------------------
async def _analyze(request: Request, rec: Any, state: ServerState) -> Response:
    """Read the body first (paced, bounded, outside the queue), then take a queue slot: a
    request holds a slot only while its clip waits for or runs on a worker."""
    settings = state.settings
    if state.queue.full():  # refused before a byte of body is read
        log.info("analyze status=429 queue=%s", state.queue.stats())
        raise _queue_full(settings)
    if not state.receiving.take():
        log.info("analyze status=429 receiving=%d", state.receiving.used)
        raise ApiError("too_many_uploads", f"{settings.max_receiving} uploads are already "
                       "arriving; retry shortly", headers={"Retry-After": "2"})
    t0 = time.perf_counter()
    options: dict[str, Any] = {}
    upload = None
    ticket = None
    status = 500
    try:
        try:
            upload = await receive_upload(
                request.headers, paced(request.stream(), settings.read_timeout_s,
                                       settings.min_upload_kbps * 1024),
                settings.upload_dir, settings.max_upload_bytes,
                on_field=lambda name, value: options.update(
                    _form_option(name, value, rec, settings)))
        finally:
            state.receiving.give()
        ticket = state.queue.admit()
        if ticket is None:
            log.info("analyze status=429 queue=%s", state.queue.stats())
            raise _queue_full(settings)
        path = upload.path
        try:
            pred = await ticket.run(analyze_file, rec, path, options.get("fusion"),
                                    options.get("fps"), options.get("labels"),
                                    cleanup=lambda: path.unlink(missing_ok=True))
        except MediaLimitError as exc:
            raise ApiError("media_too_long", str(exc).replace(
                str(path), upload.filename or "upload")) from exc
        except MediaError as exc:
            shown = upload.filename or "upload"
            raise ApiError("unreadable_media",
                           str(exc).replace(str(path), shown)) from exc
        except InputError as exc:
            raise ApiError("invalid_request", str(exc)) from exc
        body = pred.to_dict()
        body.pop("path", None)
        body = {"path": upload.filename, **body}
        body.update(await record_analysis(settings, rec, pred))  # analysis_id, if feedback on
        status = 200
        if settings.log_content:
            log.info("analyze content file=%r label=%s transcript=%r", upload.filename,
                     body["label"], body["modalities"]["text"].get("transcript"))
        return JSONResponse(body)
    except ClientDisconnect:
        # the client's doing, not a server error: one log line, no traceback, no 500
        status = 499
        return Response(status_code=499)
    except ApiError as err:
        status = err.status
        raise
    finally:
        if upload is not None and (ticket is None or not ticket.submitted):
            upload.path.unlink(missing_ok=True)
        if ticket is not None:
            ticket.close()
        log.info("analyze status=%d%s bytes=%s kind=%s ms=%.0f", status,
                 " (the client closed the connection)" if status == 499 else "",
                 upload.size if upload else request.headers.get("content-length", "-"),
                 upload.kind if upload else "-", (time.perf_counter() - t0) * 1000)


def _queue_full(settings: Settings) -> ApiError:
    return ApiError("queue_full", f"the server is busy ({settings.workers} running, "
                    f"{settings.queue_size} waiting); retry shortly",
                    headers={"Retry-After": "2"})


async def read_json_body(request: Request, settings: Settings) -> bytes:
    """A JSON body, refused (413) from ``Content-Length`` or as soon as the bytes read pass
    ``MER_MAX_JSON_KB``, and paced like uploads (408)."""
    limit = settings.max_json_bytes
    too_large = ApiError("body_too_large", f"the body is larger than the {settings.max_json_kb:g}"
                         " KB limit (MER_MAX_JSON_KB)", headers={"Connection": "close"})
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    data = bytearray()
    async for chunk in paced(request.stream(), settings.read_timeout_s,
                             settings.min_upload_kbps * 1024):
        data += chunk
        if len(data) > limit:
            raise too_large
    return bytes(data)


def _error_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error codes: one entry per status, naming each code."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        status, when = ERRORS[code]
        entry = out.setdefault(status, {"description": "", "content": {"application/json": {
            "schema": {"type": "object", "required": ["error", "message"], "properties": {
                "error": {"type": "string", "enum": []}, "message": {"type": "string"}}}}}})
        entry["description"] = "; ".join(filter(None, [entry["description"],
                                                       f"`{code}`: {when}"]))
        entry["content"]["application/json"]["schema"]["properties"]["error"]["enum"].append(code)
    return out


def _form_option(name: str, value: str, rec: Any, settings: Settings) -> dict[str, Any]:
    """Validate one form field of ``/v1/analyze`` (unknown fields are ignored)."""
    if name == "fusion":
        if value == "":
            return {}
        fusions = list(rec.model.fusions)
        if value not in fusions:
            raise ApiError("invalid_request", f"fusion {value!r} is not in the loaded model; use "
                           f"one of {fusions}")
        return {"fusion": value}
    if name == "labels":
        if value.strip() == "":
            return {}
        if len(value) > 64 * 1024:
            raise ApiError("invalid_request", "labels: a label map must be under 64 KB")
        try:
            return {"labels": LabelMap.parse(value, source="labels")}
        except InputError as exc:
            raise ApiError("invalid_request", str(exc)) from exc
    if name == "fps":
        if value == "":
            return {}
        try:
            fps = float(value)
        except ValueError:
            raise ApiError("invalid_request", f"fps must be a number, not {value!r}") from None
        if not settings.min_fps <= fps <= settings.max_fps:
            raise ApiError("invalid_request", f"fps must be between {settings.min_fps:g} and "
                           f"{settings.max_fps:g} frames per second, not {value}")
        return {"fps": fps}
    return {}


def analyze_file(rec: Any, path: Path, fusion: str | None, fps: float | None,
                 labels: LabelMap | None = None) -> Any:
    """``rec.analyze(path)``, sampling frames at ``fps`` when the request asked for another
    rate than the recognizer's. The recognizer decodes the file piece by piece either way, under
    its own duration limit, so memory does not grow with the upload's length."""
    extra: dict[str, Any] = {"labels": labels} if labels is not None else {}
    if fps is not None and fps != getattr(rec, "fps", None):
        extra["fps"] = fps
    return rec.analyze(str(path), fusion=fusion, **extra)


# -- /v1/models ------------------------------------------------------------------------------
def describe_models(rec: Any, settings: Settings) -> dict[str, Any]:
    """The loaded model in one JSON object (built from its ``config.json``)."""
    import platform

    import torch

    model = rec.model
    enc_cfg: dict[str, Any] = model.config.get("encoders", {})
    encoders = {m: {"name": enc_cfg.get(m, {}).get("name"), "dim": int(model.dims[m])}
                for m in MODALITIES}
    encoders["text"]["transcriber"] = enc_cfg.get("transcriber", {}).get("name")
    model_dir = getattr(rec, "model_dir", settings.model_dir)
    return {
        "encoders": encoders,
        "fusions": list(model.fusions),
        "default_fusion": model.default_fusion,
        # whether each strategy answers exactly as the lone expert when one modality is there
        "fusion_properties": {n: {"keeps_single_modality": bool(getattr(
            f, "keeps_single_modality", False)), "decision_level": bool(getattr(
                f, "decision_level", False))} for n, f in model.fusions.items()},
        "calibration": model.calibration.to_config() if hasattr(model, "calibration") else None,
        "late_fusion_rules": LATE_FUSION_RULES,
        "labels": list(model.labels),
        "analyze": {"fps_default": getattr(rec, "fps", None),
                    "fps_range": [settings.min_fps, settings.max_fps],
                    "window_s": getattr(rec, "window_s", settings.window_s),
                    "max_upload_mb": settings.max_upload_mb},
        # the folder's name only: the server's file system is not the client's business
        "model": {"dir": Path(str(model_dir)).name if model_dir else None,
                  "format": model.config.get("format"), "dtype": model.config.get("dtype"),
                  "provenance": model.config.get("provenance")},
        "versions": {"multimodal_emotion": _package_version(), "torch": torch.__version__,
                     "python": platform.python_version()},
    }


def _package_version() -> str:
    if __version__:
        return __version__
    from importlib.metadata import version

    return version("multimodal-emotion")


# -- errors ----------------------------------------------------------------------------------
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized",
               413: "upload_too_large", 415: "unsupported_media_type", 429: "queue_full",
               503: "not_ready"}


def _install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as ``{"error": code, "message": text}``, FastAPI's own included."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail),
                              dict(exc.headers or {}))

    @app.exception_handler(MediaError)
    async def media_error(_: Request, exc: MediaError) -> JSONResponse:
        if isinstance(exc, MediaLimitError):
            return error_response(413, "media_too_long", str(exc))
        return error_response(400, "unreadable_media", str(exc))

    @app.exception_handler(InputError)
    async def input_error(_: Request, exc: InputError) -> JSONResponse:
        return error_response(422, "invalid_request", str(exc))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _: ClientDisconnect) -> Response:
        """A client that hung up mid-body: its doing, not a server error (one line, 499).
        ``/v1/analyze`` answers it itself, inside its own access-log line."""
        log.info("%s status=499 (the client closed the connection)", request.url.path)
        return Response(status_code=499)

    @app.exception_handler(MerError)
    async def mer_error(_: Request, exc: MerError) -> JSONResponse:
        log.error("request failed: %s", exc)
        return error_response(500, "internal_error", str(exc))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")


MAX_LISTED_ERRORS = 10
_MAX_PART = 120


def validation_response(raw_errors: Any) -> JSONResponse:
    """422 with at most :data:`MAX_LISTED_ERRORS` errors, each cut short: a 5 MB body of wrong
    values once produced a 236 MB answer (every error twice, with its input). The answer stays
    a few KB whatever was sent, and says how many errors were left out."""
    errors = list(raw_errors)
    shown = []
    for e in errors[:MAX_LISTED_ERRORS]:
        loc = [p if isinstance(p, int) else str(p)[:_MAX_PART] for p in e.get("loc", ())]
        shown.append({"loc": loc, "msg": str(e.get("msg", ""))[:_MAX_PART],
                      "type": str(e.get("type", ""))[:_MAX_PART]})
    parts = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
             for e in shown]
    more = len(errors) - len(shown)
    message = "; ".join(parts) or "invalid request"
    if more > 0:
        message += f"; and {more} more error(s)"
    return error_response(422, "invalid_request", message, details=shown, error_count=len(errors))


# -- mer serve -------------------------------------------------------------------------------
def serve_cli(args: Any) -> int:
    """``mer serve --host --port --model``; everything else comes from ``MER_*`` variables."""
    import uvicorn

    settings = Settings.from_env(model_dir=getattr(args, "model", None))
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("serving on http://%s:%d (workers=%d, queue=%d, max upload %g MB, API key %s, "
             "content logging %s)", args.host, args.port, settings.workers, settings.queue_size,
             settings.max_upload_mb, "on" if settings.api_key else "off",
             "on" if settings.log_content else "off")
    from .connection import header_deadline_protocol

    # a WebSocket message is at most a 1 MB JPEG (serving/stream.py): refuse bigger ones before
    # they are buffered, not after
    uvicorn.run(create_app(settings=settings), host=args.host, port=args.port,
                log_level="info", http=header_deadline_protocol(settings.header_timeout_s),
                ws_max_size=2 * 1024 * 1024)
    return 0
