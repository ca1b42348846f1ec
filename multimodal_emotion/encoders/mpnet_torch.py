"""MPNet (all-mpnet-base-v2) for inference in plain PyTorch, without importing transformers.

Why: the shipped text expert reads all-mpnet-base-v2. Through transformers 5 it cost about
6 s of a 2-core cold start: 1.9 s to import transformers (which pulls in torch.distributed)
and 4.5 s in ``AutoModel.from_pretrained``, most of it initialising 110 M random parameters
that the checkpoint then overwrites. Here the module is built on the ``meta`` device (no
memory, no init) and takes the tensors of ``model.safetensors`` as they are: safetensors maps
the file copy-on-write, so loading costs milliseconds and pages are read at the first forward
pass. The tokenizer is the model's own ``tokenizer.json`` through the ``tokenizers`` library,
which is what transformers' fast tokenizer wraps.

Same numbers: the layers below repeat ``transformers.models.mpnet.modeling_mpnet`` operation by
operation (eager attention: scores / sqrt(d) + relative position bias + additive mask, erf
GELU, post-norm residuals), and the parameter names are MPNetModel's (``encoder.layer.9.
attention.attn.q.weight`` ...), so the LoRA merge and the tuned-layer checkpoints of
:class:`~.text.HFTextEncoder` apply unchanged. ``tests/test_mpnet_torch.py`` checks token ids
and hidden states against transformers. Inference only: there is no dropout, so training
(``training/text_encoder.py``) keeps the transformers model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

PADDING_IDX = 1  # MPNet's <pad>; position ids count from PADDING_IDX + 1, as in fairseq
# Modules are built here, without memory or random init, then take the checkpoint's tensors.
_META = torch.device("meta")


def _linear(n_in: int, n_out: int) -> nn.Linear:
    return nn.Linear(n_in, n_out, device=_META)


def _norm(n: int, eps: float) -> nn.LayerNorm:
    return nn.LayerNorm(n, eps=eps, device=_META)


def _embedding(n: int, dim: int, padding_idx: int | None = None) -> nn.Embedding:
    # a given weight skips the normal_ init, which on meta tensors imports torch._dynamo (3 s)
    return nn.Embedding(n, dim, padding_idx=padding_idx,
                        _weight=torch.empty(n, dim, device=_META))


@dataclass(frozen=True)
class MPNetShape:
    """The numbers from ``config.json`` that fix the architecture."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    relative_attention_num_buckets: int
    layer_norm_eps: float

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "MPNetShape":
        if cfg.get("model_type") != "mpnet":
            raise ModelError(f"not an MPNet config (model_type {cfg.get('model_type')!r})")
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise ModelError(f"MPNet with activation {cfg['hidden_act']!r} is not supported")
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__})


class _SelfAttention(nn.Module):
    def __init__(self, s: MPNetShape) -> None:
        super().__init__()
        self.heads, self.head_dim = s.num_attention_heads, s.hidden_size // s.num_attention_heads
        self.q = _linear(s.hidden_size, s.hidden_size)
        self.k = _linear(s.hidden_size, s.hidden_size)
        self.v = _linear(s.hidden_size, s.hidden_size)
        self.o = _linear(s.hidden_size, s.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None,
                bias: torch.Tensor) -> torch.Tensor:
        shape = (*x.shape[:-1], -1, self.head_dim)
        q = self.q(x).view(shape).transpose(1, 2)
        k = self.k(x).view(shape).transpose(1, 2)
        v = self.v(x).view(shape).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores += bias
        if mask is not None:
            scores = scores + mask
        c = torch.matmul(F.softmax(scores, dim=-1), v)
        c = c.permute(0, 2, 1, 3).contiguous()
        return self.o(c.view(*c.shape[:-2], -1))


class _Attention(nn.Module):
    def __init__(self, s: MPNetShape) -> None:
        super().__init__()
        self.attn = _SelfAttention(s)
        self.LayerNorm = _norm(s.hidden_size, s.layer_norm_eps)


class _Dense(nn.Module):
    """A holder named like transformers' ``intermediate`` / ``output`` blocks."""

    def __init__(self, n_in: int, n_out: int, eps: float | None = None) -> None:
        super().__init__()
        self.dense = _linear(n_in, n_out)
        if eps is not None:
            self.LayerNorm = _norm(n_out, eps)


class _Layer(nn.Module):
    def __init__(self, s: MPNetShape) -> None:
        super().__init__()
        self.attention = _Attention(s)
        self.intermediate = _Dense(s.hidden_size, s.intermediate_size)
        self.output = _Dense(s.intermediate_size, s.hidden_size, s.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None,
                bias: torch.Tensor) -> torch.Tensor:
        a = self.attention.LayerNorm(self.attention.attn(x, mask, bias) + x)
        h = F.gelu(self.intermediate.dense(a))
        return self.output.LayerNorm(self.output.dense(h) + a)


