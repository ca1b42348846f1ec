"""``/v1/stream``: live analysis over a WebSocket, one JSON result per window.

Protocol (the README's "Live" section and ``static/live.js`` say the same):

Client -> server

* **Text** messages are JSON control messages:

  - ``{"type": "start", "key": "...", "window_s": 4, "hop_s": 2, "fps": 2, "fusion": "product"}``
    -- optional, and then the first message; every field optional. ``key`` is the API key for
    clients that cannot send headers (browsers): it may also come as ``?key=`` in the URL or as
    an ``X-API-Key`` / ``Authorization: Bearer`` header. When the server has a key, media before
    a valid key closes the connection (4401).
  - ``{"type": "stop"}`` -- end of stream: the rest is analyzed, its results sent, then
    ``{"type": "end", "stats": {...}}`` and a normal close (1000).

* **Binary** messages carry media: 1 byte kind, 8 bytes little-endian float64 capture time
  (seconds, on one clock for audio and frames, any origin), then the payload:

  - kind ``1``: audio, 16 kHz mono PCM16 little-endian (an even number of bytes, at most
    2 s = 64,000 bytes per message), the capture time being that of its first sample;
  - kind ``2``: one video frame as JPEG (at most 1 MB, at most 4096 pixels a side).

Server -> client (text, JSON)

* ``{"type": "ready", "window_s", "hop_s", "fps", "fusion", "labels"}`` once the stream is set
  up; ``{"type": "result", ...}`` per window (``mer stream --json``'s object: ``start``/``end``
  in the client's clock, ``label``, ``probabilities``, ``confidence``, ``modalities``,
  ``lag_ms``, ``dropped``); ``{"type": "end", "stats"}`` after a ``stop``;
  ``{"type": "error", "error": code, "message"}`` right before a close for a reason below.

Close codes: 1000 normal (after ``stop``); 4400 ``bad_message`` (unknown kind or type, bad
header, odd PCM length, undecodable JPEG, bad ``start`` field, ``start`` sent twice or late);
4401 ``unauthorized``; 4408 ``idle`` (nothing received for ``MER_READ_TIMEOUT_S``); 4413
``too_large`` (a message over its limit) or ``media_too_long`` (longer than
``MER_MAX_DURATION_S``); 4429 ``too_many_streams`` (``MER_MAX_STREAMS`` already open); 4503
``not_ready`` (models loading, or failed to load). The close reason repeats the code.

Each stream has its own :class:`~multimodal_emotion.streaming.StreamEngine` (its own analysis
thread, bounded buffers): when the analysis falls behind, frames are dropped before windows and
each result says so. Results a slow client does not read are dropped oldest first (at most
:data:`MAX_UNSENT` wait), so a stalled reader costs no memory.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import struct
from collections import deque
from typing import Any

import numpy as np
from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ..errors import InputError
from ..labels import LABELS
from ..streaming import StreamEngine, StreamResult, StreamStats, recognizer_engine
from .settings import Settings
from .work import Slots

log = logging.getLogger("multimodal_emotion.serving")

KIND_AUDIO, KIND_FRAME = 1, 2
HEADER = struct.Struct("<Bd")  # kind, capture time
MAX_AUDIO_BYTES = 64_000  # 2 s of 16 kHz PCM16
MAX_JPEG_BYTES = 1 << 20
MAX_JPEG_SIDE = 4096
FRAME_SIDE = 640  # frames are scaled down to this before they are kept
MAX_TEXT_BYTES = 4096
MAX_UNSENT = 16

CLOSE = {"bad_message": 4400, "unauthorized": 4401, "idle": 4408, "too_large": 4413,
         "media_too_long": 4413, "too_many_streams": 4429, "not_ready": 4503}


class StreamClosed(Exception):
    """Close the connection with ``CLOSE[code]`` after telling the client why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def add_stream_route(app: FastAPI, state: Any, settings: Settings) -> None:
    """Mount ``/v1/stream`` on ``app`` (``state``: the app's ServerState)."""
    streams = Slots(max(settings.max_streams, 0)) if settings.max_streams else None

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        took = False
        try:
            if streams is None or not streams.take():
                raise StreamClosed("too_many_streams", f"{settings.max_streams} live streams "
                                   "are already open (MER_MAX_STREAMS); retry later")
            took = True
            await _serve(ws, state, settings)
        except StreamClosed as err:
            await _close(ws, err.code, err.message)
        except WebSocketDisconnect:
            pass
        finally:
            if took:
                streams.give()


