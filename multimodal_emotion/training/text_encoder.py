"""Tune the sentence encoder's top layers for emotion on GoEmotions-Ekman + MELD train.

Why only the top layers: a frozen sentence encoder gives vectors built for semantic similarity,
not emotion (a head on frozen all-MiniLM-L6-v2 reached 0.47 GoEmotions macro-F1). It is also
cheap on a CPU: the frozen lower layers run once over the corpus and their output is kept in
memory, so each epoch only runs the top layers.

Two recipes:

* :func:`tune_task_adapters` (what ships, ``mer train text-encoder``): LoRA adapters
  (:mod:`..adapters`, 1.3 MB) on the top 3 of all-mpnet-base-v2's 12 layers, trained with one
  head per input domain, *written* (GoEmotions) and *spoken* (MELD), each with the loss its
  benchmark rewards. One head for both corpora cost MELD 2-3 points with every encoder tried
  (the README's text section), and whole tuned MPNet layers would not fit the 20 MB budget.
* :func:`fine_tune` (the earlier MiniLM recipe, kept for ``bench/meld_ceiling.py``): whole top
  layers, one joint head, corpus-balanced class-weighted loss, selection on a random 10 % of
  train.

Dev sets are never looked at here.

    python -m multimodal_emotion.training.text_encoder [--layers 3] [--epochs 3] [--base mpnet]

writes ``<model dir>/text_encoder/{config.json, model.safetensors}``, which
:class:`~multimodal_emotion.encoders.text.HFTextEncoder` loads with ``checkpoint=``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..encoders.text import masked_mean
from ..labels import LABELS
from .text import f1_scores, joint_score, sample_weights, val_split

N_CLASSES = len(LABELS)


class TopLayers(nn.Module):
    """The encoder's top ``k`` layers + masked mean pooling + a linear training head.

    Pooling is the plain masked mean (the encoder's own pooling before its L2 normalisation):
    the head needs the scale that normalisation removes. The head is a training device only;
    the shipped expert head is retrained on the tuned encoder's normalised embeddings.
    """

    def __init__(self, hf_model: Any, k: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.config = hf_model.config
        n = len(hf_model.encoder.layer)
        self.first = n - k
        self.layers = nn.ModuleList(hf_model.encoder.layer[self.first:])
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.config.hidden_size, N_CLASSES)
        # MPNet adds a relative-position bias to every layer's attention scores; the bucket
        # embedding it comes from stays frozen (it is shared by all layers, tuned or not).
        self.position_bias = getattr(hf_model.encoder, "compute_position_bias", None)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        attn = create_bidirectional_mask(config=self.config, inputs_embeds=hidden,
                                         attention_mask=mask)
        return self.head(self.dropout(masked_mean(self.encode(hidden, attn), mask)))

    def encode(self, hidden: torch.Tensor, attn: Any) -> torch.Tensor:
        """Token states after the top layers (``attn``: the model's bidirectional mask).
        BERT-style layers (MiniLM) return the states; MPNet's also take the position bias and
        return a tuple."""
        bias = None if self.position_bias is None else self.position_bias(hidden).detach()
        for layer in self.layers:
            out = layer(hidden, attn) if bias is None else layer(hidden, attn, bias)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden


def lower_hidden_states(encoder: Any, texts: list[str], first: int,
                        batch_size: int = 64) -> list[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Run the frozen layers ``< first`` once: batches of (row indices, hidden, mask), the rows
    sorted by length so each batch pads little."""
    tok, model = encoder.tokenizer, encoder.model
    order = np.array(sorted(range(len(texts)), key=lambda i: len(texts[i])))
    out = []
    with torch.no_grad():  # not inference_mode: these tensors feed autograd later
        for i in tqdm(range(0, len(order), batch_size), desc=f"layers 0-{first - 1} (frozen)",
                      unit="batch", mininterval=5):
            idx = order[i:i + batch_size]
            b = tok([texts[j] for j in idx], padding=True, truncation=True,
                    max_length=encoder.max_length, return_tensors="pt")
            hs = model(**b, output_hidden_states=True).hidden_states[first]
            out.append((idx, hs, b["attention_mask"]))
    return out


def _scores(top: TopLayers, batches: list, rows: np.ndarray, y: np.ndarray,
            corpus: np.ndarray) -> float:
    """joint_score of ``top`` on the rows in ``rows`` (batches hold any rows; others skipped)."""
    keep = np.zeros(len(y), bool)
    keep[rows] = True
    pred = np.full(len(y), -1)
    top.eval()
    with torch.inference_mode():
        for idx, h, m in batches:
            sel = keep[idx]
            if sel.any():
                s = torch.as_tensor(sel)
                pred[idx[sel]] = top(h[s], m[s]).argmax(1).numpy()
    return joint_score(pred[rows], y[rows], corpus[rows])


def fine_tune(texts: list[str], y: np.ndarray, corpus: np.ndarray, encoder: Any, k: int = 2,
              epochs: int = 3, lr: float = 5e-5, head_lr: float = 1e-3, batch_size: int = 32,
              class_power: float = 0.25, evals_per_epoch: int = 2, seed: int = 0,
              split: tuple[np.ndarray, np.ndarray] | None = None
              ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Fine-tune the top ``k`` layers; return their best state dict (keys as in the HF model,
    ``encoder.layer.N.*``) and a training log. Selection: best joint_score on the validation
    rows, evaluated ``evals_per_epoch`` times per epoch. ``split`` = (train rows, validation
    rows); default a random 10 % of TRAIN (:func:`~.text.val_split`)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tr, va = split if split is not None else val_split(len(y), 0.1, seed)
    top = TopLayers(encoder.model, k)
    for p in top.layers.parameters():
        p.requires_grad_(True)
    t0 = time.time()
    # The cached batches (length-sorted, so little padding) are the training batches; their
    # order is shuffled every epoch.
    cached = lower_hidden_states(encoder, texts, top.first, batch_size)
    seconds_lower = time.time() - t0
    is_train = np.zeros(len(y), bool)
    is_train[tr] = True
    w_all = np.zeros(len(y), np.float32)
    w_all[tr] = sample_weights(y[tr], corpus[tr], class_power)
    yt = torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.AdamW([{"params": top.layers.parameters(), "lr": lr},
                             {"params": top.head.parameters(), "lr": head_lr}],
                            weight_decay=0.01)
    n_steps = epochs * sum(int(is_train[idx].sum() > 0) for idx, _, _ in cached)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, n_steps // 20)) * max(0.0, 1 - s / n_steps))
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    best, best_state, log = -1.0, None, []
    base = {f"encoder.layer.{top.first + i}.{k_}": v.detach().clone()
            for i, layer in enumerate(top.layers) for k_, v in layer.state_dict().items()}
    log.append({"epoch": 0.0, "val_joint": round(_scores(top, cached, va, y, corpus), 4)})
    for epoch in range(epochs):
        order = rng.permutation(len(cached))
        evals = set(np.linspace(0, len(order), evals_per_epoch + 1).astype(int)[1:] - 1)
        bar = tqdm(enumerate(order), total=len(order), desc=f"epoch {epoch + 1}/{epochs}",
                   mininterval=10)
        for step, b in bar:
            idx, h, m = cached[b]
            sel = is_train[idx]
            if sel.any():
                top.train()
                s = torch.as_tensor(sel)
                # trim padding the selected rows do not need
                hh, mm = h[s], m[s]
                width = int(mm.sum(1).max())
                hh, mm = hh[:, :width], mm[:, :width]
                rows = torch.as_tensor(idx[sel])
                loss = (loss_fn(top(hh, mm), yt[rows]) * torch.as_tensor(w_all[idx[sel]])).mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(top.parameters(), 1.0)
                opt.step()
                sched.step()
            if step in evals:
                score = _scores(top, cached, va, y, corpus)
                log.append({"epoch": round(epoch + (step + 1) / len(order), 2),
                            "val_joint": round(score, 4)})
                bar.write(f"  epoch {log[-1]['epoch']}: validation joint score {score:.4f}")
                if score > best:
                    best = score
                    best_state = {f"encoder.layer.{top.first + i}.{k_}": v.detach().clone()
                                  for i, layer in enumerate(top.layers)
                                  for k_, v in layer.state_dict().items()}
    assert best_state is not None
    info = {"layers": list(range(top.first, top.first + k)), "epochs": epochs, "lr": lr,
            "head_lr": head_lr, "batch_size": batch_size, "class_power": class_power,
            "seed": seed, "val_joint": round(best, 4), "val_joint_frozen": log[0]["val_joint"],
            "log": log, "seconds_lower_layers": round(seconds_lower, 1),
            "seconds": round(time.time() - t0, 1),
            "max_abs_change": round(max(float((best_state[k_] - base[k_]).abs().max())
                                        for k_ in base), 5)}
    return best_state, info


# The text expert's domains, indexed by corpus id (0 GoEmotions, 1 MELD): written comments and
# spoken dialogue differ in label priors and annotation conventions (MELD is 47 % neutral and is
# judged by weighted-F1; GoEmotions by macro-F1), so each gets its own head on one encoder.
TEXT_DOMAINS = ("written", "spoken")


def tune_task_adapters(texts: list[str], y: np.ndarray, corpus: np.ndarray, is_val: np.ndarray,
                       encoder: Any, k: int = 3, rank: int = 16, alpha: float = 32.0,
                       epochs: int = 3, lr: float = 5e-4, head_lr: float = 1e-3,
                       batch_size: int = 32, class_power: tuple[float, float] = (0.5, 0.0),
                       written_ratio: float = 1.0, evals_per_epoch: int = 2, seed: int = 0
                       ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """LoRA adapters on the top ``k`` layers of ``encoder``, trained with one linear head per
    domain (:data:`TEXT_DOMAINS`; ``corpus`` holds each row's domain id).

    Each domain's loss is the one its benchmark rewards: GoEmotions rows class-weighted
    (``class_power[0]``, for macro-F1), MELD rows plain cross-entropy (``class_power[1]`` = 0,
    for weighted-F1). Each epoch sees every spoken batch and a fresh random ``written_ratio`` x
    as many written rows, so the four-times larger written corpus does not swamp the spoken
    one. Selection: the mean of written macro-F1 and spoken weighted-F1 on the ``is_val`` rows
    (held-out MELD dialogues and a 10 % split of GoEmotions train), each scored by its own head,
    ``evals_per_epoch`` times per epoch. ``encoder.model`` is modified in place (its top layers
    wrapped). Returns the best adapters (:func:`~..adapters.lora_tensors`) and a training log.
    """
    from transformers.masking_utils import create_bidirectional_mask

    from ..adapters import add_lora, lora_tensors

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    top = TopLayers(encoder.model, k)
    for p in top.parameters():
        p.requires_grad_(False)
    adapters: dict[str, Any] = {}
    for i, layer in enumerate(top.layers):
        adapters.update(add_lora(layer, rank, alpha, prefix=f"encoder.layer.{top.first + i}."))
    width = top.config.hidden_size
    heads = nn.ModuleDict({d: nn.Linear(width, N_CLASSES) for d in TEXT_DOMAINS})
    drop = nn.Dropout(0.1)
    cached = []  # (row indices, hidden, mask, domain): each batch holds one domain
    for c in range(len(TEXT_DOMAINS)):
        rows = np.where(corpus == c)[0]
        for idx, h, m in lower_hidden_states(encoder, [texts[i] for i in rows], top.first,
                                             batch_size):
            cached.append((rows[idx], h, m, c))
    seconds_lower = time.time() - t0
    w = np.ones(len(y), np.float32)
    for c in range(len(TEXT_DOMAINS)):
        fit = np.where((corpus == c) & ~is_val)[0]
        w[fit] = sample_weights(y[fit], np.zeros(len(fit), np.int64), class_power[c])
    yt, wt = torch.as_tensor(y), torch.as_tensor(w)

    def pooled(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        attn = create_bidirectional_mask(config=top.config, inputs_embeds=h, attention_mask=m)
        return masked_mean(top.encode(h, attn), m)

    def val_scores() -> tuple[float, float]:
        emb = np.zeros((len(y), width), np.float32)
        for layer in top.layers:
            layer.eval()
        with torch.inference_mode():
            for idx, h, m, _c in cached:
                sel = is_val[idx]
                if sel.any():
                    s = torch.as_tensor(sel)
                    emb[idx[sel]] = pooled(h[s], m[s]).numpy()
            e = torch.as_tensor(emb)
            scores = []
            for c, domain in enumerate(TEXT_DOMAINS):
                rows = np.where(is_val & (corpus == c))[0]
                pred = heads[domain](e[rows]).argmax(1).numpy()
                scores.append(f1_scores(y[rows], pred)[c])  # written: macro, spoken: weighted
        return scores[0], scores[1]

    params = [p for a in adapters.values() for p in (a.lora_a, a.lora_b)]
    opt = torch.optim.AdamW([{"params": params, "lr": lr},
                             {"params": heads.parameters(), "lr": head_lr}], weight_decay=0.01)
    spoken_b = [i for i, b in enumerate(cached) if b[3] == 1]
    written_b = [i for i, b in enumerate(cached) if b[3] == 0]
    n_spoken = sum(len(cached[i][0]) for i in spoken_b)
    n_written = int((corpus == 0).sum())
    per_epoch_written = int(len(written_b) * min(1.0, written_ratio * n_spoken / n_written))
    n_steps = epochs * (len(spoken_b) + per_epoch_written)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, n_steps // 20)) * max(0.0, 1 - s / n_steps))
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    best, best_state, log = -1.0, None, []
    for epoch in range(epochs):
        order = np.array(spoken_b + list(rng.choice(written_b, per_epoch_written,
                                                    replace=False)))
        rng.shuffle(order)
        evals = set(np.linspace(0, len(order), evals_per_epoch + 1).astype(int)[1:] - 1)
        bar = tqdm(enumerate(order), total=len(order), desc=f"epoch {epoch + 1}/{epochs}",
                   mininterval=10)
        for step, b in bar:
            idx, h, m, c = cached[b]
            sel = ~is_val[idx]
            if sel.any():
                for layer in top.layers:
                    layer.train()
                s = torch.as_tensor(sel)
                hh, mm = h[s], m[s]
                cut = int(mm.sum(1).max())  # trim padding the selected rows do not need
                hh, mm = hh[:, :cut], mm[:, :cut]
                rows = torch.as_tensor(idx[sel])
                logits = heads[TEXT_DOMAINS[c]](drop(pooled(hh, mm)))
                loss = (loss_fn(logits, yt[rows]) * wt[rows]).mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params + list(heads.parameters()), 1.0)
                opt.step()
                sched.step()
            if step in evals:
                written, spoken = val_scores()
                log.append({"epoch": round(epoch + (step + 1) / len(order), 2),
                            "val_written_macro_f1": round(written, 4),
                            "val_spoken_weighted_f1": round(spoken, 4)})
                bar.write(f"  epoch {log[-1]['epoch']}: validation written macro-F1 "
                          f"{written:.4f}, spoken weighted-F1 {spoken:.4f}")
                if (written + spoken) / 2 > best:
                    best = (written + spoken) / 2
                    best_state = lora_tensors(adapters)
    assert best_state is not None
    info = {"adapter": {"type": "lora", "rank": rank, "alpha": alpha,
                        "layers": list(range(top.first, top.first + k))},
            "epochs": epochs, "lr": lr, "head_lr": head_lr, "batch_size": batch_size,
            "class_power": list(class_power), "written_ratio": written_ratio, "seed": seed,
            "val_joint": round(best, 4), "log": log,
            "seconds_lower_layers": round(seconds_lower, 1),
            "seconds": round(time.time() - t0, 1)}
    return best_state, info


def text_validation_rows(root: Path, corpus: np.ndarray, seed: int = 0) -> np.ndarray:
    """Validation rows for :func:`tune_task_adapters` over :func:`~.text.joint_training_texts`:
    a random 10 % of GoEmotions train and 10 % of MELD train *dialogues* (a dialogue's lines
    are alike, so splitting one across both sides would flatter the score)."""
    from ..datasets.text_corpora import meld_dialogue_ids
    from .text import held_out_groups

    n_written = int((corpus == 0).sum())
    is_val = np.zeros(len(corpus), bool)
    is_val[val_split(n_written, 0.1, seed)[1]] = True
    is_val[n_written:] = held_out_groups(meld_dialogue_ids(root / "meld", "train"), 0.1, seed)
    return is_val


def save_tuned_layers(state: dict[str, torch.Tensor], info: dict[str, Any], base_model: str,
                      out: str | Path, dtype: str = "int8") -> Path:
    """``config.json`` (base model id, what was tuned, provenance) + ``model.safetensors``.

    ``state`` is either whole tuned layers (stored in ``dtype``: ``"int8"``, weight-only,
    :func:`~multimodal_emotion.quantization.quantise_int8`, or ``"float16"``) or, when ``info``
    has an ``adapter``, LoRA tensors from :func:`tune_task_adapters`, always stored as float16
    (rank-16 matrices are already small; int8 would only add error)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    adapter = info.get("adapter")
    if adapter:
        dtype = "float16"
    if dtype == "int8":
        from ..quantization import quantise_int8

        stored = quantise_int8(state)
    elif dtype == "float16":
        stored = {k: v.to(torch.float16).contiguous() for k, v in state.items()}
    else:
        raise ValueError(f"dtype must be 'int8' or 'float16', not {dtype!r}")
    save_file(stored, str(out / "model.safetensors"))
    cfg: dict[str, Any] = {"base_model": base_model}
    if adapter:
        cfg["adapter"] = adapter
    cfg.update({"tuned": sorted(state), "dtype": dtype,
                "trained": {**info, "data": "GoEmotions-Ekman train + MELD train "
                                            "(single-label rows)",
                            "selection": info.get("selection", "10% validation split of train "
                                                  "(joint score); dev never used")}})
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return out


def train_text_encoder(root: Path, out: Path, seed: int = 0, epochs: int = 3, layers: int = 3,
                       lr: float = 5e-4, base: str | None = "mpnet", rank: int = 16,
                       alpha: float = 32.0) -> dict[str, Any]:
    """Tune LoRA adapters on the top ``layers`` of the sentence encoder ``base`` (default
    all-mpnet-base-v2; ``"minilm"`` or any path, :func:`~..encoders.text_models.resolve_text_model`)
    with a written and a spoken head (:func:`tune_task_adapters`) on GoEmotions + MELD train;
    write the adapters to ``out`` and return the training info."""
    from ..encoders.text import HFTextEncoder
    from .text import joint_training_texts

    enc = HFTextEncoder(base)
    texts, y, corpus = joint_training_texts(root)
    is_val = text_validation_rows(root, corpus, seed)
    state, info = tune_task_adapters(texts, y, corpus, is_val, enc, k=layers, rank=rank,
                                     alpha=alpha, epochs=epochs, lr=lr, seed=seed)
    info["texts_sha"] = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    info["selection"] = ("mean of written macro-F1 (10% of GoEmotions train) and spoken "
                         "weighted-F1 (10% of MELD train dialogues); dev never used")
    print(json.dumps({k: v for k, v in info.items() if k != "log"}, indent=1))
    print("saved to", save_tuned_layers(state, info, enc.model_id, out))
    return info


def main() -> None:
    from ..datasets import default_data_root
    from ..model import DEFAULT_MODEL_DIR

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(DEFAULT_MODEL_DIR / "text_encoder"))
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base", default="mpnet",
                    help="sentence encoder to tune: mpnet (default), minilm or a local folder")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.data) if args.data else default_data_root()
    train_text_encoder(root, Path(args.out), args.seed, args.epochs, args.layers, args.lr,
                       args.base, args.rank)


if __name__ == "__main__":
    main()
