"""Run an app under a real uvicorn in a background thread, on a free loopback port.

For tests and notebooks that need real sockets (concurrency, early 413, a browser), where
Starlette's ``TestClient`` would buffer the body and serialise the requests.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int | None = None,
                    ready_timeout: float = 120.0, wait_ready: bool = True,
                    header_timeout_s: float = 10.0) -> Iterator[str]:
    """Yield the base URL once uvicorn listens (and, with ``wait_ready``, once ``/healthz`` says
    ready); stop the server on exit. Connections get ``mer serve``'s header deadline."""
    from .connection import header_deadline_protocol

    import urllib.error
    import urllib.request

    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                          lifespan="on",
                                          http=header_deadline_protocol(header_timeout_s)))
    thread = threading.Thread(target=server.run, name="mer-uvicorn", daemon=True)
    thread.start()
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + ready_timeout
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {url}")
            time.sleep(0.02)
        while wait_ready:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=5) as res:
                    if res.status == 200:
                        break
            except urllib.error.HTTPError as err:
                body = err.read().decode("utf-8", "replace")
                if err.code != 503 or "model_load_failed" in body:
                    raise RuntimeError(f"{url}/healthz: {err.code} {body}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not become ready in {ready_timeout:.0f} s")
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
