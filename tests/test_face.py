"""Face modality: preprocessing, Haar+CNN encoder on blank / missing / real-face clips, and the
shipped CNN's accuracy on a fixed FER2013 Test subset (needs the shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from multimodal_emotion.encoders import create
from multimodal_emotion.encoders.face import FaceEncoder, preprocess_face
from multimodal_emotion.types import Clip


@pytest.fixture(scope="module")
def encoder() -> FaceEncoder:
    return FaceEncoder(max_frames=4)


def _clip(frames: np.ndarray | None) -> Clip:
    n = 0 if frames is None else len(frames)
    times = None if frames is None else np.arange(n) / 10.0
    return Clip(None, 16000, frames, times, 10.0, n / 10.0)


def test_preprocess_shape_dtype_and_standardised() -> None:
    rng = np.random.default_rng(0)
    for crop in (rng.integers(0, 256, (120, 90, 3), dtype=np.uint8),
                 rng.integers(0, 256, (48, 48), dtype=np.uint8),
                 rng.integers(0, 256, (20, 20), dtype=np.uint8)):
        out = preprocess_face(crop)
        assert out.shape == (48, 48) and out.dtype == np.float32
        assert abs(float(out.mean())) < 1e-3 and abs(float(out.std()) - 1) < 1e-2


def test_registry_builds_encoder() -> None:
    enc = create("face", "haar-cnn", max_frames=2)
    assert enc.modality == "face" and enc.dim > 0
    assert enc.config() == {"name": "haar-cnn", "kwargs": {"checkpoint": None, "max_frames": 2}}


def test_flip_tta_averages_the_face_and_its_mirror(encoder: FaceEncoder) -> None:
    """Mirror TTA is the mean of the two views' embeddings, and the expert's probabilities are
    the CNN head on that mean, so fusion and the face expert see the same thing."""
    import torch

    faces = np.random.default_rng(1).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    tta = FaceEncoder(max_frames=4, flip_tta=True)
    plain = encoder.encode_images(faces)
    mirrored = encoder.encode_images(np.ascontiguousarray(faces[:, :, ::-1]))
    emb = tta.encode_images(faces)
    assert np.allclose(emb, (plain + mirrored) / 2, atol=1e-5)
    assert not np.allclose(emb, plain, atol=1e-3)
    with torch.inference_mode():
        want = torch.softmax(tta.model.head(torch.from_numpy(emb)), -1).numpy()
    assert np.allclose(tta.predict_images(faces), want, atol=1e-5)
    assert tta.config()["kwargs"]["flip_tta"] is True


def test_blank_frames_are_unavailable(encoder: FaceEncoder) -> None:
    out = encoder.encode(_clip(np.full((6, 120, 160, 3), 128, np.uint8)))
    assert not out.available and out.extras["frames_with_face"] == 0
    assert out.extras["frames"] == 4 and "no face" in (out.reason or "")
    assert out.embedding.shape == (encoder.dim,) and not out.embedding.any()


def test_no_video_is_unavailable(encoder: FaceEncoder) -> None:
    for frames in (None, np.zeros((0, 120, 160, 3), np.uint8)):
        out = encoder.encode(_clip(frames))
        assert not out.available and out.reason == "no video track"
        assert out.extras == {"frames_with_face": 0, "frames": 0}


def test_real_face_is_found_and_embedded(encoder: FaceEncoder) -> None:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image not installed")
    face = skimage_data.astronaut()  # 512x512 RGB, frontal face
    out = encoder.encode(_clip(np.stack([face] * 3)))
    assert out.available, out.reason
    assert out.extras["frames_with_face"] > 0
    assert out.embedding.shape == (encoder.dim,) and np.isfinite(out.embedding).all()
    assert out.sequence is not None and out.sequence.shape == (out.extras["frames_with_face"],
                                                               encoder.dim)
    probs = encoder.predict_images(preprocess_face(face[:220, 150:330])[None])
    assert probs.shape == (1, 7) and abs(float(probs.sum()) - 1) < 1e-4


@pytest.mark.data
def test_shipped_cnn_on_fer2013_test_subset(encoder: FaceEncoder, data_root: Path) -> None:
    from multimodal_emotion.datasets.fer2013 import load_fer2013

    images, labels, usage = load_fer2013(data_root)
    test = np.flatnonzero(usage == "Test")
    idx = np.random.default_rng(0).choice(test, 500, replace=False)
    acc = float((encoder.predict_images(images[idx]).argmax(1) == labels[idx]).mean())
    assert acc > 0.55, f"FER2013 Test subset accuracy {acc:.3f}"
