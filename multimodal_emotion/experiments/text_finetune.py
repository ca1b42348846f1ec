"""Fine-tune a text encoder on an experiment's own training split, cross-fitted.

Why cross-fitted: an encoder fine-tuned on the training rows embeds *those* rows far better than
unseen ones (that is what fine-tuning does). Fusion trained on such embeddings, and early-stopped
on validation speakers that the encoder also saw, learns to trust text more than it deserves:
exactly the flaw of CMU-MOSI's given text and video features (``bench/mosi_leak.py``). So the
training speakers are split into ``folds`` groups; for each group an encoder is fine-tuned on the
other groups and embeds that group (out-of-fold), and every test row gets the mean of the
``folds`` encoders' embeddings (none of them saw a test speaker). Every embedding fusion sees is
then from an encoder that never saw that row, at train, validation and test time alike.

The recipe is deliberately plain and fixed up front (no choice looks at test rows): all layers,
masked mean pooling + a linear head, AdamW with warm-up then linear decay, ``epochs`` passes.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..cache import cached_arrays
from ..encoders.text import masked_mean


# The recipe a config's ``finetune: {...}`` starts from (the keys it may set).
FINETUNE_DEFAULTS: dict[str, Any] = {"folds": 5, "epochs": 3, "lr": 3e-5, "batch_size": 16,
                                     "seed": 0}


def fine_tune_encoder(encoder: Any, texts: list[str], y: np.ndarray, n_classes: int,
                      epochs: int = 3, lr: float = 3e-5, head_lr: float = 1e-3,
                      batch_size: int = 16, seed: int = 0, desc: str = "fine-tune") -> Any:
    """A fine-tuned copy of ``encoder.model`` (all layers) trained to classify ``texts``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(encoder.model)
    head = nn.Linear(int(model.config.hidden_size), n_classes)
    drop = nn.Dropout(0.1)
    opt = torch.optim.AdamW([{"params": model.parameters(), "lr": lr},
                             {"params": head.parameters(), "lr": head_lr}], weight_decay=0.01)
    per_epoch = (len(texts) + batch_size - 1) // batch_size
    steps = max(1, epochs * per_epoch)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, 1 - s / steps))
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    model.train()
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", leave=False):
        order = rng.permutation(len(texts))
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            batch = encoder.tokenizer([texts[j] for j in idx], padding=True, truncation=True,
                                      max_length=encoder.max_length, return_tensors="pt")
            pooled = masked_mean(model(**batch).last_hidden_state, batch["attention_mask"])
            loss = nn.functional.cross_entropy(head(drop(pooled)),
                                               yt[torch.as_tensor(idx)])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def embed_with(encoder: Any, model: Any, texts: list[str]) -> np.ndarray:
    """``encoder.embed_texts`` (its pooling and normalisation) run through ``model``."""
    original = encoder.model
    encoder.model = model
    try:
        return encoder.embed_texts(texts)
    finally:
        encoder.model = original


def group_folds(groups: np.ndarray, k: int, seed: int = 0) -> dict[Any, int]:
    """Speaker -> fold (0..k-1), speakers shuffled with ``seed`` then dealt round-robin."""
    speakers = np.unique(groups)
    rng = np.random.default_rng(seed)
    rng.shuffle(speakers)
    return {s: i % k for i, s in enumerate(speakers)}


def crossfit_text_embeddings(encoder: Any, texts: list[str], y: np.ndarray, groups: np.ndarray,
                             train: np.ndarray, n_classes: int, folds: int = 5, epochs: int = 3,
                             lr: float = 3e-5, batch_size: int = 16, seed: int = 0,
                             cache_name: str = "text-crossfit") -> np.ndarray:
    """Embeddings ``[N, dim]`` of all rows from encoders fine-tuned on ``train`` rows only.

    ``train`` (bool [N]) marks the rows whose labels may be used; other rows are only embedded.
    A training row is embedded by the encoder that did not see its speaker's fold; a non-training
    row by the mean of all fold encoders (re-normalised to unit length). Cached on disk, keyed by
    the encoder config, the texts, labels, speakers, the train mask and the recipe.
    """
    train = np.asarray(train, bool)
    if folds < 2:
        raise ValueError("cross-fitting needs folds >= 2")
    fold_of = group_folds(groups[train], folds, seed)
    h = hashlib.sha256()
    for t, label, g, tr in zip(texts, y, groups, train):
        h.update(f"{t}\x00{int(label) if tr else -1}\x00{g}\x00{int(tr)}\x01".encode())
    desc = {"encoder": encoder.config(), "rows": h.hexdigest()[:16], "n": len(texts),
            "recipe": {"folds": folds, "epochs": epochs, "lr": lr, "batch_size": batch_size,
                       "seed": seed, "layers": "all", "version": 1}}

    def compute() -> dict[str, np.ndarray]:
        out = np.zeros((len(texts), encoder.dim), np.float32)
        test_sum = np.zeros_like(out)
        rows_train = np.where(train)[0]
        rows_other = np.where(~train)[0]
        fold = np.asarray([fold_of[g] for g in groups[rows_train]])
        for k in tqdm(range(folds), desc="cross-fitted text fine-tuning", unit="fold"):
            fit_rows, held = rows_train[fold != k], rows_train[fold == k]
            model = fine_tune_encoder(encoder, [texts[i] for i in fit_rows], y[fit_rows],
                                      n_classes, epochs, lr, batch_size=batch_size,
                                      seed=seed + k, desc=f"fold {k + 1}/{folds}")
            both = np.concatenate([held, rows_other])
            emb = embed_with(encoder, model, [texts[i] for i in both])
            out[held] = emb[:len(held)]
            test_sum[rows_other] += emb[len(held):]
        mean = test_sum[rows_other]
        out[rows_other] = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-9)
        return {"embeddings": out}

    return cached_arrays(cache_name, desc, compute)["embeddings"]
