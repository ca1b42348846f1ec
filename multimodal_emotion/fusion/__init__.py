"""Fusion strategies by name: ``product`` (the default), ``concat``, ``sum``, ``attention``, ``late``.

``product`` is decision-level: it multiplies the experts' calibrated answers
(:mod:`.product`) and has the exact property that with one modality present the fused answer
is that expert's. The others are learned from embeddings and are kept for experiments on paired
data; each says whether it keeps that property (``keeps_single_modality``).

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
from .product import ProductOfExperts
from .strategies import AttentionFusion, ConcatFusion, LateFusion, SumFusion

FUSIONS: dict[str, Callable[..., Any]] = {
    "product": ProductOfExperts,
    "concat": ConcatFusion,
    "sum": SumFusion,
    "attention": AttentionFusion,
    "late": LateFusion,
}


def create(name: str, **kwargs: Any) -> Any:
    if name not in FUSIONS:
        raise InputError(f"unknown fusion {name!r}; choose from {sorted(FUSIONS)}")
    return FUSIONS[name](**kwargs)


def keeps_single_modality(name: str) -> bool:
    """Whether strategy ``name`` answers exactly as the lone expert when one modality is
    present (true by construction for ``product``; learned strategies are not held to it)."""
    return bool(getattr(FUSIONS[name], "keeps_single_modality", False))


__all__ = ["FUSIONS", "Fusion", "ProductOfExperts", "keeps_single_modality", "ConcatFusion",
           "SumFusion", "AttentionFusion", "LateFusion",
           "create"]
