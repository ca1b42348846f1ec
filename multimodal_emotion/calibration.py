"""Calibrated expert probabilities: what each expert's numbers mean before they are combined.

Each modality's expert head was trained on its own corpus, with that corpus's class prior
(MELD is 47 % neutral; FER2013 has few disgusted faces) and with its own over- or
under-confidence. Before two experts can be multiplied, their outputs must be made comparable:

1. **Temperature** ``T_m``: ``softmax(z / T_m)`` is fitted on held-out data of the expert's own
   domain to minimise negative log-likelihood (Guo et al., 2017). It changes how sure the expert
   is, never which label it ranks first.
2. **Prior correction**: dividing by the prior the head was trained with turns the calibrated
   posterior into a likelihood ratio, and multiplying by the *target* prior (uniform unless a
   user sets one) gives the posterior for the world the system is used in. A text head that says
   "neutral" 47 % of the time because MELD is 47 % neutral stops outvoting the face on it.
   A head is rarely calibrated on its rarest classes (FER2013 has 1.5 % disgusted faces), and
   dividing by a tiny prior then over-shoots, so the correction has a strength ``b_m`` in
   [0, 1.5] (1 = exact Bayes), fitted on the same held-out rows by the class-balanced
   log-likelihood: the likelihood under a uniform prior, which is what the target asks for
   (the "logit adjustment" of Menon et al., 2021).

``log q_m(y|x) = log_softmax(z_m / T_m - b_m log prior_m + log target)`` is what every shell
shows as the expert's own answer and what the product of experts (:mod:`.fusion.product`)
multiplies.
A model folder without a ``calibration`` entry gets the identity (``T = 1``, no prior change), so
older folders load and answer as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .errors import ModelError

if TYPE_CHECKING:
    import torch

# torch is imported where it is used, not here: the ONNX runtime reads calibrations through the
# ``*_array`` methods with numpy alone (issue 19: a model that runs without torch installed).

MIN_T, MAX_T = 0.05, 20.0
MAX_POWER = 1.5


@dataclass
class ExpertCalibration:
    """Per-modality temperatures and training priors, and the target prior (``None``: uniform).

    Stored in a model folder's ``config.json`` as plain numbers under ``calibration``, so a
    person can read and edit them and ``mer adapt`` can refit them without touching weights.
    """

    labels: Sequence[str]
    temperature: dict[str, float] = field(default_factory=dict)
    train_prior: dict[str, list[float]] = field(default_factory=dict)
    target_prior: list[float] | None = None
    prior_power: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.labels)
        for m, t in self.temperature.items():
            if not (np.isfinite(t) and MIN_T <= t <= MAX_T):
                raise ModelError(f"calibration: temperature of {m} is {t}; it must lie in "
                                 f"[{MIN_T}, {MAX_T}]")
        for m, b in self.prior_power.items():
            if not (np.isfinite(b) and 0.0 <= b <= MAX_POWER):
                raise ModelError(f"calibration: prior_power of {m} is {b}; it must lie in "
                                 f"[0, {MAX_POWER}]")
        for m, p in list(self.train_prior.items()) + [("target", self.target_prior)]:
            if p is None:
                continue
            arr = np.asarray(p, np.float64)
            if arr.shape != (n,) or (arr <= 0).any() or not np.isfinite(arr).all():
                raise ModelError(f"calibration: prior of {m} must be {n} positive numbers, "
                                 f"got {p}")

    # -- config round trip --------------------------------------------------------------
    @classmethod
    def from_config(cls, labels: Sequence[str], cfg: dict[str, Any] | None
                    ) -> "ExpertCalibration":
        cfg = dict(cfg or {})
        return cls(labels, {m: float(t) for m, t in cfg.get("temperature", {}).items()},
                   {m: [float(v) for v in p] for m, p in cfg.get("train_prior", {}).items()},
                   None if cfg.get("target_prior") is None
                   else [float(v) for v in cfg["target_prior"]],
                   {m: float(b) for m, b in cfg.get("prior_power", {}).items()},
                   dict(cfg.get("info", {})))

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "temperature": {m: round(float(t), 6) for m, t in self.temperature.items()},
            "train_prior": {m: [round(float(v), 6) for v in p]
                            for m, p in self.train_prior.items()},
            "target_prior": None if self.target_prior is None
            else [round(float(v), 6) for v in self.target_prior],
            "prior_power": {m: round(float(b), 6) for m, b in self.prior_power.items()},
        }
        if self.info:
            out["info"] = self.info
        return out

    # -- applying it, numpy (the torch-free runtime) ----------------------------------------
    def log_target_array(self) -> np.ndarray:
        """:meth:`log_target` in numpy (float32, the same arithmetic)."""
        n = len(self.labels)
        p = np.full(n, 1.0 / n, np.float32) if self.target_prior is None \
            else np.asarray(self.target_prior, np.float32)
        return np.log(p / p.sum())

    def log_proba_array(self, modality: str, logits: np.ndarray) -> np.ndarray:
        """:meth:`log_proba` in numpy: calibrated log-probabilities ``[..., C]``."""
        z = np.asarray(logits, np.float32) / np.float32(self.temperature.get(modality, 1.0))
        prior = self.train_prior.get(modality)
        if prior is not None:
            p = np.asarray(prior, np.float32)
            b = np.float32(self.prior_power.get(modality, 1.0))
            z = z + (self.log_target_array() - b * np.log(p / p.sum()))
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    # -- applying it, torch ---------------------------------------------------------------
    def log_target(self) -> torch.Tensor:
        import torch

        n = len(self.labels)
        p = torch.full((n,), 1.0 / n) if self.target_prior is None \
            else torch.tensor(self.target_prior, dtype=torch.float32)
        return torch.log(p / p.sum())

    def prior_offset(self, modality: str) -> torch.Tensor:
        """``log target - b * log train prior`` ``[C]``: what is added to an expert's scaled
        logits (zeros for an expert with no recorded training prior)."""
        import torch

        prior = self.train_prior.get(modality)
        if prior is None:
            return torch.zeros(len(self.labels))
        p = torch.tensor(prior, dtype=torch.float32)
        b = float(self.prior_power.get(modality, 1.0))
        return self.log_target() - b * torch.log(p / p.sum())

    def log_proba(self, modality: str, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated log-probabilities ``[..., C]`` from an expert's raw logits."""
        import torch.nn.functional as F

        z = logits / float(self.temperature.get(modality, 1.0))
        z = z + self.prior_offset(modality).to(z.dtype)
        return F.log_softmax(z, -1)

    @property
    def is_identity(self) -> bool:
        """No temperature other than 1 and no prior correction: raw softmax experts."""
        return not self.train_prior and all(abs(t - 1.0) < 1e-9
                                            for t in self.temperature.values())


