"""Speed perturbation of the training side: does it carry the audio expert to unseen corpora?

Each training utterance is also embedded played faster and slower (``--speeds``, default 0.9 and
1.1: resampled, so tempo and pitch move together, as in speech recognition's speed
perturbation), which gives the expert voices its corpora lack. The perturbed copies keep their
speaker, so they never cross a fold. Scored as ``bench/speech_corpora.py`` scores the shipped
recipe (the linear probe, (corpus, class) cells weighted equally, argmax restricted to the test
corpus's labels):

* leave-one-corpus-out: trained on the other three corpora (originals, plus their perturbed
  copies when augmented), tested on the held-out corpus's original utterances;
* RAVDESS speaker-independent 6-fold (the protocol's actor folds), every other corpus in
  training as in the recipe, the test actors' copies left out.

The perturbed embeddings are cached (every nEMO utterance is used unperturbed; every third is
also perturbed, ``--nemo-every``); the first run embeds ~9,000 clips, ~18 minutes on 2 cores.

    .venv/bin/python bench/speed_augment.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from multimodal_emotion.cache import cached_arrays  # noqa: E402
from multimodal_emotion.datasets import default_data_root  # noqa: E402
from multimodal_emotion.datasets.ravdess import read_audio  # noqa: E402
from multimodal_emotion.datasets.speech_corpora import (SPEECH_CORPORA,  # noqa: E402
                                                        load_speech_corpus)
from multimodal_emotion.training.audio import (default_audio_encoder,  # noqa: E402
                                               embed_speech_corpus)
from multimodal_emotion.training.speech import SpeechData, fit_expert, head_uar  # noqa: E402
from speech_corpora import folds_of  # noqa: E402


def perturbed(corpus: str, speed: float, encoder, root: Path, every: int) -> dict[str, np.ndarray]:
    """Embeddings of every ``every``-th utterance of ``corpus`` played at ``speed`` (cached)."""
    from scipy.signal import resample_poly

    records = load_speech_corpus(corpus, root)[::every]
    rel = [os.path.relpath(r.path, root) for r in records]
    up, down = 10, int(round(10 * speed))

    def compute() -> dict[str, np.ndarray]:
        t, xs, avail = time.time(), [], []
        for i in range(0, len(records), 8):
            waves = [resample_poly(read_audio(r.path), up, down).astype(np.float32)
                     for r in records[i:i + 8]]
            outs = encoder.encode_audio_batch(waves, 8)
            xs += [o.embedding for o in outs]
            avail += [o.available for o in outs]
        print(f"  embedded {corpus} x{speed:g}: {len(records)} clips in {time.time() - t:.0f} s",
              file=sys.stderr, flush=True)
        return {"X": np.stack(xs).astype(np.float32), "available": np.asarray(avail, bool)}

    return cached_arrays(f"{corpus}-audio-speed", {"encoder": encoder.config(), "files": rel,
                                                   "speed": speed, "format": 1}, compute)


def rows(parts: dict, copies: dict, augment: bool) -> tuple[SpeechData, np.ndarray]:
    """All available rows (originals first per corpus, then their copies when ``augment``) and
    a mask of the copies."""
    X, y, spk, cor, copy = [], [], [], [], []
    for c in SPEECH_CORPORA:
        d = parts[c]
        blocks = [(d["X"], d["available"], d["label7"], d["speaker"], False)]
        if augment:
            blocks += [(*copies[key], True) for key in copies if key[0] == c]
        for Xb, keep, yb, sb, is_copy in blocks:
            X.append(Xb[keep]), y.append(yb[keep]), spk.append(sb[keep])
            cor.append(np.full(int(keep.sum()), c)), copy.append(np.full(int(keep.sum()), is_copy))
    return (SpeechData(np.concatenate(X), np.concatenate(y), np.concatenate(spk),
                       np.concatenate(cor)), np.concatenate(copy))


def score(data: SpeechData, train: np.ndarray, test: np.ndarray) -> float:
    """UAR (%) on the ``test`` rows of the recipe's expert fitted on the ``train`` rows."""
    return 100 * head_uar(fit_expert(data.rows(train)), data.X[test], data.y[test])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--speeds", type=float, nargs="+", default=[0.9, 1.1])
    ap.add_argument("--nemo-every", type=int, default=3,
                    help="perturb every n-th nEMO utterance (all are used unperturbed)")
    ap.add_argument("--loco-only", action="store_true",
                    help="skip the RAVDESS 6-fold (each fit on the augmented rows takes minutes)")
    ap.add_argument("--augmented-only", action="store_true",
                    help="skip the unaugmented row (bench/speech_corpora.py prints it)")
    ap.add_argument("--corpora", nargs="+", default=list(SPEECH_CORPORA),
                    choices=list(SPEECH_CORPORA), help="held-out corpora to score")
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    root = args.data or default_data_root()
    import torch

    torch.set_num_threads(2)
    encoder = default_audio_encoder(threads=2, final_layer=False)
    parts = {c: embed_speech_corpus(c, default_audio_encoder(), root, progress=False)
             for c in SPEECH_CORPORA}
    copies = {}
    for c in SPEECH_CORPORA:
        every = args.nemo_every if c == "nemo" else 1
        idx = np.arange(len(parts[c]["X"]))[::every]
        for s in args.speeds:
            arr = perturbed(c, s, encoder, root, every)
            copies[(c, s)] = (arr["X"], arr["available"] & parts[c]["available"][idx],
                              parts[c]["label7"][idx], parts[c]["speaker"][idx])
    print("command: python bench/speed_augment.py " + " ".join(sys.argv[1:]))
    print("| training side | RAVDESS LOCO | nEMO LOCO | CASIA LOCO | URDU LOCO | RAVDESS 6-fold |")
    print("| --- | --- | --- | --- | --- | --- |")
    for augment in (True,) if args.augmented_only else (False, True):
        data, copy = rows(parts, copies, augment)
        loco = {}
        for c in args.corpora:
            loco[c] = score(data, data.corpus != c, (data.corpus == c) & ~copy)
            print(f"  LOCO {c} (augmented: {augment}): {loco[c]:.1f}", file=sys.stderr,
                  flush=True)
        six = "-"
        if not args.loco_only:
            originals = data.rows(~copy)
            folds = folds_of(originals, "ravdess")
            actors = originals.speaker[originals.corpus == "ravdess"]
            uars = []
            for f in np.unique(folds):
                held = np.isin(data.speaker, np.unique(actors[folds == f]))
                uars.append(score(data, ~held, held & ~copy))
            six = f"{np.mean(uars):.1f} ± {np.std(uars):.1f}"
        name = ("originals + speeds " + ", ".join(f"{s:g}" for s in args.speeds)) if augment \
            else "originals (the shipped recipe)"
        print(f"| {name} | " + " | ".join(f"{loco[c]:.1f}" if c in loco else "-"
                                         for c in SPEECH_CORPORA) + f" | {six} |", flush=True)


if __name__ == "__main__":
    main()
