"""Fused accuracy on truly paired audio-visual data: the six CREMA-D clips in ../shared/data.

Every clip goes through the whole pipeline once (decode, Whisper, transcript, MiniLM, face CNN);
then each fusion strategy and each modality alone answers from the same embeddings. Six clips
is a smoke-level sample, not a benchmark: read the table as "which clips each path gets right".

    .venv/bin/python bench/crema_d.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from multimodal_emotion import EmotionRecognizer, LABELS, media
    from multimodal_emotion.datasets import default_data_root
    from multimodal_emotion.evaluation import CREMA_CODES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None)
    args = p.parse_args()
    root = Path(args.data) if args.data else default_data_root()
    folder = root / "crema_d_clips"
    if not folder.exists():
        print(f"CREMA-D clips not found at {folder}; set MER_DATA or --data", file=sys.stderr)
        return 2
    rec = EmotionRecognizer.from_pretrained()
    rows = list(csv.DictReader((folder / "labels.csv").open()))
    fusions = list(rec.model.fusions)  # every strategy the model ships
    paths = fusions + ["audio", "text", "face"]
    correct = {k: 0 for k in paths}
    print(f"{'clip':<18}{'truth':<10}" + "".join(f"{k:<11}" for k in paths) + "transcript")
    for r in rows:
        clip = media.load(folder / f"{r['name']}.flv", fps=rec.fps)
        outputs, _ = rec.encode(clip)
        emb = {m: o.embedding for m, o in outputs.items()}
        avail = {m: o.available for m, o in outputs.items()}
        seqs = {m: o.sequence for m, o in outputs.items() if o.available}
        truth = CREMA_CODES[r["name"].split("_")[2]]
        answers = {}
        for f in fusions:
            probs, experts = rec.model.predict(emb, avail, f, seqs)
            answers[f] = LABELS[int(np.argmax(probs))]
        for m in ("audio", "text", "face"):
            answers[m] = LABELS[int(np.argmax(experts[m]))] if experts[m] is not None else "-"
        for k in paths:
            correct[k] += answers[k] == truth
        cells = "".join(f"{answers[k] + ('*' if answers[k] == truth else ''):<11}" for k in paths)
        print(f"{r['name']:<18}{truth:<10}{cells}{outputs['text'].extras.get('transcript', '')}")
    n = len(rows)
    print(f"{'correct':<28}" + "".join(f"{correct[k]}/{n:<9}" for k in paths))
    print("(* = correct; all three modalities were available on every clip unless marked '-')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
