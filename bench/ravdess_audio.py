"""RAVDESS audio-only benchmark: speaker-independent 6-fold CV of an audio encoder + head.

Protocol (README of the data): folds of 4 actors (1-4, ..., 21-24); each test fold is scored by
heads that never saw its actors. Early stopping uses validation actors drawn from the 20 training
actors only: for each of the other 5 folds in turn, a head trains on 16 actors and stops on the
4 held out, and the 5 heads' probabilities are averaged (a CV ensemble that uses every training
actor). Reports UAR and accuracy per fold, mean +- std, for 8 classes and the 7 canonical ones,
plus a reference row: MFCC statistics + logistic regression on the same folds.

    python bench/ravdess_audio.py --encoder whisper [--layers 1 2 3 4] [--data ../shared/data]
    python bench/ravdess_audio.py --encoder whisper --model base --layers 1 2 3 4 5 6
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from multimodal_emotion.datasets import default_data_root  # noqa: E402
from multimodal_emotion.datasets.ravdess import ravdess_folds  # noqa: E402
from multimodal_emotion.encoders import create  # noqa: E402
from multimodal_emotion.heads import TrainConfig, predict_proba, train_head  # noqa: E402
from multimodal_emotion.metrics import classification_report  # noqa: E402
from multimodal_emotion.training.audio import embed_ravdess, ravdess_mfcc_stats  # noqa: E402


def head_probs(x: np.ndarray, y: np.ndarray, fold: np.ndarray, test: int, n_classes: int,
               cfg: TrainConfig, seeds: int) -> np.ndarray:
    """Test-fold probabilities from heads trained on the other folds (val = one training fold)."""
    train_folds = [f for f in range(6) if f != test]
    probs = []
    for val in train_folds:
        tr = np.isin(fold, [f for f in train_folds if f != val])
        va = fold == val
        for s in range(seeds):
            c = TrainConfig(**{**cfg.__dict__, "seed": cfg.seed + s})
            head = train_head(x[tr], y[tr], n_classes, x[va], y[va], c)
            probs.append(predict_proba(head, x[fold == test]))
    return np.mean(probs, 0)


def logreg_probs(x: np.ndarray, y: np.ndarray, fold: np.ndarray, test: int) -> np.ndarray:
    """Standardised multinomial logistic regression (C fixed, no test-fold tuning)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tr = fold != test
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    clf.fit(x[tr], y[tr])
    return clf.predict_proba(x[fold == test])


def evaluate(name: str, prob_fn, x: np.ndarray, y: np.ndarray, fold: np.ndarray,
             n_classes: int, folds: list[int] | None = None) -> tuple[list[float], list[float]]:
    """Per-fold UAR and accuracy over ``folds`` (default all 6)."""
    uars, accs = [], []
    for test in (range(6) if folds is None else folds):
        pred = prob_fn(x, y, fold, test).argmax(1)
        rep = classification_report(y[fold == test], pred, [str(i) for i in range(n_classes)])
        uars.append(rep["uar"])
        accs.append(rep["accuracy"])
    return uars, accs


def row(name: str, uars: list[float], accs: list[float]) -> str:
    per = " ".join(f"{u * 100:5.1f}/{a * 100:4.1f}" for u, a in zip(uars, accs))
    return (f"{name:<34} {per}   UAR {np.mean(uars) * 100:5.1f} ± {np.std(uars) * 100:4.1f}"
            f"   acc {np.mean(accs) * 100:5.1f} ± {np.std(accs) * 100:4.1f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--encoder", default="whisper", choices=["whisper", "mfcc-lstm", "wav2vec2"])
    ap.add_argument("--model", help="wav2vec2: local checkpoint folder or cached hub name; "
                    "whisper: tiny.en (default, packaged), base (multilingual, installed with the package) or a "
                    "CTranslate2 folder")
    ap.add_argument("--layer", type=int, default=-1, help="wav2vec2 hidden layer")
    ap.add_argument("--layers", type=int, nargs="*", default=[1, 2, 3, 4],
                    help="whisper: encoder layers to pool (default 1 2 3 4, the shipped "
                         "encoder); give the flag alone for CTranslate2's final layer only")
    ap.add_argument("--data", type=Path, default=None, help="data root (default $MER_DATA)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=1, help="head seeds per validation fold")
    ap.add_argument("--hidden", type=int, default=256, help="head hidden units (0 = linear)")
    ap.add_argument("--no-reference", action="store_true", help="skip the MFCC+logreg row")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    root = args.data or default_data_root()
    kwargs: dict = {}
    if args.encoder == "whisper":
        kwargs = {"cpu_threads": args.threads, "layers": args.layers or None,
                  "model_path": args.model}
    elif args.encoder == "wav2vec2":
        kwargs = {"model": args.model or "facebook/wav2vec2-base", "layer": args.layer}
    t0 = time.perf_counter()
    enc = create("audio", args.encoder, **kwargs)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    arrays = embed_ravdess(enc, root)
    wall = time.perf_counter() - t0
    fold = ravdess_folds(arrays["actor"])
    cfg = TrainConfig(hidden=args.hidden)
    # An encoder trained on RAVDESS (mfcc-lstm) must not be scored on actors it was trained on.
    seen = set((enc.config().get("trained") or {}).get("train_actors", []))
    folds = [f for f in range(6) if not seen & set(arrays["actor"][fold == f].tolist())]
    if len(folds) < 6:
        print(f"WARNING: encoder weights were trained on actors {sorted(seen)}; only folds "
              f"{[f + 1 for f in folds]} are speaker-independent and scored")

    print(f"encoder {args.encoder}: {enc.config()}")
    print(f"model load {load_s:.1f} s; embeddings {arrays['X'].shape} "
          f"(this call {wall:.1f} s, cache hit if ~0); encode time per clip when computed "
          f"{arrays['seconds'].mean() * 1000:.0f} ms mean (clips ~3.7 s, {args.threads} thread)")
    print(f"available: {arrays['available'].mean() * 100:.1f}% of {len(fold)} clips")
    header = " ".join(f"  f{i + 1} UAR/acc" for i in folds)
    for n_classes, key in ((8, "label8"), (7, "label7")):
        y = arrays[key]
        print(f"\n== RAVDESS speaker-independent 6-fold, {n_classes} classes ==")
        print(f"{'model':<34}{header}")
        kind = f"MLP{args.hidden}" if args.hidden else "linear"
        name = f"{args.encoder} + {kind} head (5-val ens x{args.seeds})"
        print(row(name, *evaluate(name, lambda x, y_, f, t: head_probs(
            x, y_, f, t, n_classes, cfg, args.seeds), arrays["X"], y, fold, n_classes, folds)),
            flush=True)
        print(row(f"{args.encoder} + logreg", *evaluate("", logreg_probs, arrays["X"], y, fold,
                                                          n_classes, folds)), flush=True)
        if not args.no_reference:
            xm = ravdess_mfcc_stats(root)
            print(row("MFCC stats (480-d) + logreg", *evaluate("", logreg_probs, xm, y, fold,
                                                                n_classes, folds)), flush=True)


if __name__ == "__main__":
    main()
