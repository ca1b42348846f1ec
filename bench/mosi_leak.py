"""Are CMU-MOSI's given features fitted on its training split? A probe per feature source.

For each source, a standardised logistic regression is scored two ways: 5-fold cross-validation
grouped by video *inside the training split* (no video on both sides), and trained on the whole
training split, scored on the test split. Features a network produced after being fitted on the
training utterances separate those utterances far better than unseen ones, so a large gap
between the two columns marks a source that fusion will over-trust: validation speakers are
drawn from the training split too, so early stopping cannot see it. C is fixed in advance.

    python bench/mosi_leak.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from multimodal_emotion.datasets import default_data_root  # noqa: E402
from multimodal_emotion.experiments.data import load_mosi_experiment  # noqa: E402

SOURCES = {
    "given audio (73-d)": {"source": "mosi-audio"},
    "given video (100-d)": {"source": "mosi-video"},
    "given text (100-d)": {"source": "mosi-text"},
    "MiniLM on transcripts": {"source": "minilm"},
    "shipped text encoder (MPNet + adapters)": {"source": "mpnet", "checkpoint": "text_encoder"},
}


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="data root (default $MER_DATA)")
    ap.add_argument("--C", type=float, default=0.01)
    args = ap.parse_args()
    root = args.data or default_data_root()
    data = load_mosi_experiment(root, {"modalities": SOURCES, "reference": {}})
    tr, te = data.split == "train", data.split == "test"
    print(f"CMU-MOSI: {tr.sum()} train / {te.sum()} test utterances; logistic regression, "
          f"C = {args.C}; accuracy in %")
    print(f"{'source':<24} {'CV inside train':>16} {'train -> test':>14} {'gap':>6}")
    for name, mod in data.modalities.items():
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=3000))
        cv = cross_val_score(clf, mod.x[tr], data.y[tr], groups=data.groups[tr],
                             cv=GroupKFold(5)).mean()
        test = float((clf.fit(mod.x[tr], data.y[tr]).predict(mod.x[te]) == data.y[te]).mean())
        print(f"{name:<24} {100 * cv:>16.1f} {100 * test:>14.1f} {100 * (cv - test):>+6.1f}")


if __name__ == "__main__":
    main()
