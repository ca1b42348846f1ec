"""Face modality: a face detector + a compact CNN trained on FER2013.

Why this design: the 48x48 grey FER2013 format is the largest public face-expression set, so a
small VGG-style CNN trained on it gives a face embedding that runs in real time on two CPU cores.
Two encoders share the CNN: ``blazeface-cnn`` (the default: BlazeFace, one face followed through
the clip, crops aligned by the eyes) and ``haar-cnn`` (OpenCV's Haar cascade, the largest box of
each frame; kept for models that name it and for comparison).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..labels import LABELS
from ..types import Clip, ModalityOutput
from . import register

from .face_crops import (  # noqa: F401  (re-exported: the names callers know)
    FACE_SIZE, box_crop, face_output, followed_crops, followed_face, no_video, preprocess_face,
    sample_frames, standardise)


class FaceCNN(nn.Module):
    """VGG-style CNN: per block (conv-BN-ReLU) x2 + max-pool, then global average pooling,
    an ``embed_dim`` fully connected embedding and a linear layer to the 7 canonical LABELS.

    Global pooling makes it size-agnostic: it trains on 44x44 random crops and infers on the
    44x44 centre crop of a 48x48 face.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 256), embed_dim: int = 256,
                 dropout: float = 0.3, n_classes: int = len(LABELS), input_size: int = 44) -> None:
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.embed_dim = int(embed_dim)
        self.dropout_p = float(dropout)
        self.n_classes = int(n_classes)
        self.input_size = int(input_size)
        layers: list[nn.Module] = []
        c_in = 1
        for c in self.channels:
            for _ in range(2):
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                           nn.ReLU(inplace=True)]
                c_in = c
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.embedding = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                       nn.Linear(c_in, self.embed_dim), nn.BatchNorm1d(self.embed_dim),
                                       nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embed_dim, self.n_classes))

    def config(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "embed_dim": self.embed_dim,
                "dropout": self.dropout_p, "n_classes": self.n_classes,
                "input_size": self.input_size}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 1, H, W]`` standardised faces -> ``[N, embed_dim]`` penultimate embedding."""
        h = self.features(x)
        return self.embedding(h.mean(dim=(2, 3), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre ``size`` x ``size`` crop of ``[N, C, H, W]`` (identity when already that size)."""
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


