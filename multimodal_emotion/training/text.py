"""The text expert: a small head over frozen sentence embeddings, trained on GoEmotions-Ekman
and MELD together.

Why jointly: GoEmotions (written Reddit, 39k rows) dwarfs MELD (spoken, 10k rows) but MELD is
closer to what a transcriber produces; a corpus-balanced sample weight gives each corpus equal
say, so the head serves both. Hyper-parameters are chosen on a validation split carved from
TRAIN; the dev sets are only reported.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..cache import cached_arrays
from ..heads import ClassifierHead, EarlyStopping, TrainConfig, predict_proba
from ..labels import LABELS

N_CLASSES = len(LABELS)


def texts_sha(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def embed_texts_cached(encoder: Any, texts: list[str], name: str,
                       batch_size: int = 64) -> np.ndarray:
    """``encoder.embed_texts(texts)`` cached under ``name`` (key: encoder config + texts' sha)."""

    def compute() -> dict[str, np.ndarray]:
        chunks, step = [], batch_size * 16
        for i in tqdm(range(0, len(texts), step), desc=f"embed {name}", unit="chunk"):
            chunks.append(encoder.embed_texts(texts[i:i + step], batch_size=batch_size))
        emb = np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)
        return {"embeddings": emb.astype(np.float32)}

    desc = {"encoder": encoder.config(), "texts": texts_sha(texts), "n": len(texts)}
    return cached_arrays(name, desc, compute)["embeddings"]


def load_text_embeddings(corpus: str, split: str = "train", data_root: str | Path | None = None,
                         encoder: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Pooled embeddings (exactly the shipped text encoder's) and canonical labels.

    ``corpus`` is ``"goemotions"`` (Ekman scheme) or ``"meld"``. Computes on first call (a few
    minutes on CPU), then loads from the cache. This is what fusion training consumes.
    """
    from ..datasets import default_data_root
    from ..datasets.text_corpora import load_goemotions, load_meld
    from ..encoders.text import HFTextEncoder

    root = Path(data_root) if data_root else default_data_root()
    if corpus == "goemotions":
        texts, labels = load_goemotions(root / "goemotions", split, "ekman")
    elif corpus == "meld":
        texts, labels, _ = load_meld(root / "meld", split)
    else:
        raise ValueError(f"unknown corpus {corpus!r}; use 'goemotions' or 'meld'")
    encoder = encoder or HFTextEncoder()
    return embed_texts_cached(encoder, texts, f"text-{corpus}-{split}"), labels


def corpus_balanced_weights(corpus_ids: np.ndarray) -> np.ndarray:
    """Per-sample weights so each corpus contributes equal total weight (mean 1)."""
    ids, counts = np.unique(corpus_ids, return_counts=True)
    per = {i: len(corpus_ids) / (len(ids) * c) for i, c in zip(ids, counts)}
    return np.array([per[i] for i in corpus_ids], np.float32)


def sample_weights(y: np.ndarray, corpus_ids: np.ndarray, class_power: float = 0.5) -> np.ndarray:
    """Inverse class frequency (to ``class_power``) within each corpus, then equal total weight
    per corpus, mean 1 overall: the loss then tracks macro/weighted F1 on both corpora at once
    instead of GoEmotions' majority classes."""
    w = np.ones(len(y), np.float64)
    corpora = np.unique(corpus_ids)
    for c in corpora:
        sel = corpus_ids == c
        counts = np.bincount(y[sel], minlength=N_CLASSES).astype(np.float64)
        cw = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1) / N_CLASSES), 0.0)
        w[sel] = cw[y[sel]] ** class_power
        w[sel] *= (len(y) / len(corpora)) / w[sel].sum()
    return w.astype(np.float32)


