"""Encoders by name: a config or the CLI says ``audio: whisper`` and gets an instance.

Like whisper's ``_MODELS`` dict, each registry maps a short name to a constructor. Modules
register on import; :func:`create` imports them lazily so ``import multimodal_emotion`` stays
cheap and optional back-ends (openai-whisper) are only needed when asked for.

Names ending in ``-onnx`` (``whisper-onnx``, ``text-onnx``, ``face-onnx``: what ``mer export
onnx`` writes into a folder's config) live in :mod:`.onnx_runtime`, which imports neither torch
nor transformers; asking for one imports only that module, so a torch-free install works.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from ..errors import InputError

# kind -> name -> constructor. Kinds: "audio", "text", "face", "transcriber".
REGISTRY: dict[str, dict[str, Callable[..., Any]]] = {
    "audio": {}, "text": {}, "face": {}, "transcriber": {},
}
_MODULES = {"audio": "audio", "text": "text", "transcriber": "text", "face": "face"}
ONNX_SUFFIX, _ONNX_MODULE = "-onnx", "onnx_runtime"


def register(kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class decorator: ``@register("audio", "whisper")``."""

    def deco(cls: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY[kind][name] = cls
        return cls

    return deco


def available(kind: str) -> list[str]:
    importlib.import_module(f".{_MODULES[kind]}", __name__)
    return sorted(REGISTRY[kind])


def create(kind: str, name: str, **kwargs: Any) -> Any:
    """Build the encoder registered as ``name`` for ``kind`` with its keyword config."""
    if kind not in REGISTRY:
        raise InputError(f"unknown encoder kind {kind!r}; choose from {sorted(REGISTRY)}")
    if name.endswith(ONNX_SUFFIX):  # the torch-free back-end: import it alone
        importlib.import_module(f".{_ONNX_MODULE}", __name__)
    if name not in REGISTRY[kind]:
        names = available(kind)
        if name not in REGISTRY[kind]:
            raise InputError(f"unknown {kind} encoder {name!r}; choose from {names}")
    return REGISTRY[kind][name](**kwargs)
