"""The default face path on a real face photo (scikit-image's astronaut): BlazeFace finds the face
and its eyes, eye alignment levels a tilted head, the tracker keeps the clip's own face when a
larger one appears, and frames without a face give a masked modality with a reason."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mediapipe", reason="mediapipe not installed (see the Makefile)")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image not installed")

from multimodal_emotion.encoders import create  # noqa: E402
from multimodal_emotion.encoders.face import TrackedFaceEncoder  # noqa: E402
from multimodal_emotion.encoders.face_align import EYE_MID, align_face, eye_angle  # noqa: E402
from multimodal_emotion.encoders.face_detect import Face, create_detector, largest  # noqa: E402
from multimodal_emotion.encoders.face_track import follow_one_face  # noqa: E402
from multimodal_emotion.types import Clip  # noqa: E402


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()  # 512x512 RGB, a frontal face at about (180-270, 60-160)


@pytest.fixture(scope="module")
def detector():
    return create_detector("blazeface")


@pytest.fixture(scope="module")
def encoder() -> TrackedFaceEncoder:
    return TrackedFaceEncoder(max_frames=6, flip_tta=True)


def _rotate(img: np.ndarray, deg: float, center: tuple[float, float]) -> np.ndarray:
    import cv2

    m = cv2.getRotationMatrix2D(center, deg, 1.0)
    return cv2.warpAffine(img, m, img.shape[1::-1], borderMode=cv2.BORDER_REFLECT)


def _clip(frames: np.ndarray) -> Clip:
    return Clip(None, 16000, frames, np.arange(len(frames)) / 4.0, 4.0, len(frames) / 4.0)


def test_finds_the_face_and_its_eyes(astronaut: np.ndarray, detector) -> None:
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    (lx, ly), (rx, ry) = faces[0].eyes
    x, y, w, h = faces[0].box
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200  # the astronaut's face
    assert x < lx < rx < x + w and y < ly < y + h / 2 and y < ry < y + h / 2  # eyes: upper half
    assert 30 < rx - lx < 70 and abs(eye_angle((lx, ly), (rx, ry))) < 10


def test_alignment_levels_a_tilted_face(astronaut: np.ndarray, detector) -> None:
    """Tilt the head 25 degrees: the detected eye line follows; after alignment a fresh
    detection on the 48x48 crop (upscaled, as FER2013's geometry was measured) finds it level
    and at FER2013's eye height."""
    import cv2

    upright = eye_angle(*detector.detect(astronaut)[0].eyes)  # her head is tilted ~5 degrees
    tilted = _rotate(astronaut, 25, (225, 110))  # counter-clockwise: the eye line goes to -20
    face = largest(detector.detect(tilted))
    assert face is not None and abs(eye_angle(*face.eyes) - (upright - 25)) < 6
    crop = align_face(tilted, *face.eyes)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    big = cv2.resize(crop, (192, 192), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((384, 384), int(big.mean()), np.uint8)
    canvas[96:288, 96:288] = big
    again = largest(detector.detect(np.repeat(canvas[..., None], 3, axis=2)))
    assert again is not None
    # BlazeFace's eye keypoints are coarse (a few degrees between two views of one face), so
    # "level" is judged against the tilt before alignment rather than against zero
    assert abs(eye_angle(*again.eyes)) < 8
    assert abs(eye_angle(*again.eyes)) < abs(eye_angle(*face.eyes)) / 2
    mid_y = ((again.eyes[0][1] + again.eyes[1][1]) / 2 - 96) / 4
    assert abs(mid_y - EYE_MID[1]) < 3


def test_tracker_keeps_the_clips_face_when_a_larger_one_appears(astronaut: np.ndarray,
                                                                 encoder) -> None:
    """Six frames of the face small on the left; from frame 3 a second, larger face enters on
    the right. Largest-per-frame would switch; the tracker stays on the left face."""
    import cv2

    head = astronaut[20:240, 110:340]  # 220x230 head and shoulders
    small = cv2.resize(head, (173, 165), interpolation=cv2.INTER_AREA)
    big = cv2.resize(head, (299, 286), interpolation=cv2.INTER_AREA)
    frames = np.full((6, 360, 640, 3), 90, np.uint8)
    for t in range(6):
        frames[t, 100:265, 30 + 4 * t:203 + 4 * t] = small  # drifts right 4 px a frame
        if t >= 3:
            frames[t, 40:326, 320:619] = big
    idx, track = encoder.faces(_clip(frames))
    assert list(idx) == list(range(6)) and all(f is not None for f in track)
    assert all(f.center[0] < 320 for f in track)
    biggest = [largest(encoder.detector.detect(f)) for f in frames[3:]]
    assert all(b is not None and b.center[0] > 320 for b in biggest)  # the test has teeth
    out = encoder.encode(_clip(frames))
    assert out.available and out.extras == {"frames_with_face": 6, "frames": 6}


def test_tracker_rule_on_boxes() -> None:
    a = [Face((100 + 5 * t, 100, 50, 50)) for t in range(5)]
    big = Face((300, 100, 150, 150))
    frames = [[a[0]], [a[1]], [a[2], big], [big, a[3]], [big]]  # a missed in the last frame
    track = follow_one_face(frames)
    assert track[:4] == a[:4] and track[4] is None


def test_no_face_is_masked_with_a_reason(encoder) -> None:
    rocket = skimage_data.rocket()  # a real photo without a face
    frames = np.stack([rocket, rocket[:, ::-1]])
    out = encoder.encode(_clip(np.ascontiguousarray(frames)))
    assert not out.available and "no face found in 2 frames" in (out.reason or "")
    assert out.extras == {"frames_with_face": 0, "frames": 2}
    assert not out.embedding.any()


def test_registered_and_tilted_face_embedded(astronaut: np.ndarray) -> None:
    enc = create("face", "blazeface-cnn", max_frames=2)
    assert enc.config() == {"name": "blazeface-cnn", "kwargs": {"checkpoint": None,
                                                                "max_frames": 2}}
    out = enc.encode(_clip(np.stack([_rotate(astronaut, a, (225, 110)) for a in (-30, 30)])))
    assert out.available and out.extras["frames_with_face"] == 2
    assert out.embedding.shape == (enc.dim,) and np.isfinite(out.embedding).all()


def test_a_face_seen_in_one_frame_of_many_is_not_a_person() -> None:
    blip = Face((10, 10, 40, 40), 0.6)
    assert follow_one_face([[blip], [], [], [], []]) == [None] * 5
    assert follow_one_face([[blip], []])[0] == blip  # too few frames to tell


def _fresh_interpreter(code: str) -> str:
    """Run ``code`` in a new Python (what one process does once is not hidden by other tests);
    its stderr."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stderr


def test_blazeface_does_not_import_pyplot_and_pyplot_still_works() -> None:
    """mediapipe's drawing helpers import matplotlib.pyplot (0.6 s of a cold start): loading
    the detector must not, and pyplot must still work for whoever imports it later (a fresh
    interpreter, so other tests' imports do not count)."""
    _fresh_interpreter(
        "import sys\n"
        "from multimodal_emotion.encoders.face_detect import create_detector\n"
        "create_detector('blazeface')\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
        "from mediapipe.python.solutions import drawing_utils\n"
        "assert drawing_utils.plt.figure.__module__ == 'matplotlib.pyplot'\n"
        "import matplotlib.pyplot as plt\n"
        "assert type(plt).__name__ == 'module' and sys.modules['matplotlib.pyplot'] is plt\n")


def test_mediapipe_start_up_notices_are_not_shown() -> None:
    """A user's run must not open with MediaPipe's C++ notices (TF Lite's XNNPACK line, absl's
    pre-init warning, a feedback-tensor warning per graph): a fresh interpreter, since some of
    them print once per process."""
    stderr = _fresh_interpreter(
        "import numpy as np, sys\n"
        "from multimodal_emotion.encoders.face_detect import create_detector\n"
        "d = create_detector('blazeface')\n"
        "d.detect(np.zeros((120, 160, 3), np.uint8))\n"
        "print('still here', file=sys.stderr)\n")
    assert stderr.strip() == "still here", stderr[-2000:]


def test_start_up_noise_filter_keeps_everything_else(capfd) -> None:
    """Only the known notices are dropped: other lines written meanwhile, at the descriptor or
    through ``sys.stderr``, still reach stderr."""
    import os
    import sys

    from multimodal_emotion.encoders.face_detect import _start_up_noise_dropped

    with _start_up_noise_dropped():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                    b"a real error from C++\n"
                    b"W0000 00:00:1 3039 inference_feedback_manager.cc:114] Feedback...\n")
        print("a Python warning", file=sys.stderr)
    err = capfd.readouterr().err
    assert "a real error from C++" in err and "a Python warning" in err
    assert "XNNPACK" not in err and "inference_feedback_manager" not in err