async def _close(ws: WebSocket, code: str, message: str) -> None:
    log.info("stream closed: %s (%s)", code, message)
    if ws.application_state == WebSocketState.CONNECTED:
        try:
            await ws.send_text(json.dumps({"type": "error", "error": code, "message": message}))
            await ws.close(CLOSE[code], reason=f"{code}: {message}"[:120])
        except (WebSocketDisconnect, RuntimeError):
            pass


def _header_key(ws: WebSocket) -> str | None:
    given = ws.query_params.get("key") or ws.headers.get("x-api-key")
    auth = ws.headers.get("authorization", "")
    if given is None and auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    return given


def _key_ok(given: Any, settings: Settings) -> bool:
    return isinstance(given, str) and bool(given) and hmac.compare_digest(
        given.encode(), settings.api_key.encode())


async def _serve(ws: WebSocket, state: Any, settings: Settings) -> None:
    if state.load_error is not None:
        raise StreamClosed("not_ready", f"the models could not be loaded: {state.load_error}")
    if not state.ready.is_set():
        raise StreamClosed("not_ready", "models are loading; retry shortly")
    rec = state.recognizer
    authorized = not settings.api_key or _key_ok(_header_key(ws), settings)
    if settings.api_key and _header_key(ws) is not None and not authorized:
        raise StreamClosed("unauthorized", "wrong API key")
    first = await _receive(ws, settings)
    config: dict[str, Any] = {}
    if first.get("text") is not None:
        config = _parse_start(first["text"], rec, settings)
        if settings.api_key and not authorized:
            if not _key_ok(config.get("key"), settings):
                raise StreamClosed("unauthorized", "a valid API key is required: ?key= in the "
                                   "URL, an X-API-Key header, or \"key\" in the start message")
            authorized = True
        first = None
    if not authorized:
        raise StreamClosed("unauthorized", "a valid API key is required before any media: "
                           "?key= in the URL, an X-API-Key header, or \"key\" in a start "
                           "message sent first")
    window_s = config.get("window_s", settings.stream_window_s)
    hop_s = min(config.get("hop_s", settings.stream_hop_s), window_s)
    fps = config.get("fps", getattr(rec, "fps", 2.0))
    fusion = config.get("fusion")
    loop = asyncio.get_running_loop()
    unsent: deque[dict[str, Any]] = deque()
    wake = asyncio.Event()
    lost = [0]

    def on_result(result: StreamResult) -> None:  # the engine's worker thread
        loop.call_soon_threadsafe(_queue_result, result.to_dict())

    def _queue_result(d: dict[str, Any]) -> None:
        if len(unsent) >= MAX_UNSENT:
            unsent.popleft()
            lost[0] += 1
        unsent.append(d)
        wake.set()

    engine = recognizer_engine(rec, on_result, fusion=fusion, window_s=window_s, hop_s=hop_s,
                               fps=fps)
    await ws.send_text(json.dumps({"type": "ready", "window_s": window_s, "hop_s": hop_s,
                                   "fps": fps, "fusion": fusion or rec.model.default_fusion,
                                   "labels": list(LABELS)}))
    finished = asyncio.Event()
    # the sender lives exactly as long as this handler: drained after a stop, else cancelled,
    # and awaited either way before the handler returns (see _end_task)
    sender = asyncio.create_task(_send_results(ws, unsent, wake, finished))
    try:
        stats = await _read_media(ws, settings, engine, first)
        await asyncio.sleep(0)  # the last results' hand-over (call_soon_threadsafe) runs first
        finished.set()
        wake.set()
        await sender  # sends what is queued, then returns
    finally:
        await _end_task(sender)
    await ws.send_text(json.dumps({"type": "end", "stats": {**stats.to_dict(),
                                                            "unsent_results_dropped": lost[0]}}))
    await ws.close(1000)