class _Embeddings(nn.Module):
    def __init__(self, s: MPNetShape) -> None:
        super().__init__()
        self.word_embeddings = _embedding(s.vocab_size, s.hidden_size, PADDING_IDX)
        self.position_embeddings = _embedding(s.max_position_embeddings, s.hidden_size,
                                              PADDING_IDX)
        self.LayerNorm = _norm(s.hidden_size, s.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        keep = input_ids.ne(PADDING_IDX).int()
        positions = (torch.cumsum(keep, dim=1).type_as(keep) * keep).long() + PADDING_IDX
        return self.LayerNorm(self.word_embeddings(input_ids)
                              + self.position_embeddings(positions))


class _Encoder(nn.Module):
    def __init__(self, s: MPNetShape) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(s) for _ in range(s.num_hidden_layers))
        self.relative_attention_bias = _embedding(s.relative_attention_num_buckets,
                                                  s.num_attention_heads)
        self.buckets = s.relative_attention_num_buckets

    def position_bias(self, batch: int, length: int, device: torch.device) -> torch.Tensor:
        """[batch, heads, length, length] from the relative position buckets (T5-style)."""
        pos = torch.arange(length, dtype=torch.long, device=device)
        n = -(pos[None, :] - pos[:, None])
        half = self.buckets // 2
        ret = (n < 0).to(torch.long) * half
        n = torch.abs(n)
        max_exact = half // 2
        large = max_exact + (torch.log(n.float() / max_exact) / math.log(128 / max_exact)
                             * (half - max_exact)).to(torch.long)
        large = torch.min(large, torch.full_like(large, half - 1))
        ret += torch.where(n < max_exact, n, large)
        values = self.relative_attention_bias(ret).permute([2, 0, 1]).unsqueeze(0)
        return values.expand((batch, -1, length, length)).contiguous()


class MPNetEncoderModel(nn.Module):
    """MPNetModel's ``last_hidden_state`` (no pooler: sentence embeddings mean-pool tokens).

    Built on the ``meta`` device: its parameters are placeholders until :func:`load_mpnet`
    assigns the checkpoint's tensors."""

    def __init__(self, shape: MPNetShape) -> None:
        super().__init__()
        self.shape = shape
        self.embeddings = _Embeddings(shape)
        self.encoder = _Encoder(shape)

    @property
    def hidden_size(self) -> int:
        return self.shape.hidden_size

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embeddings(input_ids)
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            # transformers' eager mask: 0 where a key may be attended, the dtype's minimum not
            mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) \
                * torch.finfo(x.dtype).min
        bias = self.encoder.position_bias(x.shape[0], x.shape[1], x.device)
        for layer in self.encoder.layer:
            x = layer(x, mask, bias)
        return x


def load_mpnet(folder: str | Path) -> MPNetEncoderModel:
    """The encoder from a folder with ``config.json`` and ``model.safetensors`` (a
    sentence-transformers / transformers MPNet export), weights memory-mapped, in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        shape = MPNetShape.from_config(json.loads((folder / "config.json").read_text()))
        state = load_file(str(folder / "model.safetensors"))
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"cannot load MPNet from {folder}: {exc}") from exc
    state = {k.removeprefix("mpnet."): v for k, v in state.items()}
    model = MPNetEncoderModel(shape)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    bad = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or bad:
        raise ModelError(f"{folder}/model.safetensors does not fit MPNet: missing "
                         f"{missing[:3]}, wrong shape {bad[:3]}")
    model.load_state_dict({k: state[k].float() for k in own}, assign=True)
    return model.eval().requires_grad_(False)


class MPNetTokenizer:
    """``tokenizer.json`` through ``tokenizers``, called like transformers' fast tokenizer with
    ``padding=True, truncation=True, max_length=..., return_tensors="pt"``: pad to the longest
    text of the batch with ``<pad>``, cut at ``max_length`` tokens (special tokens included)."""

    def __init__(self, folder: str | Path) -> None:
        from tokenizers import Tokenizer

        path = Path(folder) / "tokenizer.json"
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises its own Exception type
            raise ModelError(f"cannot load tokenizer {path}: {exc}") from exc
        pad_id = self._tok.token_to_id("<pad>")
        if pad_id != PADDING_IDX:
            raise ModelError(f"{path} is not an MPNet tokenizer (<pad> is {pad_id}, not "
                             f"{PADDING_IDX})")
        self._tok.no_padding()  # the file pads to 128; transformers pads to the longest text
        self._tok.enable_padding(pad_id=PADDING_IDX, pad_token="<pad>")
        self._max_length: int | None = None

    def __call__(self, texts: list[str], max_length: int = 512, **_: Any
                 ) -> dict[str, torch.Tensor]:
        if max_length != self._max_length:
            self._tok.enable_truncation(max_length=max_length)
            self._max_length = max_length
        enc = self._tok.encode_batch(texts)
        return {"input_ids": torch.tensor([e.ids for e in enc], dtype=torch.long),
                "attention_mask": torch.tensor([e.attention_mask for e in enc],
                                               dtype=torch.long)}