class FaceDetector:
    """Largest frontal face per frame with OpenCV's Haar cascade (:class:`.face_detect.
    HaarDetector`), boxes rounded to whole pixels: the ``haar-cnn`` encoder's detector."""

    def __init__(self, scale_factor: float = 1.2, min_neighbors: int = 5,
                 min_size: int = 48, max_side: int = 320, margin: float = 0.1) -> None:
        from .face_detect import HaarDetector

        self.haar = HaarDetector(scale_factor, min_neighbors, min_size, max_side)
        self.margin = margin

    def detect(self, frame: np.ndarray) -> tuple[int, int, int, int] | None:
        """``(x, y, w, h)`` of the largest face in an RGB or grey uint8 frame, or ``None``."""
        from .face_detect import largest

        face = largest(self.haar.detect(frame))
        return None if face is None else tuple(int(round(v)) for v in face.box)  # type: ignore

    def crop(self, frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Square crop around ``box`` widened by ``margin``, clipped to the frame."""
        return box_crop(frame, box, self.margin)


def _default_checkpoint() -> Path:
    return Path(__file__).resolve().parent.parent / "weights" / "default" / "face_cnn"


def load_face_cnn(checkpoint: str | Path | None = None) -> tuple[FaceCNN, dict[str, Any]]:
    """Build :class:`FaceCNN` from a folder with ``config.json`` + ``model.safetensors``."""
    from safetensors.torch import load_file

    from ..errors import ModelError

    folder = Path(checkpoint) if checkpoint else _default_checkpoint()
    cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.is_file() or not w_path.is_file():
        raise ModelError(f"face checkpoint {folder} needs config.json and model.safetensors")
    cfg = json.loads(cfg_path.read_text())
    if list(cfg.get("labels", LABELS)) != list(LABELS):
        raise ModelError(f"{cfg_path}: labels {cfg.get('labels')} differ from {list(LABELS)}")
    model = FaceCNN(**cfg["architecture"])
    state = {k: v.float() for k, v in load_file(str(w_path)).items()}
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ModelError(f"{w_path} does not match its config: {e}") from e
    missing = [k for k in model.state_dict() if k not in state
               and not k.endswith("num_batches_tracked")]
    if missing:
        raise ModelError(f"{w_path} lacks weights {missing[:3]}...")
    return model.eval(), cfg


@register("face", "haar-cnn")
class FaceEncoder:
    """Face embedding of a clip: mean over sampled frames of the CNN's penultimate embedding."""

    modality = "face"
    name = "haar-cnn"

    def __init__(self, checkpoint: str | None = None, max_frames: int = 16,
                 flip_tta: bool = False) -> None:
        """``flip_tta``: embed each face and its mirror image and average the two embeddings.
        A face's expression is (nearly) left-right symmetric, so the mirror is a free second
        view: on FER2013 Test it lifts the shipped CNN from 69.4 to 70.4 % for twice the
        (small) CNN cost per face; the detector, which dominates, runs once."""
        self.checkpoint = checkpoint
        self.max_frames = int(max_frames)
        self.flip_tta = bool(flip_tta)
        self.model, self.model_config = load_face_cnn(checkpoint)
        self.dim = self.model.embed_dim
        self.detector = FaceDetector()

    def _sample(self, clip: Clip) -> np.ndarray | None:
        """Indices of the (at most ``max_frames``, evenly spread) frames to look at."""
        return sample_frames(clip, self.max_frames)

    def _output(self, crops: list[np.ndarray], n_frames: int) -> ModalityOutput:
        """Embed preprocessed face crops into the modality output (missing when none)."""
        return face_output(crops, n_frames, self.dim, self.encode_images)

    def config(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"checkpoint": self.checkpoint, "max_frames": self.max_frames}
        if self.flip_tta:
            kwargs["flip_tta"] = True
        return {"name": self.name, "kwargs": kwargs}

    def _tensor(self, faces: np.ndarray) -> torch.Tensor:
        """``[N,48,48]`` uint8 (raw) or float32 (already :func:`preprocess_face`-d) -> crop tensor."""
        x = standardise(faces) if faces.dtype == np.uint8 else faces.astype(np.float32)
        return center_crop(torch.from_numpy(np.ascontiguousarray(x))[:, None],
                           self.model.input_size)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        if not self.flip_tta:
            return self.model.embed(x)
        return (self.model.embed(x) + self.model.embed(torch.flip(x, dims=[-1]))) / 2

    @torch.inference_mode()
    def encode_images(self, faces: np.ndarray, batch: int = 512) -> np.ndarray:
        """Embeddings ``[N, dim]`` of 48x48 grey faces (uint8 FER2013 or preprocessed float)."""
        x = self._tensor(np.asarray(faces))
        return torch.cat([self._embed(x[i:i + batch]) for i in range(0, len(x), batch)]
                         ).numpy() if len(x) else np.zeros((0, self.dim), np.float32)

    @torch.inference_mode()
    def predict_images(self, faces: np.ndarray, batch: int = 512) -> np.ndarray:
        """Probabilities ``[N, 7]`` over LABELS of 48x48 grey faces (the CNN's own head on
        :meth:`encode_images`' embeddings, as the face expert sees them)."""
        x = self._tensor(np.asarray(faces))
        out = [torch.softmax(self.model.head(self._embed(x[i:i + batch])), -1)
               for i in range(0, len(x), batch)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(LABELS)), np.float32)

    def encode(self, clip: Clip) -> ModalityOutput:
        idx = self._sample(clip)
        if idx is None:
            return no_video(self.dim)
        frames = clip.frames
        assert frames is not None
        crops = []
        for i in idx:
            box = self.detector.detect(frames[i])
            if box is not None:
                crops.append(preprocess_face(self.detector.crop(frames[i], box)))
        return self._output(crops, len(idx))


@register("face", "blazeface-cnn")
class TrackedFaceEncoder(FaceEncoder):
    """The default face path: BlazeFace finds every face in each sampled frame, one face is
    followed through the clip (:mod:`.face_track`), each of its crops is levelled and framed by
    the eyes like a FER2013 image (:mod:`.face_align`), then the same CNN (+ mirror TTA) embeds
    it. Turned, tilted, dim and small faces that Haar misses are found (bench/face_detect.py),
    and a second person in the shot no longer takes over frames where their box is larger."""

    name = "blazeface-cnn"

    def __init__(self, checkpoint: str | None = None, max_frames: int = 16,
                 flip_tta: bool = False, detector: str = "blazeface") -> None:
        """``detector``: a name in :data:`.face_detect.DETECTORS`; ``haar`` gives boxes without
        eyes, which are then cropped by the box as the ``haar-cnn`` encoder does."""
        from .face_detect import create_detector

        self.checkpoint = checkpoint
        self.max_frames = int(max_frames)
        self.flip_tta = bool(flip_tta)
        self.model, self.model_config = load_face_cnn(checkpoint)
        self.dim = self.model.embed_dim
        self.detector_name = detector
        self.detector = create_detector(detector)  # type: ignore[assignment]

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        if self.detector_name != "blazeface":
            cfg["kwargs"]["detector"] = self.detector_name
        return cfg

    def faces(self, clip: Clip) -> tuple[np.ndarray, list[Any]]:
        """Sampled frame indices and the followed face in each (``None`` where not seen)."""
        return followed_face(self.detector, clip, self.max_frames)

    def encode(self, clip: Clip) -> ModalityOutput:
        if self._sample(clip) is None:
            return no_video(self.dim)
        return self._output(*followed_crops(self.detector, clip, self.max_frames))
