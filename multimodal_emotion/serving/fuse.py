"""``POST /v1/fuse``: fusion without media, for callers who run their own encoders or experts.

Two inputs, one of them per request:

* ``embeddings`` -- per-modality vectors of the loaded model's sizes; they go through the
  expert heads and the model's fusion (``product`` of the calibrated experts by default, or a
  learned ``concat``, ``sum``, ``attention``, ``late``), exactly as inside ``analyze``. Attention gets no token sequences here, so it attends over the three
  pooled vectors only.
* ``probabilities`` -- per-modality distributions over the seven labels. No trained model takes
  those, so they are combined by a late-fusion rule, named in the answer: ``mean`` (arithmetic
  mean of the used modalities' distributions, the default) or ``product`` (normalised product,
  i.e. a naive-Bayes combination that assumes the modalities are independent given the label;
  each value is floored at 1e-6 so one zero cannot veto a label).

``mask`` chooses which of the given modalities take part (default: all given).
"""

from __future__ import annotations

import math
from typing import Any, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator

from ..types import MODALITIES
from .errors import ApiError

LATE_FUSION_RULES: dict[str, str] = {
    "mean": "arithmetic mean of the used modalities' probabilities",
    "product": "normalised product of the used modalities' probabilities (floored at 1e-6)",
}
PRODUCT_FLOOR = 1e-6
MAX_NAMED_VALUES = 64  # {label: probability} maps: seven labels, with room for typos to report


# A JSON number, never a boolean (pydantic's lax float takes true as 1.0).
Number = Union[StrictFloat, StrictInt]