# -- fitting ----------------------------------------------------------------------------
def fit_temperature(logits: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
                    offset: np.ndarray | torch.Tensor | None = None) -> float:
    """The temperature minimising held-out negative log-likelihood (a 1-d convex search in
    ``log T``; bounded to [MIN_T, MAX_T]).

    ``offset`` ``[C]`` is added after the division (``softmax(z / T + offset)``): the prior
    correction of :meth:`ExpertCalibration.log_proba`, so a temperature refitted on a user's
    clips (``mer adapt``) minimises the NLL of the probabilities the model will actually show."""
    import torch

    with torch.enable_grad():
        return _fit_temperature(logits, y, offset)


def _fit_temperature(logits: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
                     offset: np.ndarray | torch.Tensor | None) -> float:
    import torch
    import torch.nn.functional as F

    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    b = torch.zeros(z.shape[-1], dtype=torch.float64) if offset is None \
        else torch.as_tensor(np.asarray(offset), dtype=torch.float64)
    t = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if len(z) == 0:
        raise ValueError("fit_temperature needs at least one held-out row")
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")
    lo, hi = float(np.log(MIN_T)), float(np.log(MAX_T))

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.clamp(lo, hi).exp() + b, t)
        loss.backward()
        return loss

    opt.step(closure)
    value = float(log_t.detach().clamp(lo, hi).exp())
    return value if np.isfinite(value) else 1.0


def fit_prior_power(logits: np.ndarray, y: np.ndarray, prior: list[float],
                    temperature: float = 1.0) -> float:
    """The strength ``b`` of the prior correction ``z / T - b log prior`` that maximises the
    class-balanced log-likelihood of held-out rows (each class weighing the same, as under the
    uniform target prior); bounded to [0, MAX_POWER]."""
    import torch

    with torch.enable_grad():
        return _fit_prior_power(logits, y, prior, temperature)


def _fit_prior_power(logits: np.ndarray, y: np.ndarray, prior: list[float],
                     temperature: float) -> float:
    import torch
    import torch.nn.functional as F

    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64) / float(temperature)
    t = torch.as_tensor(np.asarray(y), dtype=torch.long)
    n = z.shape[1]
    counts = torch.bincount(t, minlength=n).double()
    weight = torch.where(counts > 0, counts.sum() / (counts.clamp_min(1) * (counts > 0).sum()),
                         torch.zeros_like(counts))
    log_p = torch.log(torch.as_tensor(prior, dtype=torch.float64))
    b = torch.ones((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([b], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z - b.clamp(0.0, MAX_POWER) * log_p, t, weight=weight)
        loss.backward()
        return loss

    opt.step(closure)
    value = float(b.detach().clamp(0.0, MAX_POWER))
    return value if np.isfinite(value) else 1.0


def label_prior(y: np.ndarray, n_classes: int, smoothing: float = 1.0) -> list[float]:
    """Class frequencies of training labels (add-``smoothing`` so no class has prior 0)."""
    counts = np.bincount(np.asarray(y, np.int64), minlength=n_classes).astype(np.float64)
    counts += smoothing
    return (counts / counts.sum()).tolist()


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE of the top label's probability: the bin-size-weighted mean gap between confidence
    and accuracy over ``bins`` equal-width confidence bins (Naeini et al., 2015)."""
    probs = np.asarray(probs, np.float64)
    y = np.asarray(y)
    if len(y) == 0:
        return float("nan")
    conf, pred = probs.max(1), probs.argmax(1)
    hit = (pred == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            ece += sel.mean() * abs(hit[sel].mean() - conf[sel].mean())
    return float(ece)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    p = np.asarray(probs, np.float64)[np.arange(len(y)), np.asarray(y)]
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())
