"""Train one row of a comparison on one split: a fusion strategy, a single modality, or the
classic reference (feature statistics + SVM).

Everything a run may choose (the stopping epoch, the SVM's C) is chosen on the validation
speakers; the trainer is handed the training and validation rows only and scores the test rows
once, after training, so test speakers cannot influence it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import fusion as fusion_registry
from ..fusion.strategies import fit_modality_weights, weighted_product
from ..heads import EarlyStopping
from .config import TrainSettings
from .data import ModalityData
from .metrics import uar

Tensors = dict[str, torch.Tensor]


@dataclass
class RunOutput:
    """What one trained row gives back: test probabilities (all modalities, and with each
    modality dropped in turn), the learning curves and the stopping point."""

    test_proba: np.ndarray
    missing_proba: dict[str, np.ndarray] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    val_uar: float = 0.0
    chosen: dict[str, Any] = field(default_factory=dict)


class _Batcher:
    """Modalities as tensors, indexable by row, with the attention sequences when used."""

    def __init__(self, mods: dict[str, ModalityData], use_seq: bool,
                 fit_rows: np.ndarray | None = None, clip_sigma: float | None = None) -> None:
        self.names = list(mods)
        self.x = {m: torch.from_numpy(_clipped(d, fit_rows, clip_sigma))
                  for m, d in mods.items()}
        self.avail = torch.from_numpy(np.stack([d.available for d in mods.values()], 1))
        self.seq = {m: (torch.from_numpy(d.seq.astype(np.float32)),
                        torch.from_numpy(d.seq_valid))
                    for m, d in mods.items() if use_seq and d.seq is not None}

    def get(self, rows: np.ndarray, mask: torch.Tensor | None = None
            ) -> tuple[Tensors, torch.Tensor, dict | None]:
        idx = torch.from_numpy(rows)
        mask = self.avail[idx] if mask is None else mask
        emb = {m: v[idx] * mask[:, i:i + 1] for i, (m, v) in enumerate(self.x.items())}
        seqs = {m: (s[idx], v[idx] & mask[:, self.names.index(m)][:, None])
                for m, (s, v) in self.seq.items()} or None
        return emb, mask, seqs


def _clipped(d: ModalityData, fit_rows: np.ndarray | None, clip_sigma: float | None
             ) -> np.ndarray:
    """Standardise with the training rows' statistics and clip to +-``clip_sigma``: hand-made
    corpus features (CMU-MOSI's acoustic and facial ones) have outliers hundreds of standard
    deviations out, which would otherwise dominate a small network."""
    x = np.ascontiguousarray(d.x, np.float32)
    if not clip_sigma or fit_rows is None:
        return x
    rows = fit_rows[d.available[fit_rows]]
    mean, std = x[rows].mean(0), x[rows].std(0) + 1e-6
    return np.clip((x - mean) / std, -clip_sigma, clip_sigma).astype(np.float32)


def _modality_dropout(mask: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Drop each available modality with probability ``p``; keep at least one per row."""
    if p <= 0 or mask.shape[1] < 2:
        return mask
    keep = torch.rand(mask.shape, generator=gen) >= p
    out = mask & keep
    empty = ~out.any(1) & mask.any(1)
    if empty.any():
        # restore one originally-available modality at random for rows left with none
        scores = torch.rand(mask.shape, generator=gen) * mask
        out[empty, scores[empty].argmax(1)] = True
    return out


def _class_weights(y: torch.Tensor, n_classes: int, settings: TrainSettings
                   ) -> torch.Tensor | None:
    """Balanced class weights (``n / (k * count)``) when ``settings.class_weighted``."""
    if not settings.class_weighted:
        return None
    counts = torch.bincount(y, minlength=n_classes).float()
    return counts.sum() / (counts.clamp_min(1) * n_classes)


@torch.no_grad()
def _proba(model: nn.Module, batcher: _Batcher, rows: np.ndarray,
           drop: str | None = None) -> np.ndarray:
    model.eval()
    mask = batcher.avail[torch.from_numpy(rows)].clone()
    if drop is not None:
        mask[:, batcher.names.index(drop)] = False
    emb, mask, seqs = batcher.get(rows, mask)
    out = torch.softmax(model(emb, mask, seqs), -1).numpy()
    # Rows left with no modality at all get no answer: uniform, never a fake confident one.
    out[~mask.numpy().any(1)] = 1.0 / out.shape[1]
    return out


def _build(strategy: str, mods: dict[str, ModalityData], n_classes: int,
           settings: TrainSettings, options: dict[str, Any] | None, seed: int
           ) -> tuple[nn.Module, bool]:
    torch.manual_seed(seed)  # initial weights depend on the seed only
    opts = dict(options or {})
    use_seq = strategy == "attention" and any(d.seq is not None for d in mods.values())
    if strategy in ("concat", "sum"):
        opts.setdefault("width", settings.width)
        opts.setdefault("dropout", settings.dropout)
    if use_seq:
        seq_dims = {m: int(d.seq.shape[2]) for m, d in mods.items() if d.seq is not None}
        opts.setdefault("seq_tokens", int(mods[next(iter(seq_dims))].seq.shape[1]))
        opts["seq_dims"] = seq_dims
    elif strategy == "attention":
        opts["seq_tokens"] = 0
    model = fusion_registry.create(strategy, dims={m: d.dim for m, d in mods.items()},
                                   n_classes=n_classes, **opts)
    return model, use_seq


def _fit(model: nn.Module, batcher: _Batcher, y: np.ndarray, train: np.ndarray,
         val: np.ndarray | None, n_classes: int, settings: TrainSettings, seed: int,
         epochs: int) -> list[dict[str, float]]:
    """Train in place; with ``val``, stop early on validation UAR and keep the best weights."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    emb, mask, seqs = batcher.get(train)
    model.fit_normalisation(emb, mask)
    if seqs and hasattr(model, "fit_sequence_normalisation"):
        model.fit_sequence_normalisation(seqs)
    yt = torch.from_numpy(np.asarray(y, np.int64))
    weight = _class_weights(yt[train], n_classes, settings)
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=settings.label_smoothing)
    eval_loss = nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                            weight_decay=settings.weight_decay)
    stopper = EarlyStopping(model, settings.patience)
    history: list[dict[str, float]] = []
    for epoch in range(epochs):
        model.train()
        order = train[rng.permutation(len(train))]
        total, seen = 0.0, 0
        for i in range(0, len(order), settings.batch_size):
            rows = order[i:i + settings.batch_size]
            base = batcher.avail[torch.from_numpy(rows)]
            emb, mask, seqs = batcher.get(rows, _modality_dropout(base, settings.modality_dropout,
                                                                  gen))
            loss = model.loss(emb, mask, seqs, yt[torch.from_numpy(rows)], loss_fn)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, seen = total + loss.item() * len(rows), seen + len(rows)
        if val is None:
            history.append({"epoch": epoch + 1, "train_loss": total / max(seen, 1)})
            continue
        val_p = _proba(model, batcher, val)
        val_uar = uar(y[val], val_p.argmax(1))
        val_loss = float(eval_loss(torch.log(torch.from_numpy(val_p).clamp_min(1e-8)),
                                   yt[torch.from_numpy(val)]))
        history.append({"epoch": epoch + 1, "train_loss": total / max(seen, 1),
                        "val_loss": val_loss, "val_uar": val_uar})
        if stopper.update(val_uar):
            break
    if val is not None:
        stopper.restore()
    return history


def train_neural(strategy: str, mods: dict[str, ModalityData], y: np.ndarray,
                 train: np.ndarray, val: np.ndarray, test: np.ndarray, n_classes: int,
                 settings: TrainSettings, seed: int, options: dict[str, Any] | None = None,
                 missing: bool = False) -> RunOutput:
    """Train ``strategy`` (a fusion name) over ``mods`` and score ``test``.

    Early stopping on the validation speakers picks the epoch count. With ``settings.refit``
    a fresh model then trains on training + validation speakers for exactly that many epochs
    (no further choice is made, and the test speakers are still unseen), so the final model
    learns from every training speaker. A single modality is the same strategy with one input
    (``concat`` over one modality is an MLP head), so unimodal and fused rows differ only in
    what they see.
    """
    torch.set_num_threads(max(1, settings.threads))
    model, use_seq = _build(strategy, mods, n_classes, settings, options, seed)
    batcher = _Batcher(mods, use_seq, train, settings.clip_sigma)
    history = _fit(model, batcher, y, train, val, n_classes, settings, seed, settings.epochs)
    best = int(np.argmax([h["val_uar"] for h in history])) + 1
    val_best = max(h["val_uar"] for h in history)
    emb, mask, _ = batcher.get(val)
    calibrated = model.calibrate(emb, mask, torch.from_numpy(np.asarray(y[val], np.int64)))
    if settings.refit:
        model, _ = _build(strategy, mods, n_classes, settings, options, seed)
        _fit(model, batcher, y, np.concatenate([train, val]), None, n_classes, settings, seed,
             best)
        model.load_state_dict(calibrated, strict=False)
    out = RunOutput(_proba(model, batcher, test), history=history, best_epoch=best,
                    val_uar=float(val_best), chosen={"epochs": best,
                                                     "refit": bool(settings.refit)})
    if missing and len(mods) > 1:
        out.missing_proba = {m: _proba(model, batcher, test, drop=m) for m in mods}
    return out


LATE_CS = (0.001, 0.01, 0.1, 1.0)


def _fit_linear_experts(model: nn.Module, batcher: _Batcher, yt: torch.Tensor,
                        rows: np.ndarray, c_by_modality: dict[str, float], n_classes: int,
                        settings: TrainSettings) -> None:
    """Standardise on ``rows`` (cheap: a mean and a std), then solve each modality's linear
    expert (a ``LateFusion``'s classifiers) on its available rows with its ``C``; shared by
    ``late`` and ``product``."""
    emb, mask, _ = batcher.get(rows)
    model.fit_normalisation(emb, mask)
    weight = _class_weights(yt[rows], n_classes, settings)
    for i, m in enumerate(model.modalities):
        have = mask[:, i]
        if have.sum() >= 2:
            model.fit_classifier(m, emb[m][have], yt[rows][have],
                                 l2=1.0 / (2.0 * c_by_modality[m] * int(have.sum())),
                                 class_weight=weight)


def train_late(mods: dict[str, ModalityData], y: np.ndarray, train: np.ndarray,
               val: np.ndarray, test: np.ndarray, n_classes: int, settings: TrainSettings,
               seed: int, options: dict[str, Any] | None = None, missing: bool = False,
               cs: tuple[float, ...] = LATE_CS) -> RunOutput:
    """Train the ``late`` strategy: one logistic-regression expert per modality, fused as a
    weighted product, every choice made on the validation speakers.

    For each modality and each inverse penalty ``C`` (scikit-learn's convention: L2 weight
    ``1 / (2 C n)``) an expert is fitted on the training speakers; for every combination of
    ``C``s the modality weights are fitted on the validation speakers
    (:func:`~multimodal_emotion.fusion.strategies.fit_modality_weights`) and the combination
    whose fused validation log-loss is lowest wins (log-loss, not UAR: on a few hundred
    validation clips UAR moves in coarse steps and ties often; on RAVDESS with Whisper tiny.en
    choosing by UAR gave 83.8 % test UAR against 84.0 % by log-loss). The experts are then
    refitted on training + validation speakers with those ``C``s and keep the
    validation-fitted weights; test speakers are only scored. The result is an ordinary
    ``LateFusion`` module, saved and run like any other.
    """
    torch.set_num_threads(max(1, settings.threads))
    model, _ = _build("late", mods, n_classes, settings, options, seed)
    batcher = _Batcher(mods, False, train, settings.clip_sigma)
    yt = torch.from_numpy(np.asarray(y, np.int64))

    def fit_experts(rows: np.ndarray, cs_by_modality: dict[str, float]) -> None:
        _fit_linear_experts(model, batcher, yt, rows, cs_by_modality, n_classes, settings)

    emb_val, mask_val, _ = batcher.get(val)
    y_val = yt[torch.from_numpy(val)]
    val_log_p: dict[tuple[str, float], torch.Tensor] = {}
    for c in cs:
        fit_experts(train, dict.fromkeys(model.modalities, c))
        model.eval()
        with torch.no_grad():
            lp = model.unimodal_log_proba(emb_val, mask_val)
        for i, m in enumerate(model.modalities):
            val_log_p[m, c] = lp[:, i]
    history: list[dict[str, Any]] = []
    fitted: list[torch.Tensor] = []
    for combo in itertools.product(cs, repeat=len(model.modalities)):
        choice = dict(zip(model.modalities, combo))
        lp = torch.stack([val_log_p[m, c] for m, c in choice.items()], 1)
        log_w = fit_modality_weights(lp, mask_val, y_val)
        fused = weighted_product(lp, log_w, mask_val)
        history.append({"C": choice, "val_uar": uar(y[val], fused.argmax(1).numpy()),
                        "val_loss": float(F.cross_entropy(fused, y_val))})
        fitted.append(log_w)
    best = min(range(len(history)), key=lambda i: history[i]["val_loss"])
    choice, log_w = history[best]["C"], fitted[best]
    fit_experts(np.concatenate([train, val]) if settings.refit else train, choice)
    with torch.no_grad():
        model.log_weights.copy_(log_w)
    out = RunOutput(_proba(model, batcher, test), val_uar=float(history[best]["val_uar"]),
                    chosen={"C": choice, "weights": dict(zip(model.modalities,
                                                             log_w.exp().tolist())),
                            "val_by_C": history, "refit": bool(settings.refit)})
    if missing and len(mods) > 1:
        out.missing_proba = {m: _proba(model, batcher, test, drop=m) for m in mods}
    return out


def train_product(mods: dict[str, ModalityData], y: np.ndarray, train: np.ndarray,
                  val: np.ndarray, test: np.ndarray, n_classes: int, settings: TrainSettings,
                  seed: int, options: dict[str, Any] | None = None, missing: bool = False,
                  cs: tuple[float, ...] = LATE_CS) -> RunOutput:
    """Train the ``product`` strategy exactly as the shipped model is built, on paired data:

    1. one logistic-regression expert per modality on the training speakers, its ``C`` chosen
       *per modality* by that expert's own validation log-loss (an expert is judged alone, as
       the shipped experts are trained on their own corpora);
    2. each expert's temperature fitted on the validation speakers; its training prior is
       uniform (the experts are class-weighted, as ``settings.class_weighted`` says) or the
       training labels' frequencies;
    3. the product's modality weights fitted on the validation speakers' paired rows
       (:func:`~multimodal_emotion.fusion.product.fit_weights`);
    4. experts refitted on training + validation speakers with the chosen ``C``s (when
       ``settings.refit``), temperatures and weights kept; test speakers are only scored.
    With one modality present the answer is that expert's calibrated answer, by construction.
    """
    from ..calibration import ExpertCalibration, fit_temperature, label_prior
    from ..fusion.product import combine, fit_weights

    torch.set_num_threads(max(1, settings.threads))
    model, _ = _build("late", mods, n_classes, settings, options, seed)  # its experts
    batcher = _Batcher(mods, False, train, settings.clip_sigma)
    yt = torch.from_numpy(np.asarray(y, np.int64))
    names = list(model.modalities)

    def fit_experts(rows: np.ndarray, c_by_modality: dict[str, float]) -> None:
        _fit_linear_experts(model, batcher, yt, rows, c_by_modality, n_classes, settings)

    def expert_log_p(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        emb, mask, _ = batcher.get(rows)
        model.eval()
        with torch.no_grad():
            return model.unimodal_log_proba(emb, mask), mask

    emb_val, mask_val, _ = batcher.get(val)
    y_val = yt[torch.from_numpy(val)]
    best: dict[str, tuple[float, float]] = {}
    val_by_c: list[dict[str, Any]] = []
    for c in cs:
        fit_experts(train, dict.fromkeys(names, c))
        lp, mask = expert_log_p(val)
        for i, m in enumerate(names):
            have = mask[:, i]
            if not have.any():
                continue
            loss = float(F.nll_loss(lp[have, i], y_val[have]))
            val_by_c.append({"modality": m, "C": c, "val_loss": loss})
            if m not in best or loss < best[m][1]:
                best[m] = (c, loss)
    choice = {m: best.get(m, (cs[0], 0.0))[0] for m in names}
    fit_experts(train, choice)
    lp, mask = expert_log_p(val)
    temps = {m: fit_temperature(lp[mask[:, i], i].numpy(), y_val[mask[:, i]].numpy())
             if mask[:, i].any() else 1.0 for i, m in enumerate(names)}
    priors = {} if settings.class_weighted else {
        m: label_prior(y[train], n_classes) for m in names}
    cal = ExpertCalibration([str(i) for i in range(n_classes)], temps, priors)

    def calibrated(log_p: torch.Tensor) -> torch.Tensor:
        return torch.stack([cal.log_proba(m, log_p[:, i]) for i, m in enumerate(names)], 1)

    log_target = cal.log_target()
    weights = fit_weights(calibrated(lp), mask, y_val, log_target)
    fused_val = combine(calibrated(lp), mask, log_target, weights)
    val_uar = uar(y[val], fused_val.argmax(1).numpy())
    if settings.refit:
        fit_experts(np.concatenate([train, val]), choice)

    def test_proba(drop: str | None = None) -> np.ndarray:
        lp_t, mask_t = expert_log_p(test)
        if drop is not None:
            mask_t = mask_t.clone()
            mask_t[:, names.index(drop)] = False
        out = combine(calibrated(lp_t), mask_t, log_target, weights).exp().numpy()
        out[~mask_t.numpy().any(1)] = 1.0 / n_classes  # no modality: no answer
        return out

    out = RunOutput(test_proba(), val_uar=float(val_uar),
                    chosen={"C": choice, "temperature": temps,
                            "weights": dict(zip(names, weights.tolist())),
                            "val_by_C": val_by_c, "refit": bool(settings.refit)})
    if missing and len(mods) > 1:
        out.missing_proba = {m: test_proba(drop=m) for m in mods}
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _choose_c(make: Callable[[float], Any], scores: Callable[[Any, np.ndarray], np.ndarray],
              x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray,
              test: np.ndarray, cs: tuple[float, ...]) -> RunOutput:
    """Fit a standardised scikit-learn classifier for each C, keep the one with the best
    validation UAR, and score the test rows with it once."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.nan_to_num(np.asarray(x, np.float64))
    history, best = [], (-1.0, None, None)
    for c in cs:
        clf = make_pipeline(StandardScaler(), make(c)).fit(x[train], y[train])
        score = uar(y[val], scores(clf, x[val]).argmax(1))
        history.append({"C": c, "val_uar": score})
        if score > best[0]:
            best = (score, c, clf)
    return RunOutput(scores(best[2], x[test]), val_uar=best[0],
                     chosen={"C": best[1], "val_by_C": history})


def train_svm(x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray,
              test: np.ndarray, n_classes: int, seed: int,
              cs: tuple[float, ...] = (0.1, 1.0, 10.0)) -> RunOutput:
    """Standardised features + RBF SVM (class-balanced), C chosen on validation UAR.

    Scores for ROC-AUC are the softmax of the one-vs-rest decision values: a ranking, not a
    calibrated probability, which is all AUC needs.
    """
    from sklearn.svm import SVC

    def scores(clf: Any, rows: np.ndarray) -> np.ndarray:
        d = clf.decision_function(rows)
        return _softmax(np.stack([-d, d], 1) / 2 if d.ndim == 1 else d)

    return _choose_c(lambda c: SVC(C=c, kernel="rbf", class_weight="balanced",
                                   decision_function_shape="ovr", random_state=seed),
                     scores, x, y, train, val, test, cs)


def train_logreg(x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray,
                 test: np.ndarray, n_classes: int, seed: int,
                 cs: tuple[float, ...] = (0.01, 0.1, 1.0)) -> RunOutput:
    """The linear probe: standardised features + multinomial logistic regression, C chosen on
    validation UAR. Trained fusion has to beat this to be worth its parameters."""
    from sklearn.linear_model import LogisticRegression

    return _choose_c(lambda c: LogisticRegression(C=c, max_iter=2000, class_weight="balanced"),
                     lambda clf, rows: clf.predict_proba(rows), x, y, train, val, test, cs)
