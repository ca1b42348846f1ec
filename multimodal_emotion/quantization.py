"""int8 in two places: weight-only storage for shipped checkpoints, and int8 compute on request.

Storage (:func:`quantise_int8`, :func:`dequantise`): the checkpoint size is what the 20 MB budget
and small devices care about, while CPU inference in float32 keeps the numbers identical across
machines. Each 2-D weight is stored as int8 rows with one float32 scale per row (symmetric,
``w ~= q * scale``); biases and norms stay float16. Loading dequantises once.

Compute (:func:`int8_linear_layers`): a long job (a 60-minute call is hundreds of turns) may
trade a little agreement for speed. The ``nn.Linear`` layers then multiply in int8 (torch's
dynamic quantisation: weights per output channel, activations quantised per call). It changes
answers slightly, so it is never the default; ``bench/int8_audio.py`` measures what it costs.
"""

from __future__ import annotations

import warnings

import torch


def quantise_int8(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each 2-D weight -> int8 rows + a float32 ``<name>.scale`` per output row; everything
    else float16. Half the size of float16 (the two tuned MiniLM layers: 7 MB -> 3.5 MB)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if not v.is_floating_point():  # counters and indices stay as they are
            out[k] = v.detach().contiguous()
            continue
        v = v.detach().float()
        if v.dim() == 2:
            scale = v.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127.0
            out[k] = torch.round(v / scale).clamp(-127, 127).to(torch.int8).contiguous()
            out[k + ".scale"] = scale.squeeze(1).contiguous()
        else:
            out[k] = v.to(torch.float16).contiguous()
    return out


def dequantise(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """float32 state dict from :func:`quantise_int8` output (or a plain float16 one)."""
    out = {}
    for k, v in stored.items():
        if k.endswith(".scale"):
            continue
        if v.dtype == torch.int8 and k + ".scale" in stored:
            out[k] = v.float() * stored[k + ".scale"][:, None]
        elif v.is_floating_point():
            out[k] = v.float()
        else:
            out[k] = v
    return out


def int8_linear_layers(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` whose ``nn.Linear`` layers compute in int8 (dynamic quantisation,
    per-channel weights); everything else (convolutions, norms, attention products) stays
    float32. On the audio expert's four Whisper base layers, 2 AVX2 cores: 94-108 -> 59-70 ms
    per clip in batches of 8 (``bench/int8_audio.py``)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's eager API warns that it is moving to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(module, {torch.nn.Linear: per_channel_dynamic_qconfig},
                                dtype=torch.qint8)
