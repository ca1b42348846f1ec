"""Model folders: where the shipped one lives, which formats exist, and which loader reads one.

Two formats share the folder shape ``config.json`` + weights: ``multimodal-emotion/1`` (PyTorch:
``model.safetensors``, read by :class:`~.model.EmotionModel`) and ``multimodal-emotion-onnx/1``
(ONNX files written by ``mer export onnx``, read by :class:`~.onnx_model.OnnxEmotionModel`).
This module needs neither torch nor onnxruntime, so the recognizer can pick a loader by the
folder's ``format`` and a torch-free install never imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import ModelError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "weights" / "default"
FORMAT = "multimodal-emotion/1"
ONNX_FORMAT = "multimodal-emotion-onnx/1"


def read_config(directory: str | Path) -> dict[str, Any]:
    """A model folder's ``config.json`` (a :class:`ModelError` naming the problem when it is
    missing, not JSON, or of an unknown format)."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise ModelError(f"{directory}: not a model folder (needs config.json)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") not in (FORMAT, ONNX_FORMAT):
        fmt = config.get("format") if isinstance(config, dict) else None
        raise ModelError(f"{path}: format {fmt!r}, expected {FORMAT!r} or {ONNX_FORMAT!r}")
    return config


def load_model(directory: str | Path | None = None) -> Any:
    """The trained part of a model folder (default: the shipped one): an ``EmotionModel``
    (torch) or, for an exported folder, an ``OnnxEmotionModel`` (onnxruntime + numpy)."""
    directory = Path(directory) if directory else DEFAULT_MODEL_DIR
    if read_config(directory)["format"] == ONNX_FORMAT:
        from .onnx_model import OnnxEmotionModel

        return OnnxEmotionModel.from_pretrained(directory)
    from .model import EmotionModel

    return EmotionModel.from_pretrained(directory)
