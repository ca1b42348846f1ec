"""Server settings: one frozen dataclass, read from ``MER_*`` environment variables.

Everything an operator may need to change without code lives here, so tests can build an app
with a tiny upload limit or a one-slot queue by passing a ``Settings`` instead of patching
globals, and ``mer serve`` keeps only three flags (host, port, model).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ..errors import InputError

_TRUE = {"1", "true", "yes", "on"}

# Every MER_* variable, what it does, its default: `mer serve --help` prints this list.
ENV_HELP: dict[str, str] = {
    "MER_MODEL": "model folder (--model overrides); default: the shipped model",
    "MER_API_KEY": "require this key on /v1/* (X-API-Key or Authorization: Bearer); "
                   "default: unset, no key; blank is refused",
    "MER_WORKERS": "inference threads; default 1",
    "MER_QUEUE_SIZE": "analyses that may wait for a worker, then 429; default 8",
    "MER_MAX_UPLOAD_MB": "largest upload, then 413; default 200",
    "MER_MAX_DURATION_S": "longest clip, then 413 media_too_long; default 3600",
    "MER_READ_TIMEOUT_S": "a body silent this long is dropped (408); default 10",
    "MER_MIN_UPLOAD_KBPS": "after MER_READ_TIMEOUT_S a body must average this rate, else "
                           "408 (0: off); default 32",
    "MER_HEADER_TIMEOUT_S": "a connection whose request headers are not complete this long "
                            "after it opened (or after its last response) is closed; default 10",
    "MER_MAX_RECEIVING": "upload bodies arriving at once, then 429; default 16",
    "MER_MAX_JSON_KB": "largest /v1/fuse body, then 413; default 1024",
    "MER_WINDOW_S": "seconds per segment of long clips; default 10",
    "MER_UPLOAD_DIR": "uploads stream to <dir>/mer-uploads/; default: the system temp folder",
    "MER_LOG_CONTENT": "1 logs file names, labels, transcripts; default 0",
    "MER_FEEDBACK": "1 turns on POST /v1/feedback (needs MER_DATA_DIR); default 0",
    "MER_CALL_KEEP_H": "hours a finished call job (its result) is kept before it is deleted; "
                       "default 168 (a week)",
    "MER_DATA_DIR": "folder of the feedback store and of call jobs (calls/); default unset "
                    "(call jobs then live under MER_UPLOAD_DIR/mer-calls)",

    "MER_MAX_STREAMS": "live /v1/stream connections at once, then closed 4429; default 2",
    "MER_STREAM_WINDOW_S": "seconds per live window (a client may ask 1..30); default 4",
    "MER_STREAM_HOP_S": "seconds between live windows (a client may ask 0.5..window); "
                        "default 2",
}


def env_help() -> str:
    """The ``MER_*`` settings as an argparse epilog."""
    width = max(map(len, ENV_HELP))
    return "settings (environment variables; a bad value stops the server at start):\n" + \
        "\n".join(f"  {var:<{width}}  {text}" for var, text in ENV_HELP.items())


@dataclass(frozen=True)
class Settings:
    """How the HTTP server behaves. Build with :meth:`from_env`; override with ``replace``."""

    model_dir: str | None = None
    """Model folder (``config.json`` + ``model.safetensors``); ``None`` = the shipped model."""
    max_upload_mb: float = 200.0
    """Largest accepted upload; bigger ones get 413 as soon as the byte count passes it."""
    workers: int = 1
    """Inference threads. The recognizer is not guaranteed thread-safe, hence 1 by default."""
    queue_size: int = 8
    """Analyses allowed to *wait* for a worker; one more request than workers + queue gets 429."""
    api_key: str | None = None
    """When set, ``/v1/*`` need ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``."""
    upload_dir: str = field(default_factory=tempfile.gettempdir)
    """Where uploads are streamed to; each file is deleted when its request ends."""
    log_content: bool = False
    """Log file names, transcripts and labels. Off: logs carry only sizes, status and timing."""
    min_fps: float = 0.5
    max_fps: float = 30.0
    window_s: float = 10.0
    """Seconds per segment for long clips (as ``mer analyze --window``)."""
    max_duration_s: float = 3600.0
    """Longer clips are refused (413 ``media_too_long``): decoding memory and analysis time grow
    with duration, and 10 h of silence fits in a 7 MB FLAC."""
    read_timeout_s: float = 10.0
    """An upload or JSON body that sends nothing for this long is dropped (408)."""
    min_upload_kbps: float = 32.0
    """After ``read_timeout_s``, a body must have averaged at least this rate (KB/s), or it is
    dropped (408): a client sending one byte every few seconds must not hold a connection."""
    header_timeout_s: float = 10.0
    """A connection whose request headers are not all in this long after it opened (or after
    its previous response) is closed: uvicorn has no such deadline, and a client trickling
    headers held its socket forever (``serving/connection.py``)."""
    max_receiving: int = 16
    """Uploads whose bodies may arrive at once. Bodies are read *before* a queue slot is taken
    (so slow senders cannot hold slots), and this bounds the disk they use meanwhile."""
    max_json_kb: float = 1024.0
    """Largest ``/v1/fuse`` body (413): a 40 MB JSON took the server to 1.8 GB."""
    feedback: bool = False
    """``POST /v1/feedback`` on, and each analysis's expert logits kept (never the media) under
    ``data_dir`` so a person's label can later refit the fusion (``mer adapt --feedback``)."""
    call_keep_h: float = 168.0
    """Hours a finished ``/v1/calls`` job (its result: transcripts, emotions) is kept."""
    data_dir: str | None = None
    """Where the server keeps what it must keep: the feedback store (needed by ``feedback``)
    and the call jobs of ``/v1/calls`` (``calls/``; without it they live next to the uploads)."""

    max_streams: int = 2
    """Live ``/v1/stream`` connections at once: each runs its own analysis thread (a window
    every hop), so on two cores two streams already share the CPU."""
    stream_window_s: float = 4.0
    """Default seconds per live window (a client may ask for 1 to 30 in its ``start``)."""
    stream_hop_s: float = 2.0
    """Default seconds between live windows: 2 s is what the full model keeps up with on two
    shared cores (``bench/stream.py``)."""

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_json_bytes(self) -> int:
        return int(self.max_json_kb * 1024)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Settings from ``MER_*`` variables (see the README's Serving section), then
        ``overrides`` (``None`` values are ignored, so CLI flags left unset do not clobber)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        readers = {
            "model_dir": ("MER_MODEL", str),
            "max_upload_mb": ("MER_MAX_UPLOAD_MB", float),
            "workers": ("MER_WORKERS", int),
            "queue_size": ("MER_QUEUE_SIZE", int),
            "api_key": ("MER_API_KEY", str),
            "upload_dir": ("MER_UPLOAD_DIR", str),
            "log_content": ("MER_LOG_CONTENT", lambda s: s.strip().lower() in _TRUE),
            "window_s": ("MER_WINDOW_S", float),
            "max_duration_s": ("MER_MAX_DURATION_S", float),
            "read_timeout_s": ("MER_READ_TIMEOUT_S", float),
            "min_upload_kbps": ("MER_MIN_UPLOAD_KBPS", float),
            "header_timeout_s": ("MER_HEADER_TIMEOUT_S", float),
            "max_receiving": ("MER_MAX_RECEIVING", int),
            "max_json_kb": ("MER_MAX_JSON_KB", float),
            "feedback": ("MER_FEEDBACK", lambda s: s.strip().lower() in _TRUE),
            "data_dir": ("MER_DATA_DIR", str),
            "call_keep_h": ("MER_CALL_KEEP_H", float),

            "max_streams": ("MER_MAX_STREAMS", int),
            "stream_window_s": ("MER_STREAM_WINDOW_S", float),
            "stream_hop_s": ("MER_STREAM_HOP_S", float),
        }
        for name, (var, parse) in readers.items():
            raw = env.get(var)
            if raw is not None and raw != "" and raw.strip() == "" and var == "MER_API_KEY":
                # blank would silently turn the key off: refuse rather than serve unguarded
                raise InputError(f"{var} is set but blank; give a key, or unset it to serve "
                                 "without one")
            if raw is None or raw.strip() == "":
                continue
            try:
                values[name] = parse(raw.strip())
            except ValueError as exc:
                raise InputError(f"{var}={raw!r} is not a valid value ({exc})") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validated()

    def validated(self) -> "Settings":
        """Reject settings that would make a broken server, with the variable to fix."""
        for var, value, lo, hi in (("MER_MAX_UPLOAD_MB", self.max_upload_mb, 0, 1024 * 1024),
                                   ("MER_WINDOW_S", self.window_s, 0, 3600),
                                   ("MER_MAX_DURATION_S", self.max_duration_s, 0, 86400),
                                   ("MER_READ_TIMEOUT_S", self.read_timeout_s, 0, 3600),
                                   ("MER_MIN_UPLOAD_KBPS", self.min_upload_kbps, -1, 1e6),
                                   ("MER_HEADER_TIMEOUT_S", self.header_timeout_s, 0, 3600),
                                   ("MER_MAX_JSON_KB", self.max_json_kb, 0, 1024 * 1024)):
            # nan and inf parse as floats; each made a server that answered 500 forever
            if not (math.isfinite(value) and lo < value <= hi):
                raise InputError(f"{var}={value!r} is out of range: give a number > {lo:g} "
                                 f"and <= {hi:g}")
        if not (math.isfinite(self.call_keep_h) and 0 < self.call_keep_h <= 24 * 3650):
            raise InputError(f"MER_CALL_KEEP_H={self.call_keep_h!r} is out of range: give a "
                             "number of hours > 0 and <= 87600")

        if not (math.isfinite(self.stream_window_s) and 1 <= self.stream_window_s <= 30):
            raise InputError("MER_STREAM_WINDOW_S must be between 1 and 30 seconds")
        if not (math.isfinite(self.stream_hop_s)
                and 0.5 <= self.stream_hop_s <= self.stream_window_s):
            raise InputError("MER_STREAM_HOP_S must be between 0.5 s and the window length")
        if self.max_streams < 0:
            raise InputError("MER_MAX_STREAMS must be >= 0 (0 turns /v1/stream off)")
        if self.max_receiving < 1:
            raise InputError("MER_MAX_RECEIVING must be >= 1")
        if self.api_key is not None and self.api_key.strip() == "":
            raise InputError("MER_API_KEY is blank; give a key, or unset it")
        if self.workers < 1:
            raise InputError("MER_WORKERS must be >= 1")
        if self.queue_size < 0:
            raise InputError("MER_QUEUE_SIZE must be >= 0")
        if not 0 < self.min_fps <= self.max_fps:
            raise InputError("fps bounds must satisfy 0 < min_fps <= max_fps")
        if self.feedback and not self.data_dir:
            raise InputError("MER_FEEDBACK=1 needs MER_DATA_DIR: the folder where the feedback "
                             "store (expert logits and labels, never media) is kept")
        return self

    def replace(self, **changes: Any) -> "Settings":
        return replace(self, **changes).validated()
