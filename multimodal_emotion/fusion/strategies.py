"""The three fusion strategies.

- ``concat``: feature-level fusion. Standardised embeddings and the mask bits are concatenated
  and an MLP decides; the most expressive, and the one that needs modality dropout most.
- ``sum``: each modality is projected to a common width and the available projections are
  averaged (a masked linear sum), so adding or losing a modality changes the input's size never.
- ``attention``: cross-modal attention. Each modality becomes one token (its pooled embedding)
  plus up to ``seq_tokens`` tokens summarising its sequence over time; a small transformer lets
  every token attend to the other modalities' tokens, with absent ones masked out of attention,
  and a learned query token reads the result.
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