async def _read_media(ws: WebSocket, settings: Settings, engine: StreamEngine,
                      first: dict[str, Any] | None) -> StreamStats:
    """Feed the engine until the client's ``stop``; return the engine's stats once the tail is
    analyzed. Any other end (a disconnect, a bad message) raises, and what waits is dropped."""
    origin: float | None = None
    stopped = False
    try:
        while True:
            msg = first or await _receive(ws, settings)
            first = None
            if msg.get("text") is not None:
                control = _parse_json(msg["text"])
                if control.get("type") == "stop":
                    stopped = True
                    break
                if control.get("type") == "start":
                    raise StreamClosed("bad_message", "\"start\" may only be the first message")
                raise StreamClosed("bad_message", f"unknown control message type "
                                   f"{control.get('type')!r}: use \"start\" or \"stop\"")
            kind, t, payload = _parse_binary(msg.get("bytes") or b"")
            origin = t if origin is None else min(origin, t)
            if t - origin > settings.max_duration_s:
                raise StreamClosed("media_too_long", f"the stream passed "
                                   f"{settings.max_duration_s:g} s (MER_MAX_DURATION_S)")
            try:
                if kind == KIND_AUDIO:
                    engine.push_audio(np.frombuffer(payload, "<i2"), t)
                else:
                    rgb = await asyncio.to_thread(_decode_jpeg, payload)
                    engine.push_frame(rgb, t)
            except InputError as exc:
                raise StreamClosed("bad_message", str(exc)) from None
    finally:
        # the tail is analyzed only after a stop; otherwise what waits is dropped
        stats = await asyncio.to_thread(engine.close, stopped)
    return stats


async def _end_task(task: asyncio.Task) -> None:
    """Cancel ``task`` unless it is done, and wait for it, so that no task outlives its
    connection. Its own error (a send to a client that has gone) is logged, not raised: the
    handler is already ending for a reason of its own.

    If the handler is itself cancelled meanwhile (the server, or a test client, ending the
    connection), the wait still runs to the task's end and then the handler's *own*
    cancellation is raised. Awaiting the task through ``gather`` instead would, when both
    cancellations meet in one loop turn, raise the task's bare ``CancelledError`` in the
    handler: a cancel scope (anyio, which Starlette runs on) does not recognise that one as
    its own and lets it escape the connection."""
    task.cancel()
    own: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            own = exc
    if own is not None:
        raise own
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.info("stream: the results sender ended with %s: %s", type(exc).__name__, exc)


async def _send_results(ws: WebSocket, unsent: deque, wake: asyncio.Event,
                        finished: asyncio.Event) -> None:
    """Send results as they come; return once ``finished`` is set and none is left."""
    while True:
        await wake.wait()
        wake.clear()
        while unsent:
            await ws.send_text(json.dumps({"type": "result", **unsent.popleft()}))
        if finished.is_set():
            return


async def _receive(ws: WebSocket, settings: Settings) -> dict[str, Any]:
    try:
        msg = await asyncio.wait_for(ws.receive(), settings.read_timeout_s)
    except asyncio.TimeoutError:
        raise StreamClosed("idle", f"nothing received for {settings.read_timeout_s:g} s "
                           "(MER_READ_TIMEOUT_S)") from None
    if msg["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(msg.get("code", 1000))
    return msg


def _parse_json(text: str) -> dict[str, Any]:
    if len(text) > MAX_TEXT_BYTES:
        raise StreamClosed("too_large", f"a control message is at most {MAX_TEXT_BYTES} bytes")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):  # 2 KB of "[" already pass json's recursion limit
        raise StreamClosed("bad_message", "a text message must be a JSON object with a "
                           "\"type\" (\"start\" or \"stop\")") from None
    if not isinstance(obj, dict):
        raise StreamClosed("bad_message", "a control message must be a JSON object")
    return obj


