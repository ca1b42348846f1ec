"""The customer's sentiment over a call, as one number weighted toward the end, and its trend.

*Valence of a turn*: ``v = sum_e p_e * V_e`` over the seven emotions' probabilities, with
:data:`VALENCE` = happy +1, surprised +0.25, neutral 0, sad -0.75, fearful -0.75, disgust -0.9,
angry -1 (the pleasant-unpleasant axis of Russell's circumplex, rounded; surprise is mildly
positive in service talk, "oh, great"). ``v`` lies in [-1, 1].

*Score*: with ``t_i`` the midpoint of customer turn *i*, ``d_i`` its length and ``D`` the call's
duration, ``w_i = d_i * r ** (t_i / D)``, and ``score = sum_i w_i v_i / sum_i w_i``. ``r``
(:data:`END_WEIGHT`, default 4) is how much more a moment at the end counts than one at the
start: how a call ends is what a customer remembers and reports.

*Trend*: the slope of the least-squares line through ``(t_i / D, v_i)`` weighted by ``d_i``: the
change in valence from the start to the end of the call (+0.5: half a unit better by the end).
``start`` and ``end`` are the duration-weighted mean valence in the first and last third of the
call (``None`` when the customer said nothing there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .analysis import TurnAnalysis

VALENCE: dict[str, float] = {"neutral": 0.0, "happy": 1.0, "sad": -0.75, "angry": -1.0,
                             "fearful": -0.75, "disgust": -0.9, "surprised": 0.25}
END_WEIGHT = 4.0


def valence(probabilities: dict[str, float]) -> float:
    """``sum_e p_e * V_e`` (see the module docstring)."""
    return float(sum(p * VALENCE.get(e, 0.0) for e, p in probabilities.items()))


@dataclass
class Sentiment:
    score: float | None
    trend: float | None
    start: float | None
    end: float | None
    turns: int

    def to_dict(self) -> dict[str, Any]:
        r = (lambda v: None if v is None else round(v, 4))
        return {"score": r(self.score), "trend": r(self.trend), "start": r(self.start),
                "end": r(self.end), "turns": self.turns, "formula": "end-weighted valence, "
                f"r={END_WEIGHT:g} (README: Calls)"}


def sentiment(turns: Sequence[TurnAnalysis], duration: float,
              end_weight: float = END_WEIGHT) -> Sentiment:
    """Score, trend, start and end valence of ``turns`` (the customer's) over ``duration``."""
    use = [t for t in turns if t.probabilities is not None and t.duration > 0]
    if not use or duration <= 0:
        return Sentiment(None, None, None, None, 0)
    v = np.array([valence(t.probabilities) for t in use])
    d = np.array([t.duration for t in use])
    x = np.clip(np.array([(t.start + t.end) / 2 for t in use]) / duration, 0.0, 1.0)
    w = d * end_weight ** x
    score = float((w * v).sum() / w.sum())
    trend = None
    if len(use) >= 2 and np.ptp(x) > 0:
        xm, vm = np.average(x, weights=d), np.average(v, weights=d)
        trend = float((d * (x - xm) * (v - vm)).sum() / (d * (x - xm) ** 2).sum())
    return Sentiment(score, trend, _mean_in(x, v, d, 0.0, 1 / 3), _mean_in(x, v, d, 2 / 3, 1.0),
                     len(use))


def _mean_in(x: np.ndarray, v: np.ndarray, d: np.ndarray, lo: float, hi: float) -> float | None:
    keep = (x >= lo) & (x <= hi)
    return float(np.average(v[keep], weights=d[keep])) if keep.any() else None
