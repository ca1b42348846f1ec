"""Small classifier heads over fixed embeddings, and a trainer for them.

The same head serves as each modality's expert (audio alone, text alone, face alone) and is the
last layer of every fusion strategy. Standardisation statistics are buffers inside the module so
a checkpoint is self-contained: no scaler pickled beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .metrics import uar


class Standardize(nn.Module):
    """(x - mean) / std with statistics fitted once on training data and saved as buffers."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: torch.Tensor) -> "Standardize":
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-4))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class UtteranceNorm(nn.Module):
    """Each row z-scored within each of ``blocks`` equal slices of its own values.

    Per utterance by construction: a row's output depends on that row alone, never on a batch,
    a speaker's other clips or the training set. For pooled encoder states (mean and std of each
    layer) a block is one statistic of one layer, so a recording's overall offset and scale
    (studio, microphone gain, a voice's loudness) are removed within each while the shape of the
    profile, where emotion lives, is kept. ``blocks=0`` is the identity.
    """

    def __init__(self, blocks: int = 0) -> None:
        super().__init__()
        self.blocks = int(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.blocks:
            return x
        shape = x.shape
        z = x.reshape(*shape[:-1], self.blocks, shape[-1] // self.blocks)
        z = (z - z.mean(-1, keepdim=True)) / z.std(-1, keepdim=True).clamp_min(1e-6)
        return z.reshape(shape)


class ClassifierHead(nn.Module):
    """[UtteranceNorm] -> Standardize -> [Linear -> GELU -> Dropout] -> Linear.

    ``hidden=0`` gives a linear probe; ``utterance_blocks`` > 0 normalises each input row on its
    own first (:class:`UtteranceNorm`; stored in the model config, so inference does the same).
    """

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256, dropout: float = 0.3,
                 input_dropout: float = 0.1, utterance_blocks: int = 0) -> None:
        super().__init__()
        if utterance_blocks and in_dim % utterance_blocks:
            raise ValueError(f"{in_dim} inputs do not split into {utterance_blocks} blocks")
        self.in_dim, self.n_classes, self.hidden = in_dim, n_classes, hidden
        self.utterance = UtteranceNorm(utterance_blocks)
        self.norm = Standardize(in_dim)
        layers: list[nn.Module] = [nn.Dropout(input_dropout)]
        if hidden:
            layers += [nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                       nn.Linear(hidden, n_classes)]
        else:
            layers += [nn.Linear(in_dim, n_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(self.utterance(x)))

    def spec(self) -> dict[str, int | float]:
        """What a model config records to rebuild this head for inference (dropout is off
        there); ``utterance_blocks`` only when used, so older configs read the same."""
        spec: dict[str, int | float] = {"hidden": self.hidden, "input_dropout": 0.0}
        if self.utterance.blocks:
            spec["utterance_blocks"] = self.utterance.blocks
        return spec


class EarlyStopping:
    """Keep the best-scoring weights; say when ``patience`` epochs in a row brought nothing.

    One helper for every trainer here (expert heads, text head, fusion), so "best epoch on the
    validation split" means the same thing everywhere.
    """

    def __init__(self, module: nn.Module, patience: int) -> None:
        self.module, self.patience = module, patience
        self.best, self.waited, self.state = -float("inf"), 0, None

    def update(self, score: float) -> bool:
        """Record an epoch's validation score; True when training should stop."""
        if score > self.best:
            self.best, self.waited = score, 0
            self.state = {k: v.clone() for k, v in self.module.state_dict().items()}
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self) -> nn.Module:
        """Load the best weights seen (if any epoch was scored) and switch to eval mode."""
        if self.state is not None:
            self.module.load_state_dict(self.state)
        return self.module.eval()


@dataclass
class TrainConfig:
    hidden: int = 256
    dropout: float = 0.3
    input_dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-3
    epochs: int = 200
    batch_size: int = 128
    patience: int = 20
    class_weighted: bool = True
    seed: int = 0
    utterance_blocks: int = 0  # see UtteranceNorm; 0 = off


def train_head(x_train: np.ndarray, y_train: np.ndarray, n_classes: int,
               x_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
               config: TrainConfig | None = None,
               sample_weight: np.ndarray | None = None) -> ClassifierHead:
    """Fit a :class:`ClassifierHead` with AdamW and early stopping on validation UAR.

    Without a validation set it trains for ``config.epochs``. Class weights (inverse frequency)
    make the loss match the UAR we report. ``sample_weight`` (one per training row) replaces
    them when given: e.g. equal weight per (corpus, class) cell, so one large corpus does not
    outvote the others. Deterministic for a given seed.
    """
    cfg = config or TrainConfig()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    xt = torch.as_tensor(x_train, dtype=torch.float32)
    yt = torch.as_tensor(y_train, dtype=torch.long)
    head = ClassifierHead(xt.shape[1], n_classes, cfg.hidden, cfg.dropout, cfg.input_dropout,
                          cfg.utterance_blocks)
    with torch.no_grad():
        head.norm.fit(head.utterance(xt))
    counts = torch.bincount(yt, minlength=n_classes).float()
    weight = None
    if cfg.class_weighted:
        weight = torch.where(counts > 0, counts.sum() / (counts.clamp_min(1) * n_classes),
                             torch.zeros_like(counts))
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    wt = None
    if sample_weight is not None:
        wt = torch.as_tensor(sample_weight, dtype=torch.float32)
        wt = wt / wt.mean()
        per_row = nn.CrossEntropyLoss(reduction="none")
        loss_fn = lambda logits, y, w: (per_row(logits, y) * w).mean()  # noqa: E731
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    stopper = EarlyStopping(head, cfg.patience)
    for _epoch in range(cfg.epochs):
        head.train()
        order = rng.permutation(len(xt))
        for i in range(0, len(order), cfg.batch_size):
            idx = torch.as_tensor(order[i:i + cfg.batch_size])
            opt.zero_grad()
            if wt is None:
                loss_fn(head(xt[idx]), yt[idx]).backward()
            else:
                loss_fn(head(xt[idx]), yt[idx], wt[idx]).backward()
            opt.step()
        if x_val is None or y_val is None:
            continue
        if stopper.update(uar(np.asarray(y_val), predict_proba(head, x_val).argmax(1))):
            break
    stopper.restore()
    return head


@dataclass(frozen=True)
class LinearConfig:
    """A linear probe fitted to convergence (L-BFGS) with an L2 penalty, no early stop.

    Why not :func:`train_head`: early stopping on held-out speakers of the *training* corpora
    picks the epoch that fits those corpora best, which is not the one that carries over to a
    studio and language never heard. A penalised linear model makes no such choice;
    ``C`` is scikit-learn's inverse penalty (with sample weights scaled to sum to the row
    count)."""

    C: float = 3e-3
    max_iter: int = 1000
    utterance_blocks: int = 0  # see UtteranceNorm; 0 = off
    # Given the training rows' groups (corpora), fit on the inputs with the directions along
    # which the groups' class-balanced means differ projected out, so the probe gives those
    # directions zero weight: see group_offset_directions.
    remove_group_offsets: bool = False


def group_offset_directions(z: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Orthonormal columns [D, G-1] spanning the differences between the ``G`` groups' means.

    Each group's mean is the mean of its per-class means (a corpus with more angry clips is not
    "more angry" here, only its recording and voices move its mean). Held out, a corpus is read
    with one offset (nEMO as sad, CASIA as happy: ``bench/speech_corpora.py --confusion``); the
    directions along which the *training* corpora already differ are where a new studio and
    language tend to differ too, so a probe that gives them no weight cannot be moved along
    them. Nothing about the scored clip or its corpus is used: the projection is fixed at fit
    time and folded into the probe's weights (the head is unchanged at inference)."""
    names = np.unique(groups)
    means = []
    for g in names:
        in_g = groups == g
        means.append(np.mean([z[in_g & (y == k)].mean(0) for k in np.unique(y[in_g])], 0))
    offsets = np.stack(means) - np.mean(means, 0)
    _, sv, vt = np.linalg.svd(offsets, full_matrices=False)
    keep = sv > 1e-9 * max(float(sv.max(initial=0.0)), 1e-30)
    return vt[keep][: len(names) - 1].T


def fit_linear_head(x: np.ndarray, y: np.ndarray, n_classes: int,
                    config: LinearConfig | None = None,
                    sample_weight: np.ndarray | None = None,
                    groups: np.ndarray | None = None) -> ClassifierHead:
    """A :class:`ClassifierHead` with ``hidden=0`` holding a fitted multinomial logistic
    regression on standardised inputs (after :class:`UtteranceNorm` when
    ``config.utterance_blocks``: the same module the head applies at inference). A class absent
    from ``y`` gets a logit far below the others (it is never predicted; nothing was learnt
    about it). With ``config.remove_group_offsets`` and ``groups`` (one per row, e.g. the
    corpus), the weights are orthogonal to :func:`group_offset_directions`."""
    from sklearn.linear_model import LogisticRegression

    cfg = config or LinearConfig()
    utterance = UtteranceNorm(cfg.utterance_blocks)
    with torch.no_grad():
        x = utterance(torch.as_tensor(np.asarray(x, np.float32))).numpy().astype(np.float64)
    mean, std = x.mean(0), np.maximum(x.std(0), 1e-4)
    w = None if sample_weight is None else \
        np.asarray(sample_weight, np.float64) * len(y) / float(np.sum(sample_weight))
    z = (x - mean) / std
    nuisance = None
    if cfg.remove_group_offsets and groups is not None and len(np.unique(groups)) > 1:
        nuisance = group_offset_directions(z, np.asarray(y), np.asarray(groups))
        z = z - (z @ nuisance) @ nuisance.T
    lr = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter).fit(z, y, sample_weight=w)
    head = ClassifierHead(x.shape[1], n_classes, hidden=0, dropout=0.0, input_dropout=0.0,
                          utterance_blocks=cfg.utterance_blocks)
    weight = np.zeros((n_classes, x.shape[1]), np.float32)
    bias = np.full(n_classes, -30.0, np.float32)
    coef = lr.coef_ if len(lr.classes_) > 2 else np.vstack([-lr.coef_, lr.coef_]) / 2
    if nuisance is not None:  # exactly blind to them (the fit leaves only rounding there)
        coef = coef - (coef @ nuisance) @ nuisance.T
    inter = lr.intercept_ if len(lr.classes_) > 2 else np.r_[-lr.intercept_, lr.intercept_] / 2
    weight[lr.classes_], bias[lr.classes_] = coef, inter
    with torch.no_grad():
        head.norm.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        head.norm.std.copy_(torch.as_tensor(std, dtype=torch.float32))
        head.net[-1].weight.copy_(torch.from_numpy(weight))
        head.net[-1].bias.copy_(torch.from_numpy(bias))
    return head.eval()


@torch.no_grad()
def predict_proba(head: nn.Module, x: np.ndarray) -> np.ndarray:
    head.eval()
    return torch.softmax(head(torch.as_tensor(x, dtype=torch.float32)), -1).numpy()
