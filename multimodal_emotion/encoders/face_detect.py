"""Face detectors by name: every face in a frame, with its eyes where the detector finds them.

Why BlazeFace is the default: OpenCV's Haar cascade (kept as ``haar``) only knows upright
frontal faces and misses turned heads and dim or low-contrast frames, while MediaPipe's
BlazeFace models ship inside the ``mediapipe`` wheel (nothing downloaded at run time), take a few
milliseconds a frame on one CPU core, and return six keypoints, two of them the eyes that
:mod:`.face_align` levels the face by. ``bench/face_detect.py`` measures the share of real video
frames with a face found and the milliseconds per frame of each detector here.

``mediapipe==0.10.21`` is the last release with the bundled ``solutions`` models; it declares
``numpy<2`` and ``protobuf<5`` but its compiled graph runs with numpy 2 and protobuf 7, so it is
installed with ``--no-deps`` (Makefile) beside the two small packages it really imports
(``attrs``, ``absl-py``).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import threading
import types
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import numpy as np

from ..errors import ModelError

Point = tuple[float, float]


@dataclass(frozen=True)
class Face:
    """One detected face in frame pixels: ``box`` = ``(x, y, w, h)``, a detector ``score`` and
    ``eyes`` = (the eye on the image's left, the eye on the image's right) or ``None``."""

    box: tuple[float, float, float, float]
    score: float = 1.0
    eyes: tuple[Point, Point] | None = None

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def center(self) -> Point:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2


class Detector(Protocol):
    name: str

    def detect(self, frame: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 ``[H, W, 3]`` frame."""
        ...


DETECTORS: dict[str, Callable[..., Detector]] = {}


def register_detector(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        DETECTORS[name] = cls
        return cls

    return deco


def create_detector(name: str, **kwargs: object) -> Detector:
    """Build the detector registered as ``name`` (``blazeface``, ``blazeface-full``, ``haar``)."""
    if name not in DETECTORS:
        raise ModelError(f"unknown face detector {name!r}; choose from {sorted(DETECTORS)}")
    return DETECTORS[name](**kwargs)


@register_detector("haar")
class HaarDetector:
    """OpenCV's frontal-face Haar cascade (no eyes). Frames are downscaled so their longer side is
    at most ``max_side`` (a 480x360 frame goes to 320x240: ~25 ms instead of ~50 ms, same boxes);
    ``min_size`` is in full-resolution pixels."""

    name = "haar"

    def __init__(self, scale_factor: float = 1.2, min_neighbors: int = 5, min_size: int = 48,
                 max_side: int = 320) -> None:
        import cv2

        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise ModelError(f"cannot load Haar cascade {path}")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.min_size, self.max_side = min_size, max_side

    def detect(self, frame: np.ndarray) -> list[Face]:
        import cv2

        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        scale = min(1.0, self.max_side / max(gray.shape))
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) \
            if scale < 1.0 else gray
        min_px = max(16, int(self.min_size * scale))
        boxes = self.cascade.detectMultiScale(small, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors,
                                              minSize=(min_px, min_px))
        return [Face(tuple(float(v) / scale for v in b)) for b in boxes]  # type: ignore[arg-type]


def _protobuf_compat() -> None:
    """mediapipe 0.10.21's compiled module calls ``MessageFactory.GetPrototype``, which protobuf 5
    removed (its replacement is ``message_factory.GetMessageClass``); without it the import prints
    an AttributeError (and falls back to slower result conversion). Put the old name back."""
    from google.protobuf import message_factory

    if not hasattr(message_factory.MessageFactory, "GetPrototype"):
        message_factory.MessageFactory.GetPrototype = (  # type: ignore[attr-defined]
            lambda self, descriptor: message_factory.GetMessageClass(descriptor))


class _Deferred(types.ModuleType):
    """Stands in for a module that has not been imported: the first attribute anyone reads
    imports the real module (which then sits in ``sys.modules``) and answers from it."""

    def __getattr__(self, attr: str) -> object:
        return getattr(importlib.import_module(self.__name__), attr)


@contextmanager
def _pyplot_deferred() -> Iterator[None]:
    """Import mediapipe without importing ``matplotlib.pyplot``.

    Why: ``mediapipe.python.solutions`` imports its drawing helpers, which import pyplot at
    the top: about 0.6 s of a cold start for plotting functions this package never calls.
    While the block runs, ``sys.modules`` holds a :class:`_Deferred` pyplot; afterwards it is
    removed, so any later ``import matplotlib.pyplot`` gets the real module, and mediapipe's
    drawing helpers, should anyone call them, import it at their first use.
    """
    name = "matplotlib.pyplot"
    if name in sys.modules:
        yield
        return
    stand_in = _Deferred(name)
    sys.modules[name] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        parent = sys.modules.get("matplotlib")
        if parent is not None and getattr(parent, "pyplot", None) is stand_in:
            delattr(parent, "pyplot")


#: What MediaPipe's graphs print to file descriptor 2 as they start, on every run of the program:
#: TF Lite's XNNPACK notice, absl's "before InitializeLog" warning and a feedback-tensor warning
#: per graph. None of it concerns the user, and no environment variable turns it off in 0.10.21.
_START_UP_NOISE = (
    "Created TensorFlow Lite XNNPACK delegate",
    "All log messages before absl::InitializeLog()",
    "inference_feedback_manager.cc",
)
_stderr_lock = threading.Lock()


