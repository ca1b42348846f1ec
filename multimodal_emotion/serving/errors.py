"""The HTTP error contract: every failure is ``{"error": "<stable_code>", "message": "..."}``.

Clients branch on ``error`` (a code that never changes) and show ``message`` (prose that may).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

# status, code, when -- the README's error table is generated from the same words.
ERRORS: dict[str, tuple[int, str]] = {
    "empty_upload": (400, "the uploaded file has no bytes"),
    "unreadable_media": (400, "the file has a media signature but cannot be decoded"),
    "malformed_request": (400, "the multipart body cannot be parsed"),
    "unauthorized": (401, "MER_API_KEY is set and the key is missing or wrong"),
    "not_found": (404, "no such route"),
    "feedback_disabled": (404, "POST /v1/feedback while MER_FEEDBACK is off"),
    "unknown_analysis": (404, "the analysis_id was never returned by /v1/analyze here"),
    "unknown_call": (404, "no call job has that id (never created, or deleted)"),
    "method_not_allowed": (405, "wrong HTTP method for the route"),
    "upload_timeout": (408, "the body stalled for MER_READ_TIMEOUT_S or came slower than "
                            "MER_MIN_UPLOAD_KBPS"),
    "call_not_done": (409, "GET /v1/calls/{id}?format=html before the call's analysis is done"),
    "upload_too_large": (413, "the upload passes MER_MAX_UPLOAD_MB"),
    "body_too_large": (413, "a JSON body over its route's limit (fuse: MER_MAX_JSON_KB; "
                            "feedback: 4 KB)"),
    "media_too_long": (413, "the clip lasts longer than MER_MAX_DURATION_S, or its frames are "
                            "larger than 8K"),
    "unsupported_media_type": (415, "the first bytes match no supported audio/video container"),
    "invalid_request": (422, "a field is missing, of the wrong type or out of range"),
    "queue_full": (429, "every worker is busy and MER_QUEUE_SIZE analyses already wait"),
    "too_many_uploads": (429, "MER_MAX_RECEIVING upload bodies are already arriving"),
    "internal_error": (500, "a bug; the message says what failed"),
    "not_ready": (503, "models are still loading"),
    "model_load_failed": (503, "the models could not be loaded; the server will not become ready"),
}


class ApiError(Exception):
    """Raised anywhere in a request; the app turns it into the JSON error response."""

    def __init__(self, code: str, message: str, status: int | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.status = status or ERRORS[code][0]
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, self.headers, **self.extra)


def error_response(http_status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=http_status,
                        headers=headers)
