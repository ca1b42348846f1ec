"""What all fusion strategies share: per-modality input normalisation and the softmax head."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..heads import Standardize

Embeddings = dict[str, torch.Tensor]


class Fusion(nn.Module):
    """Base class. Subclasses implement :meth:`fuse` returning ``[B, out_dim]``; the head maps that
    to logits. ``dims`` fixes the modality order used by the mask's columns."""

    name = "base"
    decision_level = False  # learned from embeddings, not a combination of experts' answers
    # With one modality present, a learned strategy's answer is its own, not that expert's.
    keeps_single_modality = False

    def __init__(self, dims: dict[str, int], n_classes: int, width: int = 128,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.dims = dict(dims)
        self.modalities = list(dims)
        self.n_classes, self.width, self.dropout = n_classes, width, dropout
        self.norms = nn.ModuleDict({m: Standardize(d) for m, d in dims.items()})

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dims": self.dims, "n_classes": self.n_classes,
                "width": self.width, "dropout": self.dropout}

    def fit_normalisation(self, embeddings: Embeddings, mask: torch.Tensor) -> None:
        """Fit each modality's standardisation on its *available* training rows only."""
        for i, m in enumerate(self.modalities):
            rows = embeddings[m][mask[:, i]]
            if len(rows) > 1:
                self.norms[m].fit(rows)

    def normalised(self, embeddings: Embeddings, mask: torch.Tensor) -> Embeddings:
        """Standardised embeddings with absent modalities set to exactly zero."""
        return {m: self.norms[m](embeddings[m]) * mask[:, i:i + 1].to(embeddings[m].dtype)
                for i, m in enumerate(self.modalities)}

    def fuse(self, embeddings: Embeddings, mask: torch.Tensor,
             sequences: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
             ) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embeddings: Embeddings, mask: torch.Tensor,
                sequences: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
                ) -> torch.Tensor:
        return self.head(self.fuse(embeddings, mask, sequences))

    def loss(self, embeddings: Embeddings, mask: torch.Tensor,
             sequences: dict[str, tuple[torch.Tensor, torch.Tensor]] | None,
             y: torch.Tensor, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
             ) -> torch.Tensor:
        """The training loss for one batch. Trainers call this rather than ``loss_fn(self(...))``
        so a strategy can add terms of its own (``late`` trains each modality's classifier on its
        own loss)."""
        return loss_fn(self(embeddings, mask, sequences), y)

    def calibrate(self, embeddings: Embeddings, mask: torch.Tensor, y: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
        """Fit whatever the strategy sets on held-out data (speakers it was not trained on) and
        return those parameters by name, so a model retrained on more data can take them over.
        Most strategies set nothing; ``late`` fits how much to trust each modality."""
        return {}
