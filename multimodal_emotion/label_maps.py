"""Business labels: a user's own categories over the seven emotions.

A contact centre does not ask "fearful or sad?" but "is the customer satisfied, neutral or
frustrated?". A label map is a small YAML (or JSON) file naming each category and the canonical
emotions it gathers::

    name: satisfaction            # optional
    labels:
      satisfied:  [happy, surprised]
      neutral:    [neutral]
      frustrated: [angry, sad, disgust, fearful]

Every canonical emotion must belong to exactly one category, so the categories' probabilities
(sums of their emotions' probabilities) add up to 1 and nothing is silently dropped or counted
twice. The map is applied to probabilities, never to labels: the category's probability is the
sum, and its label is the most probable category (which need not contain the top emotion).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import InputError
from .labels import LABELS, to_canonical


@dataclass(frozen=True)
class LabelMap:
    """Categories -> canonical emotions, validated to be a partition of :data:`LABELS`."""

    categories: dict[str, tuple[str, ...]]
    name: str = "custom"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], labels: Sequence[str] = LABELS) -> "LabelMap":
        if not isinstance(data, Mapping):
            raise InputError("a label map must be a mapping with a 'labels' section")
        raw = data.get("labels", data) if "labels" in data else data
        name = str(data.get("name", "custom")) if "labels" in data else "custom"
        if not isinstance(raw, Mapping) or not raw:
            raise InputError("a label map needs 'labels': {category: [emotion, ...], ...}")
        seen: dict[str, str] = {}
        cats: dict[str, tuple[str, ...]] = {}
        for cat, members in raw.items():
            if isinstance(members, str):
                members = [members]
            if not isinstance(members, (list, tuple)) or not members:
                raise InputError(f"label map: category {cat!r} must list one or more emotions")
            out = []
            for e in members:
                try:
                    canon = to_canonical(str(e))
                except KeyError:
                    canon = None
                if canon is None or canon not in labels:
                    raise InputError(f"label map: {e!r} in {cat!r} is not one of "
                                     f"{', '.join(labels)}")
                if canon in seen:
                    raise InputError(f"label map: {canon!r} is in both {seen[canon]!r} and "
                                     f"{cat!r}; each emotion belongs to one category")
                seen[canon] = str(cat)
                out.append(canon)
            cats[str(cat)] = tuple(out)
        missing = [e for e in labels if e not in seen]
        if missing:
            raise InputError(f"label map: {', '.join(missing)} belong to no category; every "
                             f"emotion must be mapped so the categories' probabilities sum to 1")
        return cls(cats, name)

    @classmethod
    def load(cls, path: str | Path) -> "LabelMap":
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise InputError(f"label map {p}: {exc.strerror or exc}") from exc
        return cls.parse(text, source=str(p))

    @classmethod
    def parse(cls, text: str, source: str = "label map") -> "LabelMap":
        """From YAML or JSON text (JSON is YAML; the API takes either)."""
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"{source}: not valid YAML/JSON ({exc})") from exc
        except RecursionError:
            # 500 bytes of "[" (under the API's 1 KB field cap) exhaust PyYAML's recursion
            raise InputError(f"{source}: nested too deeply to be a label map") from None
        return cls.from_dict(data)

    def apply(self, probabilities: Mapping[str, float]) -> dict[str, Any]:
        """``{"scheme", "label", "probabilities"}`` for a canonical probability dict."""
        probs = {c: float(sum(probabilities.get(e, 0.0) for e in members))
                 for c, members in self.categories.items()}
        label = max(probs, key=probs.get)
        return {"scheme": self.name, "label": label,
                "probabilities": {c: round(p, 5) for c, p in probs.items()}}

    def apply_array(self, probs: np.ndarray, labels: Sequence[str] = LABELS) -> np.ndarray:
        """``[N, C]`` canonical probabilities -> ``[N, K]`` category probabilities."""
        idx = {name: i for i, name in enumerate(labels)}
        return np.stack([probs[:, [idx[e] for e in members]].sum(1)
                         for members in self.categories.values()], 1)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "labels": {c: list(m) for c, m in self.categories.items()}}


def load_label_map(value: str | Path | Mapping[str, Any] | None) -> LabelMap | None:
    """A path, YAML/JSON text, a mapping or ``None``."""
    if value is None or isinstance(value, LabelMap):
        return value
    if isinstance(value, Mapping):
        return LabelMap.from_dict(value)
    text = str(value)
    if "\n" in text or text.lstrip().startswith("{"):
        return LabelMap.parse(text)
    return LabelMap.load(text)


__all__ = ["LabelMap", "load_label_map"]
