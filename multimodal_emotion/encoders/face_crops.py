"""Face crops without torch: FER2013-style preprocessing, box crops, the followed face's crops
of a clip and the modality output built from their embeddings.

Why a module of its own: the ONNX runtime's face encoder (``onnx_runtime.py``) must see exactly
the crops the PyTorch ``blazeface-cnn`` encoder sees, without importing torch; :mod:`.face`
imports these back, so its public names are unchanged.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..types import Clip, ModalityOutput

FACE_SIZE = 48  # FER2013 crops are 48x48 grey


def preprocess_face(crop: np.ndarray) -> np.ndarray:
    """A face crop (grey or RGB, any size, uint8 or float) -> ``[48, 48]`` float32, standardised.

    Used identically for FER2013 training images and video crops. Per-image standardisation (zero
    mean, unit variance) removes most of the exposure and contrast gap between the two sources.
    """
    import cv2

    img = np.asarray(crop)
    if img.ndim == 3:
        img = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2GRAY) if img.shape[2] == 3 \
            else img[..., 0]
    if img.shape != (FACE_SIZE, FACE_SIZE):
        interp = cv2.INTER_AREA if min(img.shape) > FACE_SIZE else cv2.INTER_LINEAR
        img = cv2.resize(img.astype(np.float32), (FACE_SIZE, FACE_SIZE), interpolation=interp)
    return standardise(img.astype(np.float32)[None])[0]


def standardise(images: np.ndarray) -> np.ndarray:
    """Per-image zero mean / unit variance for a batch ``[N, H, W]`` (vectorised)."""
    x = images.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return (x - mean) / np.maximum(std, 1.0)


def box_crop(frame: np.ndarray, box: tuple[float, float, float, float], margin: float = 0.1
             ) -> np.ndarray:
    """Square crop around an ``(x, y, w, h)`` box widened by ``margin`` on each side (so it
    resembles FER2013's forehead-to-chin framing), clipped to the frame."""
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    H, W = frame.shape[:2]
    x0, y0 = max(0, x0), max(0, y0)
    return frame[y0:min(H, y0 + side), x0:min(W, x0 + side)]


def sample_frames(clip: Clip, max_frames: int) -> np.ndarray | None:
    """Indices of the (at most ``max_frames``, evenly spread) frames to look at; ``None``
    when the clip has no video."""
    if not clip.has_video or clip.frames is None:
        return None
    n = len(clip.frames)
    return np.unique(np.linspace(0, n - 1, min(max_frames, n)).round().astype(int))


def followed_face(detector: Any, clip: Clip, max_frames: int) -> tuple[np.ndarray, list[Any]]:
    """Sampled frame indices and the one face followed through them (``None`` where it is not
    seen): the detector runs on every sampled frame, :mod:`.face_track` picks the face."""
    from .face_track import follow_one_face

    idx = sample_frames(clip, max_frames)
    if idx is None:
        return np.zeros(0, int), []
    frames = clip.frames
    assert frames is not None
    return idx, follow_one_face([detector.detect(frames[i]) for i in idx])


def followed_crops(detector: Any, clip: Clip, max_frames: int) -> tuple[list[np.ndarray], int]:
    """The followed face's preprocessed 48x48 crops (aligned by the eyes when the detector
    gives them, else cropped by the box) and how many frames were sampled."""
    from .face_align import align_face

    idx, track = followed_face(detector, clip, max_frames)
    frames = clip.frames
    crops = []
    for i, face in zip(idx, track):
        if face is None:
            continue
        assert frames is not None
        crop = (align_face(frames[i], *face.eyes) if face.eyes is not None
                else box_crop(frames[i], face.box))
        crops.append(preprocess_face(crop))
    return crops, len(idx)


def face_output(crops: list[np.ndarray], n_frames: int, dim: int,
                encode_images: Callable[[np.ndarray], np.ndarray]) -> ModalityOutput:
    """The face modality from preprocessed crops: the mean embedding, each crop's embedding as
    the sequence; missing (with the reason) when no frame had a face."""
    extras = {"frames_with_face": len(crops), "frames": int(n_frames)}
    if not crops:
        return ModalityOutput.missing("face", dim, reason=f"no face found in {n_frames} frames",
                                      **extras)
    seq = encode_images(np.stack(crops))
    return ModalityOutput("face", seq.mean(0).astype(np.float32), True,
                          sequence=seq.astype(np.float32), extras=extras)


def no_video(dim: int) -> ModalityOutput:
    return ModalityOutput.missing("face", dim, reason="no video track", frames_with_face=0,
                                  frames=0)
