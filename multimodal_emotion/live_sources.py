"""Where live media comes from: a recording replayed at its own pace, or a microphone and a
camera. Both push into a :class:`~multimodal_emotion.streaming.StreamEngine`; the engine does
not know which.

A replay pushes each decoded piece when its last sample would have been captured (``speed`` 1:
real time; 4: four times faster; 0: as fast as the engine takes it), so ``mer stream FILE``
measures what a live source would see. Devices are optional imports: ``sounddevice`` for the
microphone (PortAudio), OpenCV's ``VideoCapture`` for the camera; a machine with neither gets a
:class:`~multimodal_emotion.errors.DeviceError` that says what is missing.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from typing import Callable, Iterable, Iterator

import numpy as np

from .errors import DeviceError, InputError
from .media import SAMPLE_RATE
from .media_stream import MediaChunk, iter_chunks
from .streaming import StreamEngine

REPLAY_CHUNK_S = 0.25  # a live capture delivers small pieces; so does the replay


def file_chunks(path: str, fps: float, max_duration: float | None = None,
                chunk_s: float = REPLAY_CHUNK_S) -> Iterator[MediaChunk]:
    """A file decoded in ``chunk_s`` pieces (flat memory, whatever its length)."""
    kwargs = {} if max_duration is None else {"max_duration": max_duration}
    return iter_chunks(path, chunk_s=chunk_s, fps=fps, **kwargs)


def replay(chunks: Iterable[MediaChunk], engine: StreamEngine, speed: float = 1.0,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep,
           stop: threading.Event | None = None) -> list[str]:
    """Push ``chunks`` into ``engine`` at ``speed`` times real time (0: no waiting) and return
    the decoder's warnings. Does not close the engine."""
    if not (math.isfinite(speed) and speed >= 0):
        raise InputError(f"speed must be >= 0 (0: as fast as possible), not {speed}")
    warnings: list[str] = []
    t0 = clock()
    first: float | None = None
    for chunk in chunks:
        if stop is not None and stop.is_set():
            break
        warnings.extend(chunk.warnings)
        if first is None:
            first = chunk.start
        if speed > 0:  # the piece is complete once its end has been "captured"
            wait = t0 + (chunk.end - first) / speed - clock()
            if wait > 0:
                sleep(wait)
        engine.push(chunk)
    return warnings


def open_devices(camera: int | None = 0, microphone: bool = True) -> "Devices":
    """The default microphone (16 kHz mono) and camera ``camera``, whichever this machine has;
    :class:`DeviceError` naming what is missing when it has neither."""
    problems: list[str] = []
    mic = _open_microphone(problems) if microphone else None
    cam = _open_camera(camera, problems) if camera is not None else None
    if mic is None and cam is None:
        raise DeviceError("no microphone or camera to stream from: " + "; ".join(problems)
                          + ". Replay a recording instead: mer stream FILE")
    return Devices(mic, cam, problems)


def _open_microphone(problems: list[str]):
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:  # OSError: the package is there, PortAudio is not
        problems.append(f"microphone: the sounddevice package is not usable ({exc}); "
                        "pip install sounddevice")
        return None
    try:
        sd.query_devices(kind="input")
        sd.check_input_settings(samplerate=SAMPLE_RATE, channels=1, dtype="float32")
    except Exception as exc:  # noqa: BLE001 -- PortAudio raises its own kinds
        problems.append(f"microphone: none usable ({exc})")
        return None
    return sd


def _open_camera(index: int, problems: list[str]):
    try:
        import cv2
    except ImportError as exc:
        problems.append(f"camera: OpenCV is not installed ({exc})")
        return None
    try:  # OpenCV warns on stderr for every backend it tries; the message below says it once
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass
    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        cap.release()
        problems.append(f"camera: no camera at index {index}")
        return None
    return cap


class Devices:
    """An open microphone and/or camera; :meth:`run` streams them into an engine."""

    def __init__(self, sd, cap, problems: list[str]) -> None:
        self.sd, self.cap, self.problems = sd, cap, problems

    def describe(self) -> str:
        have = [n for n, d in (("microphone", self.sd), ("camera", self.cap)) if d is not None]
        return " and ".join(have)

    def run(self, engine: StreamEngine, seconds: float | None = None,
            stop: threading.Event | None = None) -> None:
        """Capture until ``seconds`` have passed or ``stop`` is set (Ctrl-C ends it too)."""
        stop = stop or threading.Event()
        t0 = time.monotonic()
        pieces: queue.Queue = queue.Queue(maxsize=64)  # ~6 s of 0.1 s pieces, then dropped
        threads = []
        if self.cap is not None:
            threads.append(threading.Thread(target=self._camera, args=(engine, t0, stop),
                                            daemon=True))
        for th in threads:
            th.start()
        stream = None
        if self.sd is not None:
            def callback(indata, frames, time_info, status) -> None:  # PortAudio's thread
                try:
                    pieces.put_nowait((indata[:, 0].copy(), time.monotonic() - t0
                                       - frames / SAMPLE_RATE))
                except queue.Full:
                    pass
            stream = self.sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32",
                                         blocksize=SAMPLE_RATE // 10, callback=callback)
            stream.start()
        try:
            while not stop.is_set() and (seconds is None or time.monotonic() - t0 < seconds):
                try:
                    pcm, t = pieces.get(timeout=0.1)
                except queue.Empty:
                    continue
                engine.push_audio(pcm, max(0.0, t))
        finally:
            stop.set()
            if stream is not None:
                stream.stop()
                stream.close()
            for th in threads:
                th.join(timeout=2)
            if self.cap is not None:
                self.cap.release()

    def _camera(self, engine: StreamEngine, t0: float, stop: threading.Event) -> None:
        import cv2

        while not stop.is_set():
            ok, bgr = self.cap.read()
            if not ok:
                time.sleep(0.05)
                continue
            engine.push_frame(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)),
                              time.monotonic() - t0)
