"""A deadline on request headers, which uvicorn does not have.

A client that opens connections and sends its request line and headers a byte at a time
("slowloris") holds a socket and a slot of uvicorn's connection limit for as long as it likes:
the body deadline (``MER_READ_TIMEOUT_S``, ``upload.py``) only starts once the headers are in.
:func:`header_deadline_protocol` gives uvicorn an HTTP protocol (its h11 one) that closes a
connection whose next request's headers are not complete within ``seconds`` of the connection
opening or of the previous response. Requests in progress and WebSocket upgrades are left alone.
"""

from __future__ import annotations

from typing import Any


def header_deadline_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol class with a header deadline of ``seconds``."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadlineProtocol(H11Protocol):
        header_timeout = seconds

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._requests_seen = 0
            self._upgraded = False
            self._header_timer: Any = None
            self._arm()

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._check,
                                                      self._requests_seen)

        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:  # a request's headers arrived
                self._requests_seen += 1

        def handle_websocket_upgrade(self, event: Any) -> None:
            self._upgraded = True
            self._cancel()
            super().handle_websocket_upgrade(event)

        def _check(self, seen: int) -> None:
            self._header_timer = None
            if self._upgraded or self.transport.is_closing():
                return
            idle = self.cycle is None or self.cycle.response_complete
            if idle and self._requests_seen == seen:
                self.logger.info("closing %s: request headers incomplete after %g s",
                                 "%s:%d" % self.client if self.client else "a client",
                                 self.header_timeout)
                self.transport.close()
            else:
                self._arm()

        def _cancel(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            super().connection_lost(exc)

    return HeaderDeadlineProtocol
