"""Speed perturbation of the training side: does it carry the audio expert to unseen corpora?

Each training utterance is also embedded played faster and slower (``--speeds``, default the
shipped recipe's 0.9 and 1.1: resampled, so tempo and pitch move together, as in speech
recognition's speed perturbation; ``training.speed_perturb``), which gives the expert voices its
corpora lack. The copies keep their speaker, so they never cross a fold, and only original
recordings are scored. The shipped recipe otherwise (``training.speech``: the linear probe on
block-z-scored embeddings, (corpus, class) cells weighted equally, argmax restricted to the test
corpus's labels), with and without the copies:

* leave-one-corpus-out: trained on the other three corpora, tested on the held-out corpus;
* RAVDESS speaker-independent 6-fold (the protocol's actor folds), every other corpus in
  training as in the recipe, the test actors' copies left out.

The perturbed embeddings are cached (every nEMO utterance is used unperturbed; every third is
also perturbed, ``--nemo-every``); a new speed embeds ~4,500 clips, ~9 minutes on 2 cores.

    .venv/bin/python bench/speed_augment.py [--speeds 0.9 1.1] [--loco-only] [--augmented-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from multimodal_emotion.datasets import default_data_root  # noqa: E402
from multimodal_emotion.datasets.speech_corpora import SPEECH_CORPORA  # noqa: E402
from multimodal_emotion.training.speech import (grouped_cv_uar, load_speech_data,  # noqa: E402
                                                loco_uar)
from speech_corpora import folds_of  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--speeds", type=float, nargs="+", default=[0.9, 1.1])
    ap.add_argument("--nemo-every", type=int, default=3,
                    help="perturb every n-th nEMO utterance (all are used unperturbed)")
    ap.add_argument("--loco-only", action="store_true",
                    help="skip the RAVDESS 6-fold (each fit on the augmented rows takes minutes)")
    ap.add_argument("--augmented-only", action="store_true",
                    help="skip the unaugmented row (bench/speech_corpora.py --ablation has it)")
    ap.add_argument("--corpora", nargs="+", default=list(SPEECH_CORPORA),
                    choices=list(SPEECH_CORPORA), help="held-out corpora to score")
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    root = args.data or default_data_root()
    t0 = time.time()
    data = load_speech_data(root, speeds=tuple(args.speeds),
                            speed_every={"nemo": args.nemo_every})
    print("command: python bench/speed_augment.py " + " ".join(sys.argv[1:]))
    print("| training side | RAVDESS LOCO | nEMO LOCO | CASIA LOCO | URDU LOCO | RAVDESS 6-fold |")
    print("| --- | --- | --- | --- | --- | --- |")
    for augment in (True,) if args.augmented_only else (False, True):
        d = data if augment else data.rows(data.original)
        loco = {c: 100 * loco_uar(d, c) for c in args.corpora}
        six = "-"
        if not args.loco_only:
            uars = 100 * np.asarray(grouped_cv_uar(d, "ravdess", folds_of(d, "ravdess")))
            six = f"{uars.mean():.1f} ± {uars.std():.1f}"
        name = ("originals + speeds " + ", ".join(f"{s:g}" for s in args.speeds)) if augment \
            else "originals"
        print(f"| {name} | " + " | ".join(f"{loco[c]:.1f}" if c in loco else "-"
                                         for c in SPEECH_CORPORA) + f" | {six} |", flush=True)
    print(f"{time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
