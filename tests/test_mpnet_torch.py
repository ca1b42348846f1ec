"""The plain-PyTorch MPNet (encoders/mpnet_torch.py) against transformers' MPNetModel: same
token ids, same hidden states and embeddings, padding, truncation and tuned layers included.
A tiny random MPNet with all-mpnet-base-v2's tokenizer keeps it fast; the shipped encoder is
compared in a slow test."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from multimodal_emotion.encoders.text import HFTextEncoder
from multimodal_emotion.errors import InputError, ModelError
from test_text import _tiny_bert

TEXTS = ["I was very happy to be here.", "no", "WHAT?! No way... that's terrible!!",
         "Überraschung: café naïve résumé 😀 日本語", "Dogs are sitting by the door. " * 40]


def _tiny_mpnet(folder: Path, layers: int = 2) -> Path:
    """A random 32-wide MPNet saved by transformers, with the real MPNet tokenizer files."""
    return _tiny_bert(folder, layers, kind="mpnet", tokenizer="mpnet")


def _same(a: HFTextEncoder, b: HFTextEncoder, texts: list[str], atol: float = 1e-5) -> None:
    ta = a.tokenizer(texts, padding=True, truncation=True, max_length=a.max_length,
                     return_tensors="pt")
    tb = b.tokenizer(texts, padding=True, truncation=True, max_length=b.max_length,
                     return_tensors="pt")
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(ta[key], tb[key]), key
    assert ta["input_ids"].shape[1] == a.max_length  # the long text was cut
    np.testing.assert_allclose(a.embed_texts(texts), b.embed_texts(texts), atol=atol)
    for x, y in zip(a.token_sequences(texts), b.token_sequences(texts)):
        assert x.shape == y.shape
        np.testing.assert_allclose(x, y, atol=atol)
    for t in texts[:3]:
        (ea, sa), (eb, sb) = a.embed_with_sequence(t), b.embed_with_sequence(t)
        np.testing.assert_allclose(ea, eb, atol=atol)
        np.testing.assert_allclose(sa, sb, atol=atol)


def test_torch_mpnet_equals_transformers(tmp_path: Path) -> None:
    folder = _tiny_mpnet(tmp_path / "mpnet")
    fast = HFTextEncoder(str(folder), backend="torch")
    ref = HFTextEncoder(str(folder))
    assert fast.dim == ref.dim == 32
    assert fast.config() == ref.config()  # same cache keys: the numbers do not change
    _same(fast, ref, TEXTS)


def test_torch_mpnet_loads_tuned_layers_like_transformers(tmp_path: Path) -> None:
    from multimodal_emotion.training.text_encoder import save_tuned_layers

    folder = _tiny_mpnet(tmp_path / "mpnet")
    ref = HFTextEncoder(str(folder))
    state = {k: v + 0.1 for k, v in ref.model.state_dict().items()
             if k.startswith("encoder.layer.1.") and v.dtype == torch.float32}
    ckpt = str(save_tuned_layers(state, {"note": "test"}, ref.model_id, tmp_path / "tuned"))
    tuned_ref = HFTextEncoder(str(folder), checkpoint=ckpt)
    tuned_fast = HFTextEncoder(str(folder), checkpoint=ckpt, backend="torch")
    assert not np.allclose(tuned_ref.embed_texts(TEXTS[:1]), ref.embed_texts(TEXTS[:1]))
    _same(tuned_fast, tuned_ref, TEXTS)
    # the checkpoint's tensors are merged into a private copy, never into the model file
    again = HFTextEncoder(str(folder), backend="torch")
    np.testing.assert_allclose(again.embed_texts(TEXTS), ref.embed_texts(TEXTS), atol=1e-5)


def test_torch_backend_refuses_what_is_not_mpnet(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not an MPNet"):
        HFTextEncoder(str(_tiny_bert(tmp_path / "bert")), backend="torch")
    with pytest.raises(InputError, match="backend"):
        HFTextEncoder(str(_tiny_bert(tmp_path / "bert2")), backend="onnx")


@pytest.mark.slow
def test_shipped_text_encoder_equals_transformers() -> None:
    """The default model's text encoder (all-mpnet-base-v2 + its LoRA layers) gives the same
    embeddings through either backend (about 10 s: loads MPNet twice)."""
    from multimodal_emotion.encoders import create
    from multimodal_emotion.model import DEFAULT_MODEL_DIR

    ckpt = str(DEFAULT_MODEL_DIR / "text_encoder")
    fast = create("text", "mpnet", checkpoint=ckpt)
    assert fast.backend == "torch"
    ref = create("text", "mpnet", checkpoint=ckpt, backend="transformers")
    _same(fast, ref, TEXTS)
