"""HTTP serving: ``mer serve`` runs :func:`create_app` under uvicorn.

Modules: ``app`` (factory, routes, ``serve_cli``), ``settings`` (``MER_*`` variables),
``upload`` (streaming upload with size limit and type sniffing), ``work`` (bounded inference
queue), ``fuse`` (``/v1/fuse``), ``errors`` (the JSON error contract), ``live`` (uvicorn in a
thread, for tests), ``static/`` (the web page). FastAPI is imported only when this package is.
"""

from .app import create_app, serve_cli
from .settings import Settings

__all__ = ["create_app", "serve_cli", "Settings"]
