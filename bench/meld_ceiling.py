"""How far can MiniLM go on MELD alone? Fine-tune its top ``k`` layers on MELD train only
(unweighted cross-entropy, the loss that matches weighted-F1), select the epoch on 10 % held-out
training *dialogues*, then fit logistic-regression probes on the tuned embeddings and score
MELD dev. An upper bound for the shipped text expert, which must also serve GoEmotions.

    python bench/meld_ceiling.py --layers 6 --epochs 4      # all layers: ~6 min on 2 cores
    python bench/meld_ceiling.py --base mpnet --layers 3 --epochs 3   # all-mpnet-base-v2
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
from multimodal_emotion.datasets.text_corpora import load_meld, meld_dialogue_ids  # noqa: E402
from multimodal_emotion.encoders.text import HFTextEncoder  # noqa: E402
from multimodal_emotion.training.text import f1_scores, held_out_groups  # noqa: E402
from multimodal_emotion.training.text_encoder import fine_tune  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--base", default=None,
                    help="sentence encoder: minilm (default), mpnet or a folder")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.data) if args.data else default_data_root()
    texts, y, _ = load_meld(root / "meld", "train")
    # validation: whole held-out dialogues instead of a random 10 % of utterances
    val = held_out_groups(meld_dialogue_ids(root / "meld", "train"), 0.1, seed=0)
    enc = HFTextEncoder(args.base)
    state, info = fine_tune(texts, y.astype(np.int64), np.ones(len(y), np.int64), enc,
                            k=args.layers, epochs=args.epochs, class_power=0.0,
                            evals_per_epoch=2, split=(np.where(~val)[0], np.where(val)[0]))
    enc.model.load_state_dict(state, strict=False)
    print(f"\n{enc.model_id}: tuned layers {info['layers']}, best validation weighted-F1 {info['val_joint']:.3f} "
          f"(held-out dialogues), {info['seconds']:.0f} s")
    from sklearn.linear_model import LogisticRegression

    x = enc.embed_texts(texts)
    dev_texts, y_dev, _ = load_meld(root / "meld", "dev")
    x_dev = enc.embed_texts(dev_texts)
    print("\n| probe | validation w-F1 | MELD dev w-F1 |\n|---|---|---|")
    for c in (0.3, 1.0, 3.0):
        clf = LogisticRegression(C=c, max_iter=2000).fit(x[~val], y[~val])
        print(f"| logistic regression, C = {c} | {f1_scores(y[val], clf.predict(x[val]))[1]:.3f} "
              f"| {f1_scores(y_dev, clf.predict(x_dev))[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
