"""Train the MFCC + BiLSTM audio encoder on RAVDESS and write its shipped weights.

The network is trained as an 8-class classifier; the encoder keeps its attention-pooled BiLSTM
state as the embedding. For shipping it trains on all actors but a held-out validation set used
for early stopping (and reported); benchmarks must instead embed with weights that never saw
the test fold (:func:`train_mfcc_lstm` with ``train_actors``).

    python -m multimodal_emotion.training.mfcc_lstm  # -> weights/default/mfcc_lstm
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..datasets.ravdess import RAVDESS_8_LABELS, load_ravdess, read_audio
from ..encoders.audio import WEIGHTS_DIR, MfccBiLSTM, mfcc_features
from ..metrics import uar
from ..datasets import default_data_root

FRONTEND = {"n_mfcc": 40, "n_mels": 64}
MODEL = {"in_dim": 120, "hidden": 96, "layers": 2, "n_classes": 8, "dropout": 0.3}


def _batch(feats: list[np.ndarray], idx: np.ndarray, crop: int | None,
           rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch; in training, random crops of ``crop`` frames augment the data."""
    seqs = []
    for i in idx:
        f = feats[i]
        if crop and len(f) > crop:
            s = int(rng.integers(0, len(f) - crop + 1))
            f = f[s:s + crop]
        seqs.append(torch.from_numpy(f))
    lengths = torch.tensor([len(s) for s in seqs])
    return nn.utils.rnn.pad_sequence(seqs, batch_first=True), lengths


def train_mfcc_lstm(data_root: str | os.PathLike[str] | None = None,
                    out_dir: str | os.PathLike[str] | None = None,
                    val_actors: Sequence[int] = (21, 22, 23, 24),
                    train_actors: Sequence[int] | None = None, epochs: int = 40,
                    seed: int = 0, threads: int = 1) -> dict:
    """Train on ``train_actors`` (default: all but ``val_actors``), early-stop on val UAR.

    Writes ``config.json`` + ``model.safetensors`` into ``out_dir`` (default: the shipped
    weights folder) and returns the config (with the validation UAR it reached).
    """
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    records = load_ravdess(data_root if data_root is not None else default_data_root())
    feats = [mfcc_features(read_audio(r.path), **FRONTEND) for r in records]
    y = np.asarray([RAVDESS_8_LABELS.index(r.label8) for r in records])
    actor = np.asarray([r.actor for r in records])
    va = np.isin(actor, val_actors)
    tr = np.isin(actor, train_actors) if train_actors is not None else ~va
    tr_idx, va_idx = np.flatnonzero(tr), np.flatnonzero(va)

    model = MfccBiLSTM(**MODEL)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    best, best_state = -1.0, None
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(tr_idx)
        for i in range(0, len(order), 32):
            x, lengths = _batch(feats, order[i:i + 32], 250, rng)
            opt.zero_grad()
            loss_fn(model(x, lengths), torch.as_tensor(y[order[i:i + 32]])).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        sched.step()
        model.eval()
        with torch.inference_mode():
            preds = [model(torch.from_numpy(feats[i])[None]).argmax(1).item() for i in va_idx]
        score = uar(y[va_idx], np.asarray(preds))
        if score > best:
            best = score
            best_state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        print(f"epoch {epoch + 1:3d}  val UAR {score:.3f}  (best {best:.3f})", flush=True)

    cfg = {"frontend": FRONTEND, "model": MODEL,
           "trained": {"data": "RAVDESS speech 8-class", "val_actors": list(map(int, val_actors)),
                       "train_actors": sorted(map(int, set(actor[tr_idx]))),
                       "val_uar": round(best, 4), "epochs": epochs, "seed": seed}}
    out = Path(out_dir) if out_dir else WEIGHTS_DIR / "mfcc_lstm"
    out.mkdir(parents=True, exist_ok=True)
    save_file(best_state, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    cfg = train_mfcc_lstm(args.data, args.out, epochs=args.epochs, threads=args.threads)
    print(json.dumps(cfg["trained"]))


if __name__ == "__main__":
    main()