def train_text_head(x: np.ndarray, y: np.ndarray, corpus_ids: np.ndarray,
                    x_val: np.ndarray, y_val: np.ndarray, val_corpus: np.ndarray,
                    cfg: TrainConfig, class_power: float = 0.5,
                    label_smoothing: float = 0.0) -> ClassifierHead:
    """A standard :class:`ClassifierHead` (so it drops into ``EmotionModel.experts["text"]``)
    trained with :func:`sample_weights`; early stopping maximises :func:`joint_score` on the
    validation split carved from TRAIN."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    w = sample_weights(y, corpus_ids, class_power if cfg.class_weighted else 0.0)
    wt = torch.as_tensor(w, dtype=torch.float32)
    head = ClassifierHead(xt.shape[1], N_CLASSES, cfg.hidden, cfg.dropout, cfg.input_dropout)
    head.norm.fit(xt)
    loss_fn = nn.CrossEntropyLoss(reduction="none", label_smoothing=label_smoothing)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    stopper = EarlyStopping(head, cfg.patience)
    for _ in range(cfg.epochs):
        head.train()
        order = rng.permutation(len(xt))
        for i in range(0, len(order), cfg.batch_size):
            idx = torch.as_tensor(order[i:i + cfg.batch_size])
            opt.zero_grad()
            (loss_fn(head(xt[idx]), yt[idx]) * wt[idx]).mean().backward()
            opt.step()
        if stopper.update(joint_score(predict_proba(head, x_val).argmax(1), y_val, val_corpus)):
            break
    stopper.restore()
    head.best_val_score = stopper.best  # type: ignore[attr-defined]
    return head


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """(macro-F1, weighted-F1) over the classes present in ``y_true``."""
    from sklearn.metrics import f1_score

    labels = np.unique(y_true)
    return (float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
            float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)))


def joint_score(pred: np.ndarray, y: np.ndarray, corpus: np.ndarray) -> float:
    """Mean of GoEmotions (corpus 0) macro-F1 and MELD (corpus 1) weighted-F1."""
    parts = []
    if (corpus == 0).any():
        parts.append(f1_scores(y[corpus == 0], pred[corpus == 0])[0])
    if (corpus == 1).any():
        parts.append(f1_scores(y[corpus == 1], pred[corpus == 1])[1])
    return float(np.mean(parts))


def val_split(n: int, frac: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random (train_idx, val_idx) carved from TRAIN for model selection."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    k = int(round(n * frac))
    return np.sort(perm[k:]), np.sort(perm[:k])


def held_out_groups(groups: np.ndarray, frac: float = 0.1, seed: int = 0) -> np.ndarray:
    """Bool mask of the rows whose group (e.g. a MELD dialogue) is among the ``frac`` of groups
    held out for validation: unlike :func:`val_split`, no group is on both sides."""
    ids = np.unique(groups)
    np.random.default_rng(seed).shuffle(ids)
    return np.isin(groups, ids[: int(len(ids) * frac + 1e-9)])


def config_to_json(cfg: TrainConfig, **extra: Any) -> str:
    return json.dumps({**cfg.__dict__, **extra}, sort_keys=True)


WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "text_head"

# Small grid, chosen on the validation split carved from TRAIN (never on dev).
GRID: list[dict[str, Any]] = [
    {"hidden": h, "dropout": 0.5, "input_dropout": 0.1, "class_power": p}
    for h in (256, 512) for p in (0.25, 0.5, 0.75)
]


def joint_training_texts(root: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """GoEmotions-Ekman train + MELD train: (texts, canonical labels, corpus ids 0 / 1), in the
    order of :func:`joint_training_data` (read straight from the corpora: tuning the encoder
    needs no frozen embeddings of them)."""
    from ..datasets.text_corpora import load_goemotions, load_meld

    root = Path(root)
    ge, yg = load_goemotions(root / "goemotions", "train", "ekman")
    me, ym, _ = load_meld(root / "meld", "train")
    y = np.concatenate([yg, ym]).astype(np.int64)
    corpus = np.concatenate([np.zeros(len(yg), np.int64), np.ones(len(ym), np.int64)])
    return list(ge) + list(me), y, corpus


def joint_training_data(data_root: str | Path | None = None, encoder: Any = None,
                        split: str = "train") -> dict[str, np.ndarray]:
    """Embeddings, labels and corpus ids (0 GoEmotions, 1 MELD) for ``split``, stacked."""
    xg, yg = load_text_embeddings("goemotions", split, data_root, encoder)
    xm, ym = load_text_embeddings("meld", split, data_root, encoder)
    return {"X": np.concatenate([xg, xm]), "y": np.concatenate([yg, ym]),
            "corpus": np.concatenate([np.zeros(len(yg), np.int64), np.ones(len(ym), np.int64)])}


def fit_text_expert(data_root: str | Path | None = None, corpora: tuple[int, ...] = (0, 1),
                    grid: list[dict[str, Any]] | None = None, seed: int = 0,
                    verbose: bool = True, encoder: Any = None, val: np.ndarray | None = None
                    ) -> tuple[ClassifierHead, dict[str, Any]]:
    """Grid-search on a validation split of TRAIN, return the best head and its config.

    ``corpora`` picks the training corpora: ``(0, 1)`` joint, ``(0,)`` the written (GoEmotions)
    head, ``(1,)`` the spoken (MELD) head. ``encoder``: the text encoder whose embeddings the
    head reads (default: the published MiniLM). ``val``: a bool mask over the rows of
    :func:`joint_training_data` to select on (the shipped heads use the rows their encoder was
    selected on); default a random 10 % of the kept rows.
    """
    d = joint_training_data(data_root, encoder)
    keep = np.isin(d["corpus"], corpora)
    x, y, c = d["X"][keep], d["y"][keep], d["corpus"][keep]
    if val is None:
        tr, va = val_split(len(y), 0.1, seed)
    else:
        tr, va = np.where(~val[keep])[0], np.where(val[keep])[0]
    best_head, best_cfg = None, None
    for g in grid or GRID:
        cfg = TrainConfig(hidden=g["hidden"], dropout=g["dropout"],
                          input_dropout=g["input_dropout"], lr=1e-3, weight_decay=1e-2,
                          epochs=60, batch_size=256, patience=6, seed=seed)
        head = train_text_head(x[tr], y[tr], c[tr], x[va], y[va], c[va], cfg, g["class_power"])
        if verbose:
            print(f"  {g} -> val {head.best_val_score:.4f}", flush=True)  # type: ignore[attr-defined]
        if best_head is None or head.best_val_score > best_head.best_val_score:  # type: ignore
            best_head, best_cfg = head, {**g, "val_score": round(head.best_val_score, 4)}  # type: ignore
    assert best_head is not None and best_cfg is not None
    return best_head, best_cfg


def save_text_head(head: ClassifierHead, info: dict[str, Any], encoder_config: dict[str, Any],
                   out_dir: str | Path | None = None) -> Path:
    """``config.json`` (ClassifierHead kwargs, the encoder it expects, provenance) and
    ``model.safetensors``."""
    from safetensors.torch import save_file

    out = Path(out_dir) if out_dir else WEIGHTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    cfg = {"in_dim": head.in_dim, "n_classes": head.n_classes, "labels": list(LABELS),
           "head": {"hidden": head.hidden, "dropout": info["dropout"],
                    "input_dropout": info["input_dropout"]},
           "encoder": encoder_config,
           "trained": {**info, "data": "GoEmotions-Ekman train + MELD train (single-label rows)",
                       "selection": "10% validation split of train; dev never used"}}
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return out


def load_text_head(directory: str | Path | None = None) -> ClassifierHead:
    """The shipped text expert head (see :func:`save_text_head`)."""
    from safetensors.torch import load_file

    d = Path(directory) if directory else WEIGHTS_DIR
    cfg = json.loads((d / "config.json").read_text())
    head = ClassifierHead(cfg["in_dim"], cfg["n_classes"], **cfg["head"])
    head.load_state_dict(load_file(str(d / "model.safetensors")))
    return head.eval()


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Train the text expert head (GoEmotions + MELD).")
    ap.add_argument("--data", default=None, help="data root (default $MER_DATA or ../shared/data)")
    ap.add_argument("--out", default=None, help=f"output folder (default {WEIGHTS_DIR})")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    head, info = fit_text_expert(args.data)
    print("best", info)
    from ..encoders.text import HFTextEncoder

    print("saved to", save_text_head(head, info, HFTextEncoder().config(), args.out))


if __name__ == "__main__":
    main()
