"""Groups of turns analyzed on a few threads at once, their answers taken in order.

Why: a group of turns passes through three engines one after the other (the voice expert's
Whisper layers in torch, tiny.en in CTranslate2, the sentence encoder), and each engine serves
one caller at a time (the recognizer's ``serialized`` locks). While one group is in tiny.en, the
next can be in the voice expert: on 2 cores, two groups in flight took 10 % off the wall time
of 64 bench-call turns (23.6 -> 21.2 s float32, 21.3 -> 19.1 s ``--fast``) and 9 % off the
60-minute bench call, with the same labels, transcripts and probabilities
(``bench/call_batching.py --workers 1 2``, ``bench/call_scale.py --workers``). Only ``workers``
groups are ever in flight, so memory holds that many groups, not the call.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class InOrder(Generic[Item, Result]):
    """``run(item)`` on up to ``workers`` threads; ``take(item, result)`` called in the order
    the items were given, always on the submitting thread (so progress and result lists need
    no lock). ``workers=1`` runs each item at once, on the caller's thread.

    Use as a context manager: leaving it (normally or by an exception, such as a stopped job)
    cancels what has not started and waits for what has, so no thread is left working."""

    def __init__(self, run: Callable[[Item], Result], take: Callable[[Item, Result], None],
                 workers: int) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a whole number of at least 1, not {workers!r}")
        self._run, self._take, self.workers = run, take, workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="mer-turns") \
            if workers > 1 else None
        self._flight: deque[tuple[Item, Future[Result]]] = deque()

    def submit(self, item: Item) -> None:
        """Start ``item``; when ``workers`` are busy, first wait for the oldest and take it."""
        if self._pool is None:
            self._take(item, self._run(item))
            return
        while len(self._flight) >= self.workers:
            self._take_oldest()
        self._flight.append((item, self._pool.submit(self._run, item)))

    def drain(self) -> None:
        """Wait for every item in flight and take them in order."""
        while self._flight:
            self._take_oldest()

    def _take_oldest(self) -> None:
        item, future = self._flight.popleft()
        self._take(item, future.result())

    def __enter__(self) -> "InOrder[Item, Result]":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._flight.clear()
