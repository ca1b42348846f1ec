"""Train the shipped default model: the three expert heads and the three fusion strategies.

There is no raw audio-visual-text corpus with emotion labels on these machines, so fusion is
trained on *synthetic triples*: an audio clip (RAVDESS), a sentence (GoEmotions / MELD) and a
face (FER2013) drawn independently with the same canonical label. That teaches each strategy to
weigh modalities that agree by label, and modality dropout teaches it to answer with any subset.
What it cannot teach is real cross-modal timing or correlation: fused accuracy is reported only
on truly paired clips (CREMA-D), never on these triples.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..heads import ClassifierHead, EarlyStopping, TrainConfig, predict_proba, train_head
from ..labels import LABELS
from ..metrics import uar
from ..model import DEFAULT_MODEL_DIR, EmotionModel
from ..types import MODALITIES

N = len(LABELS)


@dataclass
class FusionTrainConfig:
    triples: int = 30000
    val_triples: int = 4000
    drop_p: float = 0.3  # chance each modality is dropped in a training triple (>=1 kept)
    # Chance the text slot holds a *neutral* sentence whatever the label: in acted corpora and
    # much real speech the words are emotionally flat while voice and face carry the emotion.
    # Without this, same-label triples teach fusion that words always agree with the label.
    text_neutral_p: float = 0.3
    epochs: int = 40
    batch_size: int = 256
    lr: float = 5e-4
    weight_decay: float = 1e-2
    patience: int = 8
    seed: int = 0


@dataclass
class ModalityPool:
    """Embeddings of one modality with canonical labels, split for fusion training/validation."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    # Optional sequences pooled to K steps (see fusion.strategies.pool_sequence):
    # [N, K, D_seq] float32 and [N, K] bool validity, aligned with x_train / x_val.
    seq_train: tuple[np.ndarray, np.ndarray] | None = None
    seq_val: tuple[np.ndarray, np.ndarray] | None = None


def sample_triples(pools: dict[str, ModalityPool], n: int, split: str, drop_p: float,
                   rng: np.random.Generator, neutral_p: dict[str, float] | None = None
                   ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict]:
    """``n`` label-balanced triples: one sample per modality with the same label, and a mask.

    Each modality is dropped with probability ``drop_p`` (at least one stays), so every subset
    of modalities is seen in training. Dropped slots hold zeros and a False mask bit.
    ``neutral_p[m]`` is the chance that modality ``m`` shows a neutral sample instead of one
    of the triple's label (the label itself does not change).
    """
    y = rng.integers(0, N, n)
    neutral = LABELS.index("neutral")
    emb: dict[str, np.ndarray] = {}
    seqs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for m, pool in pools.items():
        xs, ys = (pool.x_train, pool.y_train) if split == "train" else (pool.x_val, pool.y_val)
        pool_seq = pool.seq_train if split == "train" else pool.seq_val
        picks = np.zeros(n, np.int64)
        by_class = [np.flatnonzero(ys == c) for c in range(N)]
        shown = y.copy()
        if neutral_p and neutral_p.get(m):
            shown[rng.random(n) < neutral_p[m]] = neutral
        for c in range(N):
            rows = np.flatnonzero(shown == c)
            if len(by_class[c]) == 0:
                raise ValueError(f"{m} has no {split} sample of class {LABELS[c]}")
            picks[rows] = rng.choice(by_class[c], len(rows))
        emb[m] = xs[picks].astype(np.float32)
        if pool_seq is not None:
            seqs[m] = (pool_seq[0][picks].astype(np.float32), pool_seq[1][picks].copy())
    mask = rng.random((n, len(pools))) >= drop_p
    empty = ~mask.any(1)
    mask[empty, rng.integers(0, len(pools), empty.sum())] = True
    for i, m in enumerate(pools):
        emb[m][~mask[:, i]] = 0.0
        if m in seqs:
            seqs[m][0][~mask[:, i]] = 0.0
            seqs[m][1][~mask[:, i]] = False
    return emb, mask, y, seqs


