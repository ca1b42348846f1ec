"""Real-time analysis: media pushed as it is captured, sliding windows analyzed as soon as they
are complete, one result per window.

A live source (a microphone and a camera, a WebSocket, a file replayed at its own pace) pushes
audio pieces and video frames with their capture times; :class:`StreamEngine` keeps only the
media the next windows need (a fixed-capacity audio buffer and a bounded deque of frames), cuts a
window of ``window_s`` seconds every ``hop_s`` seconds once every track has reached its end, and
hands it to one worker thread that runs the recognizer (``analyze_segment``, or any
``Clip -> Prediction`` function). Each result carries the window's ``start``/``end`` in the
source's clock, the answer, and ``lag_ms``: wall time from the push that completed the window to
its result, i.e. what a viewer waits for beyond the window itself.

Why drop, and in that order: a live answer that is ten seconds late is worth nothing, so the
engine never queues without bound. When a completed window finds the worker still busy (the
analysis is slower than the hop), that window and any waiting one lose their video frames first
(the face is the cheaper modality to lose: the voice and the words carry the conversation, and
a window without frames is analyzed faster), and when ``max_pending`` windows already wait
(default 1), the oldest waiting ones are skipped: the newest window overlaps them by
``window_s - hop_s`` anyway, and it is the freshest answer a viewer wants. Every result says what was
dropped on its way (``dropped``: frames taken from this window, windows skipped since the
previous result); :attr:`StreamEngine.stats` keeps the totals. A replay that wants every window
(``mer stream --speed 0``) passes ``block=True``: pushes then wait for the worker instead.

Nothing here knows about files, sockets or devices: :mod:`media_stream` (files), the CLI
(``mer stream``, microphone) and the server (``/v1/stream``) are the sources.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import InputError, MerError
from .media import SAMPLE_RATE
from .media_stream import MediaChunk
from .types import Clip, Prediction

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S = 4.0
DEFAULT_HOP_S = 1.0
DEFAULT_FPS = 4.0
GAP_FILL_S = 1.0  # audio gaps up to this long are filled with silence; longer ones restart


@dataclass
class StreamResult:
    """One analyzed window. ``start``/``end``: seconds in the source's clock; ``lag_ms``: wall
    time from the push that completed the window to this result; ``analysis_ms``: the part of
    it spent analyzing; ``dropped``: ``{"frames": video frames taken from this window,
    "windows": windows skipped since the previous result}``; ``error``: why this window has no
    answer (the stream goes on)."""

    index: int
    start: float
    end: float
    prediction: Prediction | None
    lag_ms: float
    analysis_ms: float
    dropped: dict[str, int]
    frames: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        p = self.prediction
        d: dict[str, Any] = {
            "index": self.index, "start": round(self.start, 3), "end": round(self.end, 3),
            "label": p.label if p else None,
            "probabilities": p.probabilities if p else None,
            "confidence": None if p is None or p.confidence is None else round(p.confidence, 5),
            "modalities": {m: v.to_dict() for m, v in p.modalities.items()} if p else {},
            "lag_ms": round(self.lag_ms, 1), "analysis_ms": round(self.analysis_ms, 1),
            "frames": self.frames, "dropped": dict(self.dropped),
        }
        if p is not None and p.explanation is not None:
            d["explanation"] = p.explanation.to_dict()
        if p is not None and p.reason:
            d["reason"] = p.reason
        if self.error:
            d["error"] = self.error
        return d


@dataclass
class StreamStats:
    """Totals since the stream started (what the bench and the server report)."""

    windows: int = 0  # windows cut
    analyzed: int = 0
    skipped_windows: int = 0
    dropped_frames: int = 0  # frames never analyzed (stripped, or in a skipped window)
    errors: int = 0
    frames_in: int = 0  # frames pushed (before sampling at ``fps``)
    audio_s: float = 0.0  # seconds of audio pushed

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


@dataclass
class _Window:
    index: int
    start: float
    end: float
    audio: np.ndarray | None
    times: list[float]
    frames: list[np.ndarray]
    ready_wall: float
    dropped_frames: int = 0  # frames never analyzed (stripped, or in a skipped window)

    def strip_video(self) -> int:
        n = len(self.frames)
        self.frames, self.times = [], []
        self.dropped_frames += n
        return n


class _AudioBuffer:
    """A fixed-capacity float32 buffer of the most recent audio: ``start`` is the time of its
    first sample. Appending past the capacity forgets the oldest samples, so it never grows."""

    def __init__(self, capacity_s: float) -> None:
        self.data = np.zeros(int(math.ceil(capacity_s * SAMPLE_RATE)), np.float32)
        self.n = 0
        self.start: float | None = None

    @property
    def end(self) -> float:
        return (self.start or 0.0) + self.n / SAMPLE_RATE

    def append(self, pcm: np.ndarray) -> None:
        cap = len(self.data)
        if len(pcm) >= cap:
            self.start = self.end + (len(pcm) - cap) / SAMPLE_RATE
            self.data[:] = pcm[-cap:]
            self.n = cap
            return
        overflow = self.n + len(pcm) - cap
        if overflow > 0:
            self.drop(overflow)
        self.data[self.n:self.n + len(pcm)] = pcm
        self.n += len(pcm)

    def drop(self, k: int) -> None:
        k = min(k, self.n)
        self.data[:self.n - k] = self.data[k:self.n]
        self.n -= k
        self.start = (self.start or 0.0) + k / SAMPLE_RATE

    def drop_before(self, t: float) -> None:
        if self.start is not None and t > self.start:
            self.drop(int(round((t - self.start) * SAMPLE_RATE)))

    def take(self, a: float, b: float) -> np.ndarray:
        """A copy of the samples in ``[a, b)`` (what is held of them)."""
        s = self.start or 0.0
        i = max(0, int(round((a - s) * SAMPLE_RATE)))
        j = min(self.n, max(i, int(round((b - s) * SAMPLE_RATE))))
        return self.data[i:j].copy()


class StreamEngine:
    """Push media, get one :class:`StreamResult` per window through ``on_result`` (called from
    the worker thread).

    ``analyze``: ``Clip -> Prediction`` (``recognizer.analyze_segment``); ``window_s``/``hop_s``:
    window length and the step between window starts; ``fps``: video frames kept per second
    (extra frames are not stored); ``max_pending``: windows allowed to wait for the worker
    before the oldest is skipped; ``block``: wait for the worker instead of dropping anything;
    ``grace_s``: how long a window waits for a lagging track (video behind audio) before it is
    cut without that track's last part; ``origin``: time of the first window's start (default:
    the first media pushed)."""

    def __init__(self, analyze: Callable[[Clip], Prediction],
                 on_result: Callable[[StreamResult], None] | None = None, *,
                 window_s: float = DEFAULT_WINDOW_S, hop_s: float = DEFAULT_HOP_S,
                 fps: float = DEFAULT_FPS, max_pending: int = 1, block: bool = False,
                 grace_s: float = 0.5, origin: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for name, value in (("window_s", window_s), ("hop_s", hop_s), ("fps", fps)):
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be a positive number, not {value}")
        if not (math.isfinite(grace_s) and grace_s >= 0):
            raise InputError(f"grace_s must be >= 0, not {grace_s}")
        if hop_s > window_s:
            raise InputError(f"hop ({hop_s:g} s) must not be longer than the window "
                             f"({window_s:g} s): media between windows would never be analyzed")
        if max_pending < 1:
            raise InputError("max_pending must be >= 1")
        self.analyze, self.on_result = analyze, on_result
        self.window_s, self.hop_s, self.fps = window_s, hop_s, fps
        self.max_pending, self.block, self.grace_s = max_pending, block, grace_s
        self.clock = clock
        self.stats = StreamStats()
        # what the next windows need: one window, a hop being filled, the grace for a lagging
        # track, and a second of slack for the piece being appended
        self._audio = _AudioBuffer(window_s + hop_s + grace_s + 1.0)
        self._frames: deque[tuple[float, np.ndarray]] = deque(
            maxlen=int(math.ceil((window_s + hop_s + grace_s) * fps)) + 2)
        self._next_frame_t: float | None = None
        self._audio_seen = self._video_seen = False
        self._video_end = -math.inf
        self._origin = origin
        self._next_start: float | None = origin
        self._last_end: float | None = None  # end of the last window cut
        self._index = 0
        self._hops = 0  # windows start at origin + hops * hop_s
        self._pending: deque[_Window] = deque()
        self._skipped_since_result = 0
        self._busy = False
        self._closed = False
        self._lock = threading.Lock()
        # sources may push audio and frames from two capture threads; the cutting is not
        # meant to run twice at once
        self._push_lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._worker = threading.Thread(target=self._run, name="mer-stream", daemon=True)
        self._worker.start()

    # -- sources call these ------------------------------------------------------------------
    def push_audio(self, pcm: np.ndarray, t: float | None = None) -> None:
        """Audio captured from time ``t`` (seconds; ``None``: right after the previous piece):
        16 kHz mono, float32 in [-1, 1] or int16. Overlaps with audio already pushed are cut;
        a gap up to a second is filled with silence, a longer one restarts the windows after
        it."""
        with self._push_lock:
            self._push_audio(pcm, t)

    def push_frame(self, rgb: np.ndarray, t: float) -> None:
        """One video frame (``[H, W, 3]`` uint8 RGB) captured at ``t`` seconds. Frames closer
        than ``1 / fps`` to the previous kept one are counted and not stored."""
        with self._push_lock:
            self._push_frame(rgb, t)

    def _push_audio(self, pcm: np.ndarray, t: float | None = None) -> None:
        pcm = _as_float_audio(pcm)
        if not pcm.size:
            return
        self._check_open()
        buf = self._audio
        if t is None:
            t = buf.end if self._audio_seen else (self._origin or 0.0)
        if not math.isfinite(t):
            raise InputError(f"capture time must be a finite number, not {t}")
        if self._origin is None:
            self._origin = self._next_start = t
        if t < self._origin:  # before the stream's start: not part of any window
            pcm = pcm[int(round((self._origin - t) * SAMPLE_RATE)):]
            t = self._origin
        if not self._audio_seen:
            buf.start = t
            self._audio_seen = True
        else:
            gap = t - buf.end
            if gap < -1.0 / SAMPLE_RATE:  # already have part of it
                pcm = pcm[int(round(-gap * SAMPLE_RATE)):]
            elif gap > GAP_FILL_S:  # the capture stopped: start afresh after the gap
                self._restart_at(t)
                buf.n, buf.start = 0, t
            elif gap > 1.0 / SAMPLE_RATE:
                self._append_audio(np.zeros(int(round(gap * SAMPLE_RATE)), np.float32))
        self.stats.audio_s += len(pcm) / SAMPLE_RATE
        self._append_audio(pcm)

    def _push_frame(self, rgb: np.ndarray, t: float) -> None:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputError(f"a frame must be an [H, W, 3] uint8 RGB array, not "
                             f"{rgb.dtype} {tuple(rgb.shape)}")
        if not math.isfinite(t):
            raise InputError(f"capture time must be a finite number, not {t}")
        self._check_open()
        if self._origin is None:
            self._origin = self._next_start = t
        self.stats.frames_in += 1
        self._video_seen = True
        # a frame stands for the sampling period after it: the video has reached t + 1/fps
        self._video_end = max(self._video_end, t + 1.0 / self.fps)
        if t >= self._origin and (self._next_frame_t is None or t >= self._next_frame_t - 1e-6):
            self._frames.append((t, rgb))
            step = 1.0 / self.fps
            self._next_frame_t = max((self._next_frame_t or t) + step, t + step / 2)
        self._cut()

    def push(self, chunk: MediaChunk) -> None:
        """A decoded piece of a file (:func:`media_stream.iter_chunks`): its audio from
        ``chunk.start`` and its frames at their times, interleaved in time order as a live
        capture would deliver them (so no window is cut before its frames are in)."""
        frames = chunk.frames if chunk.frames is not None else ()
        times = chunk.frame_times if chunk.frames is not None else ()
        j = 0
        if chunk.audio is not None and chunk.audio.size:
            step = max(1, int(self.hop_s * SAMPLE_RATE / 2))
            for i in range(0, len(chunk.audio), step):
                piece_end = chunk.start + (i + step) / SAMPLE_RATE
                while j < len(frames) and times[j] < piece_end:
                    self.push_frame(frames[j], float(times[j]))
                    j += 1
                self.push_audio(chunk.audio[i:i + step], chunk.start + i / SAMPLE_RATE)
        for k in range(j, len(frames)):
            self.push_frame(frames[k], float(times[k]))

    def close(self, drain: bool = True, timeout: float | None = None) -> StreamStats:
        """End of the stream: cut a last window over the media not yet covered (the whole
        stream when it was shorter than one window), wait for the worker to finish what waits
        (``drain``; otherwise what waits is skipped), and stop it."""
        with self._lock:
            if self._closed:
                return self.stats
        with self._push_lock:
            self._cut(final=True)
        with self._cond:
            self._closed = True
            if not drain:
                self.stats.skipped_windows += len(self._pending)
                self._pending.clear()
            self._cond.notify_all()
        self._worker.join(timeout)
        return self.stats

    @property
    def pending(self) -> int:
        """Windows waiting for the worker (at most ``max_pending``)."""
        with self._lock:
            return len(self._pending)

    def held_bytes(self) -> int:
        """Media held for the next windows and the waiting ones: bounded by construction."""
        with self._lock:
            waiting = sum((w.audio.nbytes if w.audio is not None else 0)
                          + sum(f.nbytes for f in w.frames) for w in self._pending)
        return self._audio.data.nbytes + sum(f.nbytes for _, f in list(self._frames)) + waiting

    # -- cutting -----------------------------------------------------------------------------
    def _append_audio(self, pcm: np.ndarray) -> None:
        step = max(1, int(self.hop_s * SAMPLE_RATE / 2))  # cut between pieces: the buffer
        for i in range(0, len(pcm), step):                # never holds more than it needs
            self._audio.append(pcm[i:i + step])
            self._cut()

    def _restart_at(self, t: float) -> None:
        """After a long capture gap: windows resume on the hop grid from ``t``."""
        self._hops = max(self._hops, math.ceil((t - self._origin) / self.hop_s - 1e-9))
        self._next_start = self._origin + self._hops * self.hop_s
        while self._frames and self._frames[0][0] < self._next_start:
            self._frames.popleft()

    def _track_ends(self) -> list[float]:
        ends = []
        if self._audio_seen:
            ends.append(self._audio.end)
        if self._video_seen:
            ends.append(self._video_end)
        return ends

    def _cut(self, final: bool = False) -> None:
        while self._next_start is not None:
            ends = self._track_ends()
            if not ends:
                return
            a = self._next_start
            b = a + self.window_s
            if not (min(ends) >= b - 1e-9 or max(ends) >= b + self.grace_s):
                if not final:
                    return
                # the audio's end when there is audio (a frame's end is only estimated)
                media_end = self._audio.end if self._audio_seen else max(ends)
                if self._last_end is not None and media_end <= self._last_end + 1e-3 \
                        or media_end - a <= 1e-3:
                    return  # covered already
                # the tail: from the next window's start (what the buffers still hold) to the
                # end, once; a sliver under a quarter hop past the last window is left out
                b = media_end
                if self._last_end is not None and b - self._last_end < self.hop_s / 4:
                    return
                self._emit(a, b)
                return
            self._emit(a, b)
            self._hops += 1  # counted, not summed: no drift after an hour of hops
            self._next_start = self._origin + self._hops * self.hop_s
            self._audio.drop_before(self._next_start)
            while self._frames and self._frames[0][0] < self._next_start:
                self._frames.popleft()

    def _emit(self, a: float, b: float) -> None:
        audio = self._audio.take(a, b) if self._audio_seen else None
        kept = [(t, f) for t, f in self._frames if a <= t < b]
        win = _Window(self._index, a, b, audio, [t - a for t, _ in kept], [f for _, f in kept],
                      self.clock())
        self._index += 1
        self._last_end = b
        self.stats.windows += 1
        self._submit(win)

    def _submit(self, win: _Window) -> None:
        with self._cond:
            if self.block:
                while len(self._pending) >= self.max_pending and not self._closed:
                    self._cond.wait()
            elif self._busy or self._pending:  # this window will wait: video goes first ...
                for w in (*self._pending, win):
                    self.stats.dropped_frames += w.strip_video()
                while len(self._pending) >= self.max_pending:  # ... then whole windows
                    self._pending.popleft()
                    self._skipped_since_result += 1
                    self.stats.skipped_windows += 1
            self._pending.append(win)
            self._cond.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise InputError("the stream is closed")

    # -- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                win = self._pending.popleft()
                skipped, self._skipped_since_result = self._skipped_since_result, 0
                self._busy = True
                self._cond.notify_all()
            result = self._analyze(win, skipped)
            with self._cond:
                self._busy = False
            if self.on_result is not None:
                try:
                    self.on_result(result)
                except Exception:  # noqa: BLE001 -- a consumer's bug must not stop the stream
                    log.exception("on_result failed")

    def _analyze(self, win: _Window, skipped: int) -> StreamResult:
        frames = np.stack(win.frames) if win.frames else None
        times = np.asarray(win.times, np.float64) if win.frames else None
        clip = Clip(win.audio if win.audio is not None and win.audio.size else None,
                    SAMPLE_RATE, frames, times, self.fps, win.end - win.start, "<stream>")
        t0 = self.clock()
        pred, error = None, None
        try:
            pred = self.analyze(clip)
        except MerError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 -- one bad window must not end the stream
            log.exception("window %d failed", win.index)
            error = f"{type(exc).__name__}: {exc}"
        done = self.clock()
        self.stats.analyzed += 1
        self.stats.errors += error is not None
        return StreamResult(win.index, win.start, win.end, pred, (done - win.ready_wall) * 1000,
                            (done - t0) * 1000,
                            {"frames": win.dropped_frames, "windows": skipped},
                            0 if frames is None else len(frames), error)


def _as_float_audio(pcm: np.ndarray) -> np.ndarray:
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        raise InputError(f"audio must be mono (a 1-D array), not shape {pcm.shape}")
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    if pcm.dtype.kind != "f":
        raise InputError(f"audio must be float32 in [-1, 1] or int16, not {pcm.dtype}")
    return pcm.astype(np.float32, copy=False)


def recognizer_engine(rec: Any, on_result: Callable[[StreamResult], None] | None = None,
                      fusion: str | None = None, **kwargs: Any) -> StreamEngine:
    """A :class:`StreamEngine` over ``rec.analyze_segment`` (the recognizer's sampling rate
    unless ``fps`` is given)."""
    kwargs.setdefault("fps", getattr(rec, "fps", DEFAULT_FPS))
    return StreamEngine(lambda clip: rec.analyze_segment(clip, fusion=fusion), on_result,
                        **kwargs)


def warm_up(analyze: Callable[[Clip], Prediction]) -> float:
    """One throwaway analysis (a second of faint noise and a grey frame) before a live stream
    starts, so the first window does not pay for lazy loading (language ID waits for its model
    at the first clip): seconds it took."""
    t = time.perf_counter()
    noise = np.random.default_rng(0).normal(0, 0.01, SAMPLE_RATE).astype(np.float32)
    analyze(Clip(noise, SAMPLE_RATE, np.full((1, 64, 64, 3), 128, np.uint8), np.zeros(1),
                 1.0, 1.0, "<warm-up>"))
    return time.perf_counter() - t


@dataclass
class Collector:
    """Results kept in order, for tests and short replays (a live consumer uses a callback)."""

    results: list[StreamResult] = field(default_factory=list)

    def __call__(self, result: StreamResult) -> None:
        self.results.append(result)
