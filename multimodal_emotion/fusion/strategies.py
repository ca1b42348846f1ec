"""The three fusion strategies.

- ``concat``: feature-level fusion. Standardised embeddings and the mask bits are concatenated
  and an MLP decides; the most expressive, and the one that needs modality dropout most.
- ``sum``: each modality is projected to a common width and the available projections are
  averaged (a masked linear sum), so adding or losing a modality changes the input's size never.
- ``attention``: cross-modal attention. Each modality becomes one token (its pooled embedding)
  plus up to ``seq_tokens`` tokens summarising its sequence over time; a small transformer lets
  every token attend to the other modalities' tokens, with absent ones masked out of attention,
  and a learned query token reads the result.
- ``late``: decision-level fusion. Each modality has its own classifier, trained on its own
  loss, and the available modalities' log-probabilities are added with learned positive weights
  (a weighted product of experts). Joint training lets the modality that fits the training set
  fastest (speech embeddings) crowd out the others; here none can.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..heads import Standardize
from .base import Embeddings, Fusion


def _mlp_head(in_dim: int, width: int, n_classes: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, width), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(width, n_classes))


class ConcatFusion(Fusion):
    name = "concat"

    def __init__(self, dims: dict[str, int], n_classes: int, width: int = 256,
                 dropout: float = 0.3) -> None:
        super().__init__(dims, n_classes, width, dropout)
        in_dim = sum(dims.values()) + len(dims)
        self.input_dropout = nn.Dropout(0.1)
        self.head = _mlp_head(in_dim, width, n_classes, dropout)

    def fuse(self, embeddings: Embeddings, mask: torch.Tensor, sequences=None) -> torch.Tensor:
        x = self.normalised(embeddings, mask)
        parts = [x[m] for m in self.modalities] + [mask.float()]
        return self.input_dropout(torch.cat(parts, dim=-1))


class SumFusion(Fusion):
    name = "sum"

    def __init__(self, dims: dict[str, int], n_classes: int, width: int = 256,
                 dropout: float = 0.3) -> None:
        super().__init__(dims, n_classes, width, dropout)
        self.proj = nn.ModuleDict({m: nn.Sequential(nn.Dropout(0.1), nn.Linear(d, width))
                                   for m, d in dims.items()})
        self.head = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(width, width),
                                  nn.GELU(), nn.Dropout(dropout), nn.Linear(width, n_classes))

    def fuse(self, embeddings: Embeddings, mask: torch.Tensor, sequences=None) -> torch.Tensor:
        x = self.normalised(embeddings, mask)
        m = mask.float()
        total = sum(self.proj[name](x[name]) * m[:, i:i + 1]
                    for i, name in enumerate(self.modalities))
        return total / m.sum(1, keepdim=True).clamp_min(1.0)


class AttentionFusion(Fusion):
    name = "attention"

    def __init__(self, dims: dict[str, int], n_classes: int, width: int = 128,
                 dropout: float = 0.2, heads: int = 4, layers: int = 2,
                 seq_tokens: int = 4, seq_dims: dict[str, int] | None = None) -> None:
        super().__init__(dims, n_classes, width, dropout)
        self.heads, self.layers, self.seq_tokens = heads, layers, seq_tokens
        # A sequence step can differ in width from the pooled embedding (Whisper: 384-d frames
        # vs. 768-d mean+std), and in scale, so it has its own normalisation and projection.
        self.seq_dims = dict(seq_dims or dims)
        self.proj = nn.ModuleDict({m: nn.Linear(d, width) for m, d in dims.items()})
        self.seq_norms = nn.ModuleDict({m: Standardize(d) for m, d in self.seq_dims.items()})
        self.seq_proj = nn.ModuleDict({m: nn.Linear(d, width) for m, d in self.seq_dims.items()})
        self.modality_embedding = nn.Parameter(torch.randn(len(dims), width) * 0.02)
        self.kind_embedding = nn.Parameter(torch.randn(2, width) * 0.02)  # pooled / sequence
        self.query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width,
                                           dropout=dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(width)
        self.head = _mlp_head(width, width, n_classes, dropout)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "heads": self.heads, "layers": self.layers,
                "seq_tokens": self.seq_tokens, "seq_dims": self.seq_dims}

    def fit_sequence_normalisation(self, sequences: dict[str, tuple[torch.Tensor, torch.Tensor]]
                                   ) -> None:
        """Fit each modality's sequence standardisation on its valid steps only."""
        for m, (seq, valid) in sequences.items():
            steps = seq[valid]
            if len(steps) > 1:
                self.seq_norms[m].fit(steps)

    def fuse(self, embeddings: Embeddings, mask: torch.Tensor,
             sequences: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
             ) -> torch.Tensor:
        x = self.normalised(embeddings, mask)
        batch = mask.shape[0]
        tokens = [self.query.expand(batch, 1, -1)]
        valid = [torch.ones(batch, 1, dtype=torch.bool, device=mask.device)]
        for i, m in enumerate(self.modalities):
            tokens.append((self.proj[m](x[m]) + self.modality_embedding[i]
                           + self.kind_embedding[0]).unsqueeze(1))
            valid.append(mask[:, i:i + 1])
            if sequences and m in sequences and self.seq_tokens:
                seq, seq_valid = sequences[m]
                seq = self.seq_norms[m](seq)
                tokens.append(self.seq_proj[m](seq) + self.modality_embedding[i]
                              + self.kind_embedding[1])
                valid.append(seq_valid & mask[:, i:i + 1])
        h = self.encoder(torch.cat(tokens, 1), src_key_padding_mask=~torch.cat(valid, 1))
        return self.out_norm(h[:, 0])


