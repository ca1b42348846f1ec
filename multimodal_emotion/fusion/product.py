"""``product``: a weighted product of calibrated experts, the default fusion.

There is no real corpus here with voice, words and face labelled together, so a fusion network
learned end to end can only learn from synthetic triples, and on real clips it did worse than
the experts it combines. This strategy learns nothing jointly. It combines what each expert
already knows, in the one way that is right when the experts see independent evidence:

    log f(y) = log pi(y) + sum_{m in S} a_m (log q_m(y) - log pi(y))      (then renormalised)

``q_m`` is expert ``m``'s *calibrated* posterior (temperature-scaled, its training prior swapped
for the target prior ``pi``: :mod:`..calibration`), ``S`` the modalities present. Dividing each
posterior by the prior keeps the prior from being counted once per expert. With ``a_m = 1`` this
is Bayes' rule under conditional independence. Real modalities overlap (an angry voice and an
angry face are not independent evidence), so ``a_m`` (default 1) can be fitted on paired clips
(``mer adapt``); the weights apply only when two or more modalities are present, so with one
modality the fused answer *is* that expert's calibrated answer, exactly, and with none there is
no answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ProductOfExperts(nn.Module):
    """Decision-level fusion over calibrated expert log-probabilities (no trained tensors:
    its few numbers live in ``config.json``)."""

    name = "product"
    decision_level = True  # combines experts' answers, not embeddings
    keeps_single_modality = True

    def __init__(self, dims: dict[str, int], n_classes: int,
                 weights: dict[str, float] | None = None, **_: Any) -> None:
        super().__init__()
        self.dims, self.modalities, self.n_classes = dict(dims), list(dims), int(n_classes)
        self.weights = {m: float((weights or {}).get(m, 1.0)) for m in self.modalities}
        bad = {m: w for m, w in self.weights.items() if not (np.isfinite(w) and w > 0)}
        if bad:
            raise ValueError(f"product fusion weights must be positive numbers, got {bad}")

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dims": self.dims, "n_classes": self.n_classes,
                "weights": {m: round(w, 6) for m, w in self.weights.items()}}

    def weight_vector(self) -> torch.Tensor:
        return torch.tensor([self.weights[m] for m in self.modalities], dtype=torch.float32)

    def combine(self, log_q: torch.Tensor, mask: torch.Tensor, log_target: torch.Tensor
                ) -> torch.Tensor:
        """Fused log-probabilities ``[B, C]`` from calibrated expert log-probabilities
        ``log_q`` ``[B, M, C]`` (modalities in ``self.modalities`` order), ``mask`` ``[B, M]``
        and the target log-prior ``[C]``. Rows with no modality come back as ``NaN``: there
        is nothing to say about them."""
        return combine(log_q, mask, log_target, self.weight_vector().to(log_q.dtype))


def combine(log_q: torch.Tensor, mask: torch.Tensor, log_target: torch.Tensor,
            weights: torch.Tensor) -> torch.Tensor:
    """The product of experts, in logs (see the module docstring); ``weights`` ``[M]``."""
    m = mask.to(log_q.dtype)
    several = (m.sum(1, keepdim=True) >= 2).to(log_q.dtype)
    a = m * (several * weights[None] + (1 - several))  # a lone expert always counts once
    evidence = (a.unsqueeze(-1) * (log_q - log_target)).sum(1)
    out = F.log_softmax(log_target + evidence, -1)
    none = m.sum(1) == 0
    if none.any():
        out = out.masked_fill(none[:, None], float("nan"))
    return out


@torch.enable_grad()
def fit_weights(log_q: torch.Tensor, mask: torch.Tensor, y: torch.Tensor,
                log_target: torch.Tensor, init: torch.Tensor | None = None,
                l2: float = 0.01) -> torch.Tensor:
    """Modality weights minimising the fused negative log-likelihood of held-out paired rows
    (only rows with two or more modalities carry information about them), with a small pull
    towards 1 so few rows cannot send a weight to an extreme. Returns ``[M]`` in [0.05, 5]."""
    rows = mask.sum(1) >= 2
    start = torch.ones(log_q.shape[1]) if init is None else init.detach().clone().float()
    if not rows.any():
        return start
    lq, mk, yy = log_q[rows].double(), mask[rows], y[rows]
    log_w = start.double().log().requires_grad_(True)
    opt = torch.optim.LBFGS([log_w], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")
    lt = log_target.double()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        w = log_w.clamp(np.log(0.05), np.log(5.0)).exp()
        loss = F.nll_loss(combine(lq, mk, lt, w), yy) + l2 * (log_w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    out = log_w.detach().clamp(np.log(0.05), np.log(5.0)).exp().float()
    return out if torch.isfinite(out).all() else start