def train_fusion(fusion: nn.Module, train: tuple, val: tuple, cfg: FusionTrainConfig,
                 desc: str = "", resample: Callable[[int], tuple] | None = None
                 ) -> dict[str, Any]:
    """AdamW with early stopping on validation UAR (validation triples use all modalities and
    every single-modality-dropped subset, so the chosen epoch is good under missing data too).

    ``resample(epoch)``, when given, draws a fresh set of triples for each epoch after the
    first: new pairings and new dropout masks, so the strategy cannot memorise particular
    triples (with a fixed set it over-fitted after one or two epochs).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    (emb, mask, y, seqs), (vemb, vmask, vy, vseqs) = train, val
    t = {m: torch.from_numpy(v) for m, v in emb.items()}
    tm, ty = torch.from_numpy(mask), torch.from_numpy(y)
    fusion.fit_normalisation(t, tm)
    use_seq = bool(seqs) and getattr(fusion, "seq_tokens", 0) > 0
    ts = {m: (torch.from_numpy(s), torch.from_numpy(v)) for m, (s, v) in seqs.items()} \
        if use_seq else None
    if ts:
        fusion.fit_sequence_normalisation(ts)
    opt = torch.optim.AdamW(fusion.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    stopper, history = EarlyStopping(fusion, cfg.patience), []
    for epoch in tqdm(range(cfg.epochs), desc=f"fusion {desc}", mininterval=10):
        if resample is not None and epoch > 0:
            emb, mask, y, seqs = resample(epoch)
            t = {m: torch.from_numpy(v) for m, v in emb.items()}
            tm, ty = torch.from_numpy(mask), torch.from_numpy(y)
            if ts:
                ts = {m: (torch.from_numpy(a), torch.from_numpy(b)) for m, (a, b) in seqs.items()}
        fusion.train()
        order = rng.permutation(len(ty))
        total = 0.0
        for i in range(0, len(order), cfg.batch_size):
            idx = torch.from_numpy(order[i:i + cfg.batch_size])
            opt.zero_grad()
            batch_seq = {m: (s[idx], v[idx]) for m, (s, v) in ts.items()} if ts else None
            loss = fusion.loss({m: v[idx] for m, v in t.items()}, tm[idx], batch_seq, ty[idx],
                               loss_fn)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        score = uar(vy, fusion_predict(fusion, vemb, vmask, vseqs if use_seq else None).argmax(1))
        history.append({"epoch": epoch + 1, "train_loss": total / len(ty), "val_uar": score})
        if stopper.update(score):
            break
    stopper.restore()
    # Strategies with held-out-fitted parameters (late's modality weights) fit them on the
    # validation triples, whose speakers, faces and sentences training never saw.
    fusion.calibrate({m: torch.from_numpy(v) for m, v in vemb.items()}, torch.from_numpy(vmask),
                     torch.from_numpy(vy))
    return {"val_uar": stopper.best, "epochs": len(history), "history": history}


@torch.no_grad()
def fusion_predict(fusion: nn.Module, emb: dict[str, np.ndarray], mask: np.ndarray,
                   seqs: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                   batch: int = 2048) -> np.ndarray:
    fusion.eval()
    outs = []
    for i in range(0, len(mask), batch):
        e = {m: torch.from_numpy(v[i:i + batch]) for m, v in emb.items()}
        s = {m: (torch.from_numpy(a[i:i + batch]), torch.from_numpy(b[i:i + batch]))
             for m, (a, b) in seqs.items()} if seqs else None
        outs.append(torch.softmax(fusion(e, torch.from_numpy(mask[i:i + batch]), s),
                                  -1).numpy())
    return np.concatenate(outs)


def expert_from_linear(linear: nn.Linear) -> ClassifierHead:
    """A :class:`ClassifierHead` that reproduces an existing linear classifier exactly (used for
    the face expert: the CNN's own softmax layer over its embedding)."""
    head = ClassifierHead(linear.in_features, linear.out_features, hidden=0, input_dropout=0.0)
    head.net[-1].load_state_dict(linear.state_dict())
    return head.eval()


def build_default_model(pools: dict[str, ModalityPool], experts: dict[str, ClassifierHead],
                        encoder_config: dict[str, Any], provenance: dict[str, Any],
                        cfg: FusionTrainConfig | None = None,
                        fusions: tuple[str, ...] = ("product", "attention", "concat", "sum",
                                                    "late"),
                        domain_experts: dict[str, dict[str, ClassifierHead]] | None = None,
                        expert_domains: dict[str, str] | None = None,
                        ) -> tuple[EmotionModel, dict]:
    """Assemble an :class:`EmotionModel` from trained experts and freshly trained fusions.

    ``domain_experts[m][d]``: extra heads of modality ``m`` for input domain ``d`` (the text
    expert's written head); ``expert_domains[m]``: the domain of ``experts[m]`` itself.

    The default fusion is ``product`` (the calibrated experts' product, :mod:`..fusion.product`)
    whenever it is among ``fusions``: it needs no paired data, and with one modality it answers
    exactly as that expert. The learned strategies are trained on synthetic same-label triples;
    without ``product``, the default is the learned one with the best validation UAR (held-out
    speakers, faces and sentences; every modality and each one dropped in turn).
    """
    cfg = cfg or FusionTrainConfig()
    dims = {m: int(pools[m].x_train.shape[1]) for m in MODALITIES}
    seq_dims = {m: int(pools[m].seq_train[0].shape[2]) for m in MODALITIES
                if pools[m].seq_train is not None}
    seq_tokens = next((int(pools[m].seq_train[0].shape[1]) for m in MODALITIES
                       if pools[m].seq_train is not None), 0)
    config = {
        "labels": list(LABELS), "dims": dims, "encoders": encoder_config,
        "experts": {m: h.spec() for m, h in experts.items()},
        "fusions": {name: ({"seq_dims": seq_dims, "seq_tokens": seq_tokens} if name ==
                           "attention" and seq_dims else {}) for name in fusions},
        "default_fusion": fusions[0],
        "provenance": provenance,
    }
    if domain_experts:
        config["expert_domains"] = dict(expert_domains or {})
        config["domain_experts"] = {
            m: {d: h.spec() for d, h in heads.items()}
            for m, heads in domain_experts.items()}
    model = EmotionModel(config)
    for m, head in experts.items():
        model.experts[m].load_state_dict(head.state_dict())
    for m, heads in (domain_experts or {}).items():
        for d, head in heads.items():
            model.domain_experts[m][d].load_state_dict(head.state_dict())
    rng = np.random.default_rng(cfg.seed)
    ordered = {m: pools[m] for m in MODALITIES}
    flat = {"text": cfg.text_neutral_p}
    train = sample_triples(ordered, cfg.triples, "train", cfg.drop_p, rng, flat)
    val = _validation_triples(ordered, cfg.val_triples, rng, flat)
    report: dict[str, Any] = {"fusion_train": asdict(cfg)}
    learned = [n for n in fusions if not getattr(model.fusions[n], "decision_level", False)]
    for name in learned:
        t0 = time.time()
        report[name] = train_fusion(
            model.fusions[name], train, val, cfg, name,
            resample=lambda e: sample_triples(ordered, cfg.triples, "train", cfg.drop_p,
                                              np.random.default_rng(cfg.seed * 1000 + e), flat))
        report[name]["seconds"] = round(time.time() - t0, 1)
    best = "product" if "product" in fusions else max(learned, key=lambda n: report[n]["val_uar"])
    model.config["default_fusion"] = report["default_fusion"] = best
    return model, report


def _validation_triples(pools: dict[str, ModalityPool], n: int, rng: np.random.Generator,
                        neutral_p: dict[str, float] | None = None):
    """All modalities present, plus each modality dropped in turn: four equal parts."""
    parts = [sample_triples(pools, n // 4, "val", 0.0, rng, neutral_p) for _ in range(4)]
    for i in range(1, 4):
        emb, mask, _, seqs = parts[i]
        m = list(pools)[i - 1]
        mask[:, i - 1] = False
        emb[m][:] = 0.0
        if m in seqs:
            seqs[m][0][:] = 0.0
            seqs[m][1][:] = False
    emb = {m: np.concatenate([p[0][m] for p in parts]) for m in pools}
    seqs = {m: (np.concatenate([p[3][m][0] for p in parts]),
                np.concatenate([p[3][m][1] for p in parts])) for m in parts[0][3]}
    return (emb, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
            seqs)


def write_training_report(out_dir: Path, report: dict[str, Any]) -> None:
    (Path(out_dir) / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")


__all__ = ["FusionTrainConfig", "ModalityPool", "build_default_model", "sample_triples",
           "train_fusion", "expert_from_linear", "DEFAULT_MODEL_DIR", "TrainConfig",
           "train_head", "predict_proba"]