class LateFusion(Fusion):
    """Decision-level fusion: ``sum_m w_m * log p_m(y | x_m)`` over the available modalities.

    Each modality's classifier (linear by default, an MLP with ``width > 0``) learns from its own
    cross-entropy only, so no modality's gradient can crowd out another's (in joint training on
    RAVDESS the speech embedding fits the training speakers almost perfectly and the face is
    largely ignored). The per-modality weights ``w_m`` (positive, start at 1) learn from the fused
    loss with the classifiers' outputs held fixed, and :meth:`calibrate` refits them on held-out
    speakers: a classifier that is sure of itself on the speakers it trained on is less so on new
    ones, by a different amount per modality. A missing modality adds nothing, so the answer is
    the product of the experts that are there.
    """

    name = "late"

    def __init__(self, dims: dict[str, int], n_classes: int, width: int = 0,
                 dropout: float = 0.3) -> None:
        super().__init__(dims, n_classes, width, dropout)
        self.classifiers = nn.ModuleDict({
            m: (nn.Sequential(nn.Dropout(dropout), nn.Linear(d, n_classes)) if width <= 0 else
                nn.Sequential(nn.Dropout(0.1), _mlp_head(d, width, n_classes, dropout)))
            for m, d in dims.items()})
        self.log_weights = nn.Parameter(torch.zeros(len(dims)))
        self.head = nn.Identity()

    def unimodal_log_proba(self, embeddings: Embeddings, mask: torch.Tensor) -> torch.Tensor:
        """``[B, M, C]`` log-probabilities of each modality's own classifier."""
        x = self.normalised(embeddings, mask)
        return torch.stack([F.log_softmax(self.classifiers[m](x[m]), -1)
                            for m in self.modalities], 1)

    def fuse(self, embeddings: Embeddings, mask: torch.Tensor, sequences=None) -> torch.Tensor:
        return weighted_product(self.unimodal_log_proba(embeddings, mask), self.log_weights,
                                mask)

    def loss(self, embeddings: Embeddings, mask: torch.Tensor, sequences, y: torch.Tensor,
             loss_fn) -> torch.Tensor:
        log_p = self.unimodal_log_proba(embeddings, mask)
        total = loss_fn(weighted_product(log_p.detach(), self.log_weights, mask), y)
        for i in range(len(self.modalities)):
            rows = mask[:, i]
            if rows.any():
                total = total + loss_fn(log_p[rows, i], y[rows])
        return total

    @torch.enable_grad()
    def fit_classifier(self, modality: str, x: torch.Tensor, y: torch.Tensor, l2: float,
                       class_weight: torch.Tensor | None = None, max_iter: int = 300) -> None:
        """Fit one modality's linear classifier to the optimum of its L2-penalised (class-
        weighted) cross-entropy: multinomial logistic regression, solved by L-BFGS.

        ``x`` is raw (the fitted standardisation is applied here), the rows where the modality
        is available. Mini-batch training with early stopping stops short of this optimum, and
        late fusion is sensitive to it: how sure each expert is on new speakers decides how the
        product weighs them, and a strongly penalised linear expert is better behaved there.
        """
        if self.width > 0:
            raise ValueError("fit_classifier solves the linear case (width=0) only")
        linear = self.classifiers[modality][-1]
        xs = self.norms[modality](x).detach()
        with torch.no_grad():
            linear.weight.zero_()
            linear.bias.zero_()
        opt = torch.optim.LBFGS(list(linear.parameters()), lr=1.0, max_iter=max_iter,
                                tolerance_grad=1e-6, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(linear(xs), y, weight=class_weight) \
                + l2 * linear.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)

    def calibrate(self, embeddings: Embeddings, mask: torch.Tensor, y: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
        """Refit the modality weights on held-out rows (see :func:`fit_modality_weights`)."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            log_p = self.unimodal_log_proba(embeddings, mask)
            self.log_weights.copy_(fit_modality_weights(log_p, mask, y,
                                                        self.log_weights.detach()))
        self.train(was_training)
        return {"log_weights": self.log_weights.detach().clone()}


def weighted_product(log_p: torch.Tensor, log_w: torch.Tensor, mask: torch.Tensor
                     ) -> torch.Tensor:
    """Fused logits ``sum_m w_m log p_m`` over the available modalities (``log_p``
    ``[B, M, C]``, ``log_w`` ``[M]``, ``mask`` ``[B, M]``): the product of experts, in logs."""
    w = log_w.exp() * mask.to(log_p.dtype)
    return (w.unsqueeze(-1) * log_p).sum(1)


@torch.enable_grad()
def fit_modality_weights(log_p: torch.Tensor, mask: torch.Tensor, y: torch.Tensor,
                         init: torch.Tensor | None = None) -> torch.Tensor:
    """``log w`` minimising the negative log-likelihood of ``softmax(sum_m w_m log p_m)`` on
    held-out rows, every expert fixed (``log_p`` ``[B, M, C]``, ``mask`` ``[B, M]``); convex in
    ``w``, solved by L-BFGS, clamped to ``w`` in [e^-5, e^3]."""
    start = torch.zeros(log_p.shape[1]) if init is None else init.detach().clone()
    log_w = start.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([log_w], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        # clamped inside the objective too: a long line-search step would otherwise overflow
        # exp(log w) to inf, and inf x 0 for a masked modality is NaN
        nll = F.cross_entropy(weighted_product(log_p, log_w.clamp(-5.0, 3.0), mask), y)
        nll.backward()
        return nll

    opt.step(closure)
    out = log_w.detach().clamp(-5.0, 3.0)
    # a search that still broke down leaves the weights where they started, never NaN
    return out if torch.isfinite(out).all() else start.clamp(-5.0, 3.0)


def pool_sequence(seq: torch.Tensor, tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average a ``[T, D]`` sequence into at most ``tokens`` contiguous chunks.

    Returns ``([tokens, D], valid[tokens])``: a sequence shorter than ``tokens`` fills the first
    ``T`` slots and marks the rest invalid instead of repeating frames.
    """
    t = seq.shape[0]
    out = torch.zeros(tokens, seq.shape[1], dtype=seq.dtype)
    valid = torch.zeros(tokens, dtype=torch.bool)
    if t == 0:
        return out, valid
    if t <= tokens:
        out[:t], valid[:t] = seq, True
        return out, valid
    out[:] = F.adaptive_avg_pool1d(seq.T.unsqueeze(0), tokens)[0].T
    valid[:] = True
    return out, valid


def pool_sequences(seqs: list, tokens: int) -> tuple:
    """:func:`pool_sequence` over many ``[T, D]`` arrays: ``([N, tokens, D], valid[N, tokens])``
    as float32 / bool NumPy arrays, exactly as inference pools one clip."""
    pairs = [pool_sequence(torch.as_tensor(s, dtype=torch.float32), tokens) for s in seqs]
    return (torch.stack([p[0] for p in pairs]).numpy(), torch.stack([p[1] for p in pairs]).numpy())
