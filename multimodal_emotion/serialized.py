"""One call at a time per encoder, so the same clip gives the same answer at any concurrency.

Why: with ``MER_WORKERS>1`` two analyses run at once, and some engines inside the encoders keep
state between calls that is not safe to share -- OpenCV's ``CascadeClassifier`` (the face
detector) gave face probabilities up to 0.048 apart for the same clip, and a Hugging Face fast
tokenizer raises "Already borrowed" when two threads use it. A lock per encoder keeps each one
sequential while different encoders (audio of one request, face of another) still overlap.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any


class Serialized:
    """Wraps an encoder: its methods run under ``lock``; every other attribute (``dim``,
    ``model``, ...) is the encoder's own. Several wrappers may share one lock (the audio encoder
    and the transcriber when they share one Whisper)."""

    def __init__(self, inner: Any, lock: threading.Lock | None = None) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_lock", lock or threading.RLock())

    @property
    def wrapped(self) -> Any:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.ismethod(attr):
            return attr
        lock = self._lock

        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return attr(*args, **kwargs)

        locked.__name__ = name
        locked.__doc__ = attr.__doc__
        return locked

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)


def serialized(inner: Any, lock: threading.Lock | None = None) -> Any:
    """``inner`` behind a lock (an already wrapped encoder is returned as it is)."""
    return inner if isinstance(inner, Serialized) else Serialized(inner, lock)

