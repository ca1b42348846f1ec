"""HTTP serving: ``mer serve`` runs :func:`create_app` under uvicorn.

Modules: ``app`` (factory, routes, ``serve_cli``), ``settings`` (``MER_*`` variables),
``upload`` (streaming upload with size limit and type sniffing), ``work`` (bounded inference
queue), ``fuse`` (``/v1/fuse``), ``stream`` (``/v1/stream``, live analysis over a WebSocket),
``errors`` (the JSON error contract), ``live`` (uvicorn in a
thread, for tests), ``static/`` (the web page). FastAPI is imported only when ``app`` is first
used, so ``mer serve --help`` can list the settings without loading it.
"""

from __future__ import annotations

from typing import Any

from .settings import Settings

__all__ = ["create_app", "serve_cli", "Settings"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "serve_cli"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
