"""The Whisper encoder in PyTorch, with weights read straight from a CTranslate2 ``model.bin``.

Why: CTranslate2 (behind faster-whisper) only returns the *final* encoder layer, but the
intermediate layers of Whisper's encoder carry more paralinguistic information (prosody, voice
quality: what emotion recognition needs) than the last one, which is tuned for the decoder's
phonetic/lexical needs. The packaged model only exists in CTranslate2 form, so rather than ship a
second copy of the weights, this module parses the ``model.bin`` (pure Python + numpy, no
ctranslate2 import) and rebuilds the encoder in ~100 lines of torch that return every layer.

The file format is read by :mod:`.ct2_file`.

Variable names used (Whisper tiny.en, d_model 384, 6 heads, 4 layers; all float16 in the
packaged file), with the openai-whisper module each corresponds to::

    encoder/conv1/{weight [384,80,3], bias}            conv1 (k3, pad 1) + GELU
    encoder/conv2/{weight [384,384,3], bias}           conv2 (k3, stride 2, pad 1) + GELU
    encoder/position_encodings/encodings [1500, 384]   positional_embedding (sinusoids)
    encoder/layer_{i}/self_attention/layer_norm/{gamma,beta}   blocks[i].attn_ln
    encoder/layer_{i}/self_attention/linear_0/{weight [1152,384], bias}
                                                       blocks[i].attn.{query,key,value} fused
                                                       (rows q | k | v; key has no bias in
                                                       Whisper, stored as zeros)
    encoder/layer_{i}/self_attention/linear_1/{weight, bias}   blocks[i].attn.out
    encoder/layer_{i}/ffn/layer_norm/{gamma,beta}      blocks[i].mlp_ln
    encoder/layer_{i}/ffn/linear_0/{weight [1536,384], bias}   blocks[i].mlp[0] (+ GELU)
    encoder/layer_{i}/ffn/linear_1/{weight [384,1536], bias}   blocks[i].mlp[2]
    encoder/layer_norm/{gamma,beta}                    ln_post
    encoder/num_heads (int16 scalar)

Inputs shorter than Whisper's 3000 mel frames: CTranslate2 adds the *first* ``T/2`` positional
encodings (verified numerically against ``WhisperModel.encode``), and so does
:class:`WhisperEncoderTorch`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .ct2_file import read_ct2_file, to_float32

SAMPLE_RATE = 16000
FRAMES_PER_SECOND = 50  # encoder output rate (mel is 100/s, conv2 has stride 2)
LAYER_NORM_EPS = 1e-5  # Whisper's nn.LayerNorm default; CTranslate2 uses the same


# ------------------------------------------------------------------------------- model.bin


def read_ct2_variables(path: str | os.PathLike[str], prefix: str = "encoder/"
                       ) -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 ``model.bin`` whose names start with ``prefix``, as numpy.

    Floating tensors come back as float32 (float16 / bfloat16 upcast, int8 / int16 weights
    divided by their ``<name>_scale``); the ``_scale`` variables themselves are consumed, and
    non-float scalars (``num_heads``) keep their integer type. Variables outside ``prefix`` are
    skipped without being copied, so reading the encoder of a model does not load its decoder.
    """
    model = read_ct2_file(path, prefix)
    raw = {v.name: to_float32(v.array, v.dtype) if v.dtype in ("float16", "bfloat16")
           else v.array.copy() for v in model.variables}
    for alias, target in model.aliases:
        if alias.startswith(prefix) and target in raw:
            raw[alias] = raw[target]
    return _dequantise(raw)