@contextmanager
def _start_up_noise_dropped() -> Iterator[None]:
    """Run the block with file descriptor 2 sent to a temporary file, then write back to stderr
    every line of it but the known start-up notices (:data:`_START_UP_NOISE`).

    Why at the descriptor: the notices come from C++ (absl, TF Lite) on the graph's own threads,
    below ``sys.stderr``. Anything else written meanwhile, by this thread or another, is kept,
    only delayed to the end of the block; where the descriptor cannot be redirected the block
    simply runs.
    """
    with _stderr_lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield
            return
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError, AttributeError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                text = captured.read().decode("utf-8", errors="replace")
                kept = [line for line in text.splitlines(keepends=True)
                        if not any(noise in line for noise in _START_UP_NOISE)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()


@register_detector("blazeface")
class BlazeFaceDetector:
    """MediaPipe BlazeFace. ``model`` ``short`` (128x128 input, faces within ~2 m: webcams,
    face crops) or ``full`` (192x192, faces up to ~5 m: a small face in a wide shot). ``auto``
    (the default) runs full range, falls back to short range on frames where it finds nothing
    (it is steadier on strongly tilted close faces), then to full range on overlapping square
    tiles the size of the frame's shorter side: BlazeFace squeezes the whole frame into its
    input, so a 45-pixel face in a 640x360 frame shrinks to ~13 pixels and is lost, while a
    tile keeps nearly twice that. Full range comes first because it returns every face in a
    two-shot, which the tracker needs; short range often returns only the closest one.

    ``min_confidence`` 0.6 rather than MediaPipe's 0.5: short range scores a coffee cup (the
    test suite's faceless photo) 0.55-0.56, while the real faces here score 0.7-0.97.

    MediaPipe graphs are not safe to call from two threads at once, so calls take a lock (the
    HTTP server shares one encoder between requests).
    """

    name = "blazeface"

    def __init__(self, model: str = "auto", min_confidence: float = 0.6,
                 tile: float = 1.0) -> None:
        if model not in ("short", "full", "auto"):
            raise ModelError(f"BlazeFace model must be short, full or auto, not {model!r}")
        _protobuf_compat()
        try:
            with _pyplot_deferred():
                from mediapipe.python.solutions import face_detection
        except ImportError as e:
            raise ModelError(
                "the blazeface face detector needs mediapipe 0.10.21: pip install --no-deps "
                f"mediapipe==0.10.21 attrs absl-py (see the Makefile) ({e})") from e
        self.model, self.min_confidence, self.tile = model, float(min_confidence), float(tile)
        self._graphs = {}
        # each graph starts (and prints its start-up notices) at its first frame: give it a
        # blank one here, with those notices dropped, so a user's run shows none of them
        with _start_up_noise_dropped():
            for which, selection in (("short", 0), ("full", 1)):
                if model in (which, "auto"):
                    graph = face_detection.FaceDetection(
                        model_selection=selection, min_detection_confidence=min_confidence)
                    graph.process(np.zeros((64, 64, 3), np.uint8))
                    self._graphs[which] = graph
        self._lock = threading.Lock()

    def _run(self, which: str, frame: np.ndarray) -> list[Face]:
        h, w = frame.shape[:2]
        with self._lock:
            result = self._graphs[which].process(np.ascontiguousarray(frame))
        faces = []
        for det in result.detections or []:
            # the graph thresholds raw scores before its weighted NMS blends boxes, so blended
            # detections can come back below the threshold: filter again on the final score
            if det.score[0] < self.min_confidence:
                continue
            rb = det.location_data.relative_bounding_box
            kp = det.location_data.relative_keypoints
            # keypoints 0 and 1 are the eyes; 0 lies on the image's left for an upright face
            eyes = ((kp[0].x * w, kp[0].y * h), (kp[1].x * w, kp[1].y * h))
            if eyes[0][0] > eyes[1][0]:
                eyes = (eyes[1], eyes[0])
            faces.append(Face((rb.xmin * w, rb.ymin * h, rb.width * w, rb.height * h),
                              float(det.score[0]), eyes))
        return faces

    def detect(self, frame: np.ndarray) -> list[Face]:
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=2)
        if self.model != "auto":
            return self._run(self.model, frame)
        return self._run("full", frame) or self._run("short", frame) or self._tiled(frame)

    def _tiled(self, frame: np.ndarray) -> list[Face]:
        """Full range on half-overlapping square tiles; duplicates (IoU > 0.3) keep the best."""
        from .face_track import iou

        h, w = frame.shape[:2]
        side = max(64, int(min(h, w) * self.tile))
        if side >= max(h, w):
            return []
        found: list[Face] = []
        step = side // 2
        for y0 in sorted({*range(0, max(1, h - side + 1), step), max(0, h - side)}):
            for x0 in sorted({*range(0, max(1, w - side + 1), step), max(0, w - side)}):
                for f in self._run("full", frame[y0:y0 + side, x0:x0 + side]):
                    (bx, by, bw, bh), eyes = f.box, f.eyes
                    assert eyes is not None
                    found.append(Face((bx + x0, by + y0, bw, bh), f.score,
                                      tuple((ex + x0, ey + y0) for ex, ey in eyes)))  # type: ignore
        kept: list[Face] = []
        for f in sorted(found, key=lambda f: -f.score):
            if all(iou(f.box, k.box) <= 0.3 for k in kept):
                kept.append(f)
        return kept


def largest(faces: list[Face]) -> Face | None:
    """The largest face, or ``None`` (what the Haar encoder has always used)."""
    return max(faces, key=lambda f: f.area) if faces else None
