"""Low-rank adapters (LoRA) for the linear layers of a transformer encoder.

Why: tuning a 768-wide encoder's top layers in full would ship 7 MB of int8 per layer, past the
20 MB the whole model may take. A LoRA update ``W + (alpha / r) * B @ A`` with rank ``r`` = 16
needs ``r * (in + out)`` numbers per linear layer instead of ``in * out``: about 0.7 M
parameters (1.3 MB in float16) for three MPNet layers. Training wraps each ``nn.Linear`` in
:class:`LoRALinear`; a checkpoint stores only ``A`` and ``B``; loading merges them into the
base weights once (:func:`merge_lora`), so inference costs exactly what the base model costs.
"""

from __future__ import annotations

import torch
from torch import nn

LORA_A, LORA_B = "lora_a", "lora_b"


class LoRALinear(nn.Module):
    """``base(x) + scale * x A^T B^T`` with ``base`` frozen; ``B`` starts at zero, so an
    untrained adapter leaves the model exactly as it was."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, not {rank}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_a = nn.Parameter(torch.randn(rank, base.in_features) / base.in_features ** 0.5)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale


def add_lora(module: nn.Module, rank: int, alpha: float, prefix: str = ""
             ) -> dict[str, LoRALinear]:
    """Wrap every ``nn.Linear`` inside ``module`` (in place); return the adapters by the wrapped
    layer's name, ``prefix`` + its path in ``module`` (e.g. ``encoder.layer.9.attention.attn.q``,
    the key of its weight without ``.weight``)."""
    found: dict[str, LoRALinear] = {}
    for parent_name, parent in list(module.named_modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                adapter = LoRALinear(child, rank, alpha)
                setattr(parent, child_name, adapter)
                path = f"{parent_name}.{child_name}" if parent_name else child_name
                found[prefix + path] = adapter
    return found


def lora_tensors(adapters: dict[str, LoRALinear]) -> dict[str, torch.Tensor]:
    """``{name.lora_a: A, name.lora_b: B}``: what a checkpoint stores (detached copies)."""
    out = {}
    for name, a in adapters.items():
        out[f"{name}.{LORA_A}"] = a.lora_a.detach().clone()
        out[f"{name}.{LORA_B}"] = a.lora_b.detach().clone()
    return out


def merge_lora(model: nn.Module, tensors: dict[str, torch.Tensor], scale: float) -> list[str]:
    """Add ``scale * B @ A`` to each adapted ``<name>.weight`` of ``model`` (plain, unwrapped
    ``nn.Linear`` layers); return the merged layer names. Raises ``KeyError`` / ``ValueError``
    when the tensors do not fit the model."""
    params = dict(model.named_parameters())
    names = sorted({k.rsplit(".", 1)[0] for k in tensors})
    with torch.no_grad():
        for name in names:
            a, b = tensors[f"{name}.{LORA_A}"].float(), tensors[f"{name}.{LORA_B}"].float()
            weight = params[f"{name}.weight"]
            if (b.shape[0], a.shape[1]) != tuple(weight.shape) or a.shape[0] != b.shape[1]:
                raise ValueError(f"{name}: adapter {tuple(b.shape)} x {tuple(a.shape)} does not "
                                 f"fit weight {tuple(weight.shape)}")
            weight += scale * (b @ a).to(weight.dtype)
    return names
