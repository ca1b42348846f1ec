"""LoRA adapters: wrapping, merging, the two-domain tuning and its checkpoint (tiny random
encoders built in a temp folder; no real model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from multimodal_emotion.adapters import add_lora, lora_tensors, merge_lora
from multimodal_emotion.encoders.text import HFTextEncoder
from multimodal_emotion.errors import ModelError
from test_text import _tiny_bert

WORDS = ["happy joy", "sad tears", "angry rage"]


def _corpus(n_per: int = 8) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Texts whose words give the label, in two domains; every fourth row of each is validation."""
    texts, y, corpus = [], [], []
    for c in (0, 1):
        for i in range(n_per * len(WORDS)):
            k = i % len(WORDS)
            texts.append(f"{WORDS[k]} {'comment' if c == 0 else 'said'} {i}")
            y.append([1, 2, 3][k])
            corpus.append(c)
    is_val = (np.arange(len(y)) % 4) == 0
    return texts, np.array(y, np.int64), np.array(corpus, np.int64), is_val


def test_untrained_adapter_is_the_identity_and_merge_equals_the_wrapped_model(
        tmp_path: Path) -> None:
    folder = _tiny_bert(tmp_path / "mpnet", layers=2, kind="mpnet")
    wrapped, plain = HFTextEncoder(str(folder)), HFTextEncoder(str(folder))
    text = ["hello there, how are you"]
    before = plain.embed_texts(text)
    adapters = add_lora(wrapped.model.encoder.layer[1], rank=4, alpha=8,
                        prefix="encoder.layer.1.")
    assert set(adapters) == {f"encoder.layer.1.{n}" for n in (
        "attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o",
        "intermediate.dense", "output.dense")}
    assert np.allclose(wrapped.embed_texts(text), before, atol=1e-6)  # B = 0: no change
    torch.manual_seed(1)
    for a in adapters.values():
        a.lora_b.data.normal_(0, 0.2)
    after = wrapped.embed_texts(text)
    assert not np.allclose(after, before, atol=1e-3)
    merged = merge_lora(plain.model, lora_tensors(adapters), scale=8 / 4)
    assert len(merged) == 6
    assert np.allclose(plain.embed_texts(text), after, atol=1e-5)


def test_merge_refuses_adapters_that_do_not_fit(tmp_path: Path) -> None:
    enc = HFTextEncoder(str(_tiny_bert(tmp_path / "bert", layers=1)))
    bad = {"encoder.layer.0.output.dense.lora_a": torch.zeros(4, 5),
           "encoder.layer.0.output.dense.lora_b": torch.zeros(32, 4)}
    with pytest.raises(ValueError, match="does not fit"):
        merge_lora(enc.model, bad, 1.0)
    with pytest.raises(KeyError):
        merge_lora(enc.model, {"encoder.layer.7.x.lora_a": torch.zeros(1, 1),
                               "encoder.layer.7.x.lora_b": torch.zeros(1, 1)}, 1.0)


def _tune(folder: Path, y: np.ndarray, epochs: int = 2):
    from multimodal_emotion.training.text_encoder import tune_task_adapters

    texts, _, corpus, is_val = _corpus()
    enc = HFTextEncoder(str(folder))
    state, info = tune_task_adapters(texts, y, corpus, is_val, enc, k=1, rank=4, alpha=8,
                                     epochs=epochs, lr=1e-2, batch_size=8, evals_per_epoch=1)
    return enc, state, info


def test_task_adapters_never_train_on_validation_labels(tmp_path: Path) -> None:
    """One epoch, one evaluation: the adapters can only depend on training rows' labels."""
    folder = _tiny_bert(tmp_path / "bert", layers=2)
    _, y, _, is_val = _corpus()
    _, state, info = _tune(folder, y, epochs=1)
    scrambled = y.copy()
    scrambled[is_val] = np.roll(y[is_val], 1)
    _, again, _ = _tune(folder, scrambled, epochs=1)
    assert sorted(state) == sorted(again)
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert info["adapter"] == {"type": "lora", "rank": 4, "alpha": 8, "layers": [1]}
    assert len(info["log"]) == 1 and set(info["log"][0]) == {
        "epoch", "val_written_macro_f1", "val_spoken_weighted_f1"}


def test_adapter_checkpoint_loads_as_the_tuned_encoder(tmp_path: Path) -> None:
    from multimodal_emotion.training.text_encoder import save_tuned_layers

    folder = _tiny_bert(tmp_path / "bert", layers=2)
    _, y, _, _ = _corpus()
    tuned_enc, state, info = _tune(folder, y)
    assert all(k.startswith("encoder.layer.1.") and k.endswith(("lora_a", "lora_b"))
               for k in state)
    ckpt = save_tuned_layers(state, info, str(folder), tmp_path / "tuned")
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["adapter"]["rank"] == 4 and cfg["dtype"] == "float16"
    loaded = HFTextEncoder(str(folder), checkpoint=str(ckpt))
    # the checkpoint merges the *best* adapters; re-merge them into a fresh copy in float32
    reference = HFTextEncoder(str(folder))
    merge_lora(reference.model, {k: v.half().float() for k, v in state.items()}, 8 / 4)
    texts = ["happy joy said", "angry rage comment", "plain words"]
    assert np.allclose(loaded.embed_texts(texts), reference.embed_texts(texts), atol=1e-5)
    base = HFTextEncoder(str(folder)).embed_texts(texts)
    assert not np.allclose(loaded.embed_texts(texts), base, atol=1e-4)
    assert loaded.config()["tuned_layers"] != HFTextEncoder(str(folder)).config().get(
        "tuned_layers")
    # adapters for another architecture are refused with a model error
    other = _tiny_bert(tmp_path / "mpnet", layers=2, kind="mpnet")
    cfg["base_model"] = str(other)
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="does not fit"):
        HFTextEncoder(str(other), checkpoint=str(ckpt))