class FuseRequest(BaseModel):
    """Body of ``POST /v1/fuse``: exactly one of ``embeddings`` or ``probabilities``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "description": "Send exactly one of 'embeddings' or 'probabilities'.",
        "oneOf": [{"required": ["embeddings"]}, {"required": ["probabilities"]}]})

    embeddings: dict[str, list[Number]] | None = Field(
        None, description="modality -> embedding vector (sizes: GET /v1/models)")
    probabilities: dict[str, Union[list[Number], dict[str, Number]]] | None = Field(
        None, description="modality -> 7 probabilities in label order, or {label: probability}")
    mask: Union[dict[str, bool], list[str], None] = Field(
        None, description="modalities to use: a list of names or {modality: bool}")
    fusion: str | None = Field(
        None, description="embeddings: product|concat|sum|attention|late (default: the "
                          "model's, product); "
                          "probabilities: mean|product (default mean)")

    @model_validator(mode="before")
    @classmethod
    def _shape_first(cls, data: Any) -> Any:
        """Stop at the first wrong value, in one error. Left to field validation, a 0.9 MB body
        of 180,000 strings where numbers belong made 360,000 errors: 5 s and 460 MB."""
        if not isinstance(data, dict):
            return data
        for key in ("embeddings", "probabilities"):
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ValueError(f"{key} must be an object: modality -> values")
            if len(value) > len(MODALITIES):
                raise ValueError(f"{key}: at most {len(MODALITIES)} modalities "
                                 f"({', '.join(MODALITIES)})")
            for modality, values in value.items():
                items = values.items() if isinstance(values, dict) else \
                    enumerate(values) if isinstance(values, list) else ()
                if isinstance(values, dict) and len(values) > MAX_NAMED_VALUES:
                    raise ValueError(f"{key}.{str(modality)[:40]}: at most {MAX_NAMED_VALUES} "
                                     "named values")
                for where, x in items:
                    if type(x) not in (int, float):  # bool is an int to Python, not to us
                        at = where if isinstance(where, int) else repr(str(where)[:40])
                        raise ValueError(f"{key}.{str(modality)[:40]}[{at}] is "
                                         f"{str(x)[:40]!r}, not a number")
        mask = data.get("mask")
        if isinstance(mask, (list, dict)) and len(mask) > len(MODALITIES):
            raise ValueError(f"mask: at most {len(MODALITIES)} modalities")
        return data


def fuse(model: Any, req: FuseRequest) -> dict[str, Any]:
    """Validate ``req`` against the loaded ``model`` (an ``EmotionModel``) and fuse."""
    if (req.embeddings is None) == (req.probabilities is None):
        raise ApiError("invalid_request", "send exactly one of 'embeddings' or 'probabilities'")
    given = req.embeddings if req.embeddings is not None else req.probabilities
    assert given is not None
    _check_names(given, "embeddings" if req.embeddings is not None else "probabilities")
    used = _used(given, req.mask)
    labels = list(model.labels)
    if req.embeddings is not None:
        return _fuse_embeddings(model, req, used, labels)
    return _fuse_probabilities(req, used, labels)


def _check_names(given: dict[str, Any], what: str) -> None:
    unknown = sorted(set(given) - set(MODALITIES))
    if unknown:
        raise ApiError("invalid_request", f"{what}: unknown modality {unknown}; use "
                       f"{list(MODALITIES)}")
    if not given:
        raise ApiError("invalid_request", f"{what} is empty: give at least one modality")


def _used(given: dict[str, Any], mask: dict[str, bool] | list[str] | None) -> list[str]:
    """The modalities that take part: those given, narrowed by ``mask``."""
    if mask is None:
        wanted = set(given)
    else:
        wanted = {m for m, on in mask.items() if on} if isinstance(mask, dict) else set(mask)
        unknown = sorted(set(mask) - set(MODALITIES))
        if unknown:
            raise ApiError("invalid_request", f"mask: unknown modality {unknown}; use "
                           f"{list(MODALITIES)}")
        missing = sorted(wanted - set(given))
        if missing:
            raise ApiError("invalid_request", f"mask turns on {missing} but no values were given "
                           "for it")
    used = [m for m in MODALITIES if m in wanted]
    if not used:
        raise ApiError("invalid_request", "the mask leaves no modality to fuse")
    return used


def _fuse_embeddings(model: Any, req: FuseRequest, used: list[str],
                     labels: list[str]) -> dict[str, Any]:
    fusions = list(model.fusions)
    name = req.fusion or model.default_fusion
    if name not in fusions:
        hint = " (mean and product are for 'probabilities' input)" \
            if name in LATE_FUSION_RULES else ""
        raise ApiError("invalid_request", f"fusion {name!r} is not in the loaded model; use one "
                       f"of {fusions}{hint}")
    assert req.embeddings is not None
    vectors: dict[str, np.ndarray] = {}
    for m, values in req.embeddings.items():
        dim = int(model.dims[m])
        if len(values) != dim:
            raise ApiError("invalid_request", f"embeddings.{m} has {len(values)} values; the "
                           f"loaded model expects {dim} (see GET /v1/models)")
        vec = np.asarray(values, dtype=np.float32)
        if not np.isfinite(vec).all():
            raise ApiError("invalid_request", f"embeddings.{m} contains NaN or infinity")
        vectors[m] = vec
    fused, experts = model.predict(vectors, {m: m in used for m in MODALITIES}, name)
    assert fused is not None  # at least one modality is used
    return {
        "input": "embeddings",
        "fusion": name,
        "modalities_used": used,
        **_answer(fused, labels),
        "modalities": {m: (_answer(experts[m], labels) if experts.get(m) is not None else None)
                       for m in MODALITIES},
    }


def _fuse_probabilities(req: FuseRequest, used: list[str], labels: list[str]) -> dict[str, Any]:
    rule = req.fusion or "mean"
    if rule not in LATE_FUSION_RULES:
        raise ApiError("invalid_request", f"fusion {rule!r} cannot combine probabilities; use one "
                       f"of {list(LATE_FUSION_RULES)} (the trained fusions need 'embeddings')")
    assert req.probabilities is not None
    dists = {m: _distribution(m, v, labels) for m, v in req.probabilities.items()}
    stack = np.stack([dists[m] for m in used])
    if rule == "mean":
        fused = stack.mean(0)
    else:
        logp = np.log(np.maximum(stack, PRODUCT_FLOOR)).sum(0)
        fused = np.exp(logp - logp.max())
    fused = fused / fused.sum()
    return {
        "input": "probabilities",
        "fusion": rule,
        "rule": LATE_FUSION_RULES[rule],
        "modalities_used": used,
        **_answer(fused, labels),
    }


def _distribution(m: str, values: list[float] | dict[str, float], labels: list[str]) -> np.ndarray:
    """One modality's probabilities as a normalised vector in label order."""
    if isinstance(values, dict):
        extra, missing = sorted(set(values) - set(labels)), sorted(set(labels) - set(values))
        if extra or missing:
            raise ApiError("invalid_request", f"probabilities.{m}: keys must be exactly {labels}"
                           + (f"; unknown {extra}" if extra else "")
                           + (f"; missing {missing}" if missing else ""))
        values = [values[name] for name in labels]
    if len(values) != len(labels):
        raise ApiError("invalid_request", f"probabilities.{m} has {len(values)} values; give "
                       f"{len(labels)}, in the order {labels}")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ApiError("invalid_request", f"probabilities.{m}: values must be finite and >= 0")
    vec = np.asarray(values, dtype=np.float64)
    total = vec.sum()
    if total <= 0:
        raise ApiError("invalid_request", f"probabilities.{m} sums to 0")
    if abs(total - 1.0) > 0.01:
        raise ApiError("invalid_request", f"probabilities.{m} sums to {total:.4f}, not 1 "
                       "(send probabilities, not logits or scores)")
    return vec / total


def _answer(probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    return {"label": labels[int(np.argmax(probs))],
            "confidence": round(float(np.max(probs)), 5),
            "probabilities": {name: round(float(p), 5) for name, p in zip(labels, probs)}}