def _parse_start(text: str, rec: Any, settings: Settings) -> dict[str, Any]:
    obj = _parse_json(text)
    if obj.get("type") != "start":
        raise StreamClosed("bad_message", "the first text message must be {\"type\": \"start\""
                           ", ...}")
    out: dict[str, Any] = {"key": obj.get("key")}
    bounds = {"window_s": (1.0, 30.0), "hop_s": (0.5, 30.0),
              "fps": (settings.min_fps, settings.max_fps)}
    for name, (lo, hi) in bounds.items():
        if obj.get(name) is None:
            continue
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or not lo <= value <= hi:
            raise StreamClosed("bad_message", f"start: {name} must be a number between {lo:g} "
                               f"and {hi:g}, not {value!r}")
        out[name] = float(value)
    if obj.get("fusion") is not None:
        if obj["fusion"] not in list(rec.model.fusions):
            raise StreamClosed("bad_message", f"start: fusion {obj['fusion']!r} is not in the "
                               f"loaded model; use one of {list(rec.model.fusions)}")
        out["fusion"] = obj["fusion"]
    unknown = set(obj) - {"type", "key", "fusion", *bounds}
    if unknown:
        raise StreamClosed("bad_message", f"start: unknown field(s) {sorted(unknown)}")
    return out


def _parse_binary(data: bytes) -> tuple[int, float, bytes]:
    if len(data) < HEADER.size:
        raise StreamClosed("bad_message", f"a binary message starts with a {HEADER.size}-byte "
                           "header: 1 byte kind (1 audio, 2 JPEG frame) + float64 LE capture "
                           "time")
    kind, t = HEADER.unpack_from(data)
    payload = data[HEADER.size:]
    if kind not in (KIND_AUDIO, KIND_FRAME):
        raise StreamClosed("bad_message", f"unknown media kind {kind}: 1 is PCM16 audio, 2 a "
                           "JPEG frame")
    if not math.isfinite(t):
        raise StreamClosed("bad_message", "the capture time must be a finite number")
    if kind == KIND_AUDIO:
        if len(payload) > MAX_AUDIO_BYTES:
            raise StreamClosed("too_large", f"an audio message is at most {MAX_AUDIO_BYTES} "
                               "bytes (2 s of 16 kHz PCM16)")
        if len(payload) % 2:
            raise StreamClosed("bad_message", "audio must be 16-bit PCM: an even number of "
                               "bytes")
    elif len(payload) > MAX_JPEG_BYTES:
        raise StreamClosed("too_large", f"a JPEG frame is at most {MAX_JPEG_BYTES} bytes")
    return kind, t, payload


def _decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> RGB, at most :data:`FRAME_SIDE` a side; refused when it is not a JPEG
    or is too large (checked from its header before the pixels are decoded)."""
    import cv2

    if data[:3] != b"\xff\xd8\xff":
        raise StreamClosed("bad_message", "a frame must be a JPEG image (it starts with "
                           "FF D8 FF)")
    w, h = _jpeg_size(data)
    if w > MAX_JPEG_SIDE or h > MAX_JPEG_SIDE:
        raise StreamClosed("too_large", f"a frame is at most {MAX_JPEG_SIDE} pixels a side, "
                           f"not {w}x{h}")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise StreamClosed("bad_message", "a frame could not be decoded as JPEG")
    scale = FRAME_SIDE / max(bgr.shape[:2])
    if scale < 1:
        bgr = cv2.resize(bgr, (max(2, int(bgr.shape[1] * scale)),
                               max(2, int(bgr.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from a JPEG's start-of-frame marker (0, 0 when none is found)."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7],
                                                                            "big")
        i += 2 + length
    return 0, 0

