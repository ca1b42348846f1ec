"""Fusion strategies by name: ``concat``, ``sum``, ``attention`` and ``late``.

Every strategy has the same call, ``fusion(embeddings, mask, sequences=None) -> logits``, where
``embeddings`` maps modality -> ``[B, D_m]``, ``mask`` is ``[B, M]`` (True = the modality is
really there) and ``sequences`` optionally maps modality -> ``[B, K, D_m]`` with a ``[B, K]``
validity mask. A masked modality contributes nothing: its numbers are zeroed *and* the mask is
carried into the representation, so the head can tell "absent" from "present but neutral".
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import InputError
from .base import Fusion
from .strategies import AttentionFusion, ConcatFusion, LateFusion, SumFusion

FUSIONS: dict[str, Callable[..., Fusion]] = {
    "concat": ConcatFusion,
    "sum": SumFusion,
    "attention": AttentionFusion,
    "late": LateFusion,
}


def create(name: str, **kwargs: Any) -> Fusion:
    if name not in FUSIONS:
        raise InputError(f"unknown fusion {name!r}; choose from {sorted(FUSIONS)}")
    return FUSIONS[name](**kwargs)


__all__ = ["FUSIONS", "Fusion", "ConcatFusion", "SumFusion", "AttentionFusion", "LateFusion",
           "create"]