def _dequantise(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fold every ``x_scale`` into ``x`` (int8: per output row; int16: one scalar)."""
    out: dict[str, np.ndarray] = {}
    for name, arr in raw.items():
        if name.endswith("_scale") and name[: -len("_scale")] in raw:
            continue
        scale = raw.get(name + "_scale")
        if scale is not None:
            s = np.asarray(scale, np.float32)
            arr = arr.astype(np.float32) / (s.reshape((-1,) + (1,) * (arr.ndim - 1))
                                            if s.ndim else s)
        out[name] = arr
    return out


# ----------------------------------------------------------------------------------- torch


class _Block(nn.Module):
    """Pre-LN transformer block: x + MHA(LN(x)), then x + MLP(LN(x)) with a GELU MLP."""

    def __init__(self, d: int, heads: int, d_ff: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_ln = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.mlp_ln = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.fc1 = nn.Linear(d, d_ff)
        self.fc2 = nn.Linear(d_ff, d)

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """``keys`` [B, 1, 1, T] bool: which positions each row may attend to (a batch of
        inputs of different lengths; ``None``: all)."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_ln(x)).view(b, t, 3, self.heads, d // self.heads
                                                  ).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)  # softmax(q k^T / sqrt(d)) v
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_ln(x))))


class WhisperEncoderTorch(nn.Module):
    """Whisper's audio encoder returning every layer's hidden states.

    ``forward(mel [B, n_mels, T])`` -> ``n_layers + 1`` tensors [B, T/2, d]: the input of each
    block (index 0 = conv stem + positional encoding) and, last, the final block's output after
    the final layer norm -- the same convention as Hugging Face's ``hidden_states``; the last
    entry is what CTranslate2's ``encode`` returns. ``T`` must be even and at most 3000.
    """

    def __init__(self, n_mels: int, d: int, heads: int, n_layers: int, d_ff: int,
                 n_ctx: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(n_ctx, d))
        self.blocks = nn.ModuleList(_Block(d, heads, d_ff) for _ in range(n_layers))
        self.ln_post = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.n_mels, self.width, self.n_layers, self.n_ctx = n_mels, d, n_layers, n_ctx

    @classmethod
    def from_arrays(cls, v: dict[str, np.ndarray], prefix: str = "encoder/"
                    ) -> "WhisperEncoderTorch":
        """Build from :func:`read_ct2_variables` output (the name mapping is in the module doc)."""
        def t(name: str) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(v[prefix + name], dtype=np.float32))

        n_layers = sum(1 for k in v if k.startswith(prefix) and k.endswith("ffn/linear_0/weight"))
        d, n_mels, _ = v[prefix + "conv1/weight"].shape
        d_ff = v[prefix + "layer_0/ffn/linear_0/weight"].shape[0]
        heads = int(v[prefix + "num_heads"]) if prefix + "num_heads" in v else d // 64
        n_ctx = v[prefix + "position_encodings/encodings"].shape[0]
        with torch.device("meta"):  # no memory and no random init: the state replaces it
            m = cls(n_mels, d, heads, n_layers, d_ff, n_ctx)
        state = {"conv1.weight": t("conv1/weight"), "conv1.bias": t("conv1/bias"),
                 "conv2.weight": t("conv2/weight"), "conv2.bias": t("conv2/bias"),
                 "positions": t("position_encodings/encodings"),
                 "ln_post.weight": t("layer_norm/gamma"), "ln_post.bias": t("layer_norm/beta")}
        for i in range(n_layers):
            p, sa, ff = f"blocks.{i}.", f"layer_{i}/self_attention/", f"layer_{i}/ffn/"
            state.update({
                p + "attn_ln.weight": t(sa + "layer_norm/gamma"),
                p + "attn_ln.bias": t(sa + "layer_norm/beta"),
                p + "qkv.weight": t(sa + "linear_0/weight"), p + "qkv.bias": t(sa + "linear_0/bias"),
                p + "out.weight": t(sa + "linear_1/weight"), p + "out.bias": t(sa + "linear_1/bias"),
                p + "mlp_ln.weight": t(ff + "layer_norm/gamma"),
                p + "mlp_ln.bias": t(ff + "layer_norm/beta"),
                p + "fc1.weight": t(ff + "linear_0/weight"), p + "fc1.bias": t(ff + "linear_0/bias"),
                p + "fc2.weight": t(ff + "linear_1/weight"), p + "fc2.bias": t(ff + "linear_1/bias"),
            })
        m.load_state_dict(state, strict=True, assign=True)
        return m.eval()

    @classmethod
    def from_ct2(cls, model_path: str | os.PathLike[str] | None = None) -> "WhisperEncoderTorch":
        """Load from a CTranslate2 Whisper folder (default: the packaged tiny.en)."""
        from .whisper_models import resolve_whisper_model

        return cls.from_arrays(read_ct2_variables(resolve_whisper_model(model_path)))

    def forward(self, mel: torch.Tensor, upto: int | None = None,
                lengths: list[int] | None = None) -> list[torch.Tensor]:
        """Every layer's states; ``upto=k`` stops after block ``k`` (states 0..k, the last
        without the final layer norm unless ``k`` is the last block): what a caller that reads
        only the first layers need not pay for.

        ``lengths``: each row's own mel length (even) when rows of different lengths share a
        batch, the rest of each row zeros. Row ``i``'s first ``lengths[i] / 2`` states then
        equal those of that row encoded alone (to float rounding): the zeros are what conv1's
        own padding would give, conv2 (stride 2, kernel 3) reads no frame past an even length,
        and attention is kept off the positions past it."""
        if mel.dim() == 2:
            mel = mel[None]
        if mel.shape[-1] % 2 or mel.shape[-1] > 2 * self.n_ctx:
            raise ValueError(f"mel length must be even and <= {2 * self.n_ctx}, "
                             f"got {mel.shape[-1]}")
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]  # short inputs: the first positions, as CTranslate2
        keys = None
        if lengths is not None and any(n != mel.shape[-1] for n in lengths):
            if any(n % 2 or n > mel.shape[-1] for n in lengths):
                raise ValueError(f"lengths must be even and <= {mel.shape[-1]}, got {lengths}")
            half = torch.as_tensor([n // 2 for n in lengths])
            keys = (torch.arange(x.shape[1])[None, :] < half[:, None])[:, None, None, :]
        states = [x]
        last = self.n_layers if upto is None else min(int(upto), self.n_layers)
        for i, block in enumerate(self.blocks[:last]):
            x = block(x, keys)
            states.append(self.ln_post(x) if i == self.n_layers - 1 else x)
        return states


# -------------------------------------------------------------------------------- features


_EXTRACTORS: dict[int, Any] = {}


def whisper_mel(wave: np.ndarray, pad_to_s: float = 10.0, n_mels: int = 80
                ) -> tuple[np.ndarray, int]:
    """Log-mel of one <= 30 s piece exactly as ``WhisperAudioEncoder.encode_chunks`` builds it.

    Returns ``(mel [n_mels, T_even], n_keep)``: the mel zero-padded (in log-mel space, as
    faster-whisper's ``pad_or_trim`` does) to ``pad_to_s`` seconds, and how many 50 frames/s
    encoder outputs cover real audio. Keeping this identical to the shipped encoder is what makes
    per-layer results comparable with its final-layer numbers.
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    fe = _EXTRACTORS.get(n_mels)
    if fe is None:
        fe = _EXTRACTORS[n_mels] = FeatureExtractor(feature_size=n_mels)
    piece = np.ascontiguousarray(wave[: fe.n_samples], dtype=np.float32)
    n_keep = max(1, int(math.ceil(len(piece) / SAMPLE_RATE * FRAMES_PER_SECOND)))
    mel = fe(piece)[:, : 2 * n_keep]
    mel = pad_or_trim(mel, max(mel.shape[1], int(round(min(pad_to_s, 30.0) * 100))))
    if mel.shape[1] % 2:
        mel = np.pad(mel, ((0, 0), (0, 1)))
    return np.ascontiguousarray(mel, dtype=np.float32), n_keep


def layer_frames(encoder: WhisperEncoderTorch, wave: np.ndarray, pad_to_s: float = 10.0
                 ) -> list[np.ndarray]:
    """Every layer's states [n_keep, d] over the real audio of one <= 30 s waveform."""
    mel, n_keep = whisper_mel(wave, pad_to_s, encoder.n_mels)
    with torch.inference_mode():
        states = encoder(torch.from_numpy(mel)[None])
    return [s[0, :n_keep].numpy() for s in states]
