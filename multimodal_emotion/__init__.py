"""multimodal-emotion: how a person feels in a video clip, from voice, words and face.

    >>> from multimodal_emotion import EmotionRecognizer
    >>> rec = EmotionRecognizer.from_pretrained()        # the shipped default model
    >>> pred = rec.analyze("clip.mp4")                    # -> Prediction
    >>> pred.label, pred.to_dict()["modalities"]["text"]["transcript"]

Heavy imports (torch, transformers, faster-whisper) happen when a recognizer is built, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import InputError, MediaError, MerError, ModelError
from .labels import LABELS
from .types import Clip, ModalityOutput, Prediction

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .recognizer import EmotionRecognizer


def __getattr__(name: str) -> Any:
    if name == "EmotionRecognizer":
        from .recognizer import EmotionRecognizer

        return EmotionRecognizer
    raise AttributeError(name)


__all__ = ["EmotionRecognizer", "Prediction", "Clip", "ModalityOutput", "LABELS", "MerError",
           "MediaError", "ModelError", "InputError", "__version__"]
