"""Does dialogue context help the text expert on MELD? A head on the shipped text encoder's
embedding of an utterance, concatenated with those of the previous ``k`` utterances of its
dialogue (zeros at the start of a dialogue), trained on MELD train and scored on MELD dev.

Validation (early stopping) holds out 10 % of the training *dialogues*, so no dialogue is on
both sides. Same head and training settings as the shipped text expert.

    python bench/meld_context.py [--data ../shared/data] [--context 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from multimodal_emotion.datasets import default_data_root  # noqa: E402
from multimodal_emotion.datasets.text_corpora import meld_dialogue_ids  # noqa: E402
from multimodal_emotion.heads import TrainConfig, predict_proba  # noqa: E402
from multimodal_emotion.training.text import (f1_scores, held_out_groups,  # noqa: E402
                                              load_text_embeddings, train_text_head)


def previous_utterance(dialogue: np.ndarray) -> np.ndarray:
    """Index of the previous utterance of the same dialogue, or -1 (rows in file order)."""
    prev, last = [], {}
    for i, d in enumerate(dialogue):
        prev.append(last.get(d, -1))
        last[d] = i
    return np.asarray(prev)


def with_context(x: np.ndarray, prev: np.ndarray, k: int) -> np.ndarray:
    out, cur = [x], prev.copy()
    for _ in range(k):
        out.append(np.where((cur >= 0)[:, None], x[np.maximum(cur, 0)], 0.0))
        cur = np.where(cur >= 0, prev[np.maximum(cur, 0)], -1)
    return np.hstack(out).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--context", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.data) if args.data else default_data_root()

    from multimodal_emotion.model import DEFAULT_MODEL_DIR, EmotionModel
    from multimodal_emotion.recognizer import build_encoder
    from multimodal_emotion.training.default_model import TEXT_HEAD_GRID as hp

    model = EmotionModel.from_pretrained(DEFAULT_MODEL_DIR)
    enc = build_encoder("text", model.config["encoders"]["text"], DEFAULT_MODEL_DIR)
    x, y = load_text_embeddings("meld", "train", root, enc)
    xd, yd = load_text_embeddings("meld", "dev", root, enc)
    dialogue = meld_dialogue_ids(root / "meld", "train")
    prev, prev_d = previous_utterance(dialogue), previous_utterance(
        meld_dialogue_ids(root / "meld", "dev"))
    if len(prev) != len(y) or len(prev_d) != len(yd):
        raise SystemExit("MELD rows and cached embeddings disagree; clear the cache")
    val = held_out_groups(dialogue, 0.1, seed=0)
    corpus = np.ones(len(y), np.int64)
    print("\n## MELD dev weighted-F1, text expert head with dialogue context\n")
    print("| previous utterances | validation w-F1 (held-out dialogues) | MELD dev w-F1 |")
    print("|---|---|---|")
    for k in args.context:
        a, ad = with_context(x, prev, k), with_context(xd, prev_d, k)
        cfg = TrainConfig(hidden=hp["hidden"], dropout=hp["dropout"],
                          input_dropout=hp["input_dropout"], lr=1e-3, weight_decay=1e-2,
                          epochs=60, batch_size=256, patience=6, seed=0)
        head = train_text_head(a[~val], y[~val], corpus[~val], a[val], y[val], corpus[val], cfg,
                               hp["class_power"])
        pred = predict_proba(head, ad).argmax(1)
        print(f"| {k} | {head.best_val_score:.3f} | {f1_scores(yd, pred)[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
