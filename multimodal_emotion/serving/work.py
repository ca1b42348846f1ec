"""A bounded work queue in front of a small inference thread pool.

Why bounded: an analysis costs ~0.3-1 s of two CPU cores per 5 s of clip, so an unbounded queue
turns a burst into minutes of latency for everyone and unbounded temp files on disk. Requests
beyond ``workers + queue_size`` are refused at once (429) instead. Why threads: inference must
run off the event loop so ``/healthz`` and uploads keep flowing while a long clip is analyzed.
Why few: the recognizer is not guaranteed thread-safe, so one worker is the default.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class WorkQueue:
    """At most ``workers`` jobs run and ``queue_size`` wait; :meth:`admit` says if one more fits."""

    def __init__(self, workers: int = 1, queue_size: int = 8) -> None:
        self.workers, self.queue_size = workers, queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mer-infer")
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0

    @property
    def capacity(self) -> int:
        return self.workers + self.queue_size

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"running": self._running, "waiting": self._admitted - self._running,
                    "workers": self.workers, "queue_size": self.queue_size}

    def full(self) -> bool:
        """No slot free right now (a cheap look before reading a body that would be refused)."""
        with self._lock:
            return self._admitted >= self.capacity

    def admit(self) -> "Ticket | None":
        """A ticket for one job, or ``None`` when the queue is full. Take it only once the
        request's body is in: a slot held while a body trickles in lets nine slow clients lock
        everyone else out (look with :meth:`full` first, so a refused request costs no body)."""
        with self._lock:
            if self._admitted >= self.capacity:
                return None
            self._admitted += 1
        return Ticket(self)

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Ticket:
    """One admitted job. Its slot is freed when the job finishes in the pool (even if the request
    that asked for it went away), or by :meth:`close` when it was never submitted."""

    def __init__(self, queue: WorkQueue) -> None:
        self._queue = queue
        self._state = "admitted"  # -> "submitted" | "closed"

    @property
    def submitted(self) -> bool:
        """True once the job is in the pool: from then on the pool owns its cleanup."""
        return self._state == "submitted"

    async def run(self, fn: Callable[..., T], *args: Any,
                  cleanup: Callable[[], None] | None = None) -> T:
        """Run ``fn(*args)`` on the pool; ``cleanup`` runs when the job is over, whether it
        finished, failed, or was cancelled before it started."""
        if self._state != "admitted":
            raise RuntimeError("a ticket runs one job")
        self._state = "submitted"
        queue = self._queue

        def job() -> T:
            with queue._lock:
                queue._running += 1
            try:
                return fn(*args)
            finally:
                with queue._lock:
                    queue._running -= 1

        def done(_: Future) -> None:
            try:
                if cleanup is not None:
                    cleanup()
            finally:
                queue._release()

        try:
            future = queue._executor.submit(job)
        except RuntimeError:  # pool shut down
            self._state = "admitted"
            raise
        future.add_done_callback(done)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Free the slot of a ticket whose job never ran (upload failed, bad field, ...)."""
        if self._state == "admitted":
            self._state = "closed"
            self._queue._release()


class Slots:
    """A plain counter of things in progress with a ceiling (uploads whose bodies are arriving):
    :meth:`take` says whether one more fits, :meth:`give` frees one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self.used = 0

    def take(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def give(self) -> None:
        with self._lock:
            self.used -= 1
