"""Text path benchmark: the text expert on GoEmotions-Ekman dev and MELD dev, encoder speed, and
transcription of the six CREMA-D clips (word error rate, seconds per clip).

Rows: (a) the shipped joint head (GoEmotions + MELD train, chosen on a validation split of
train), (b) per-corpus reference heads with the same hyper-parameters trained on one corpus
only. Dev sets are only scored here, never used to choose anything.

    python bench/text.py [--data ../shared/data] [--threads 1] [--model DIR]
    python bench/text.py --text-encoder DIR   # a tuned-layers folder from training.text_encoder
                                              # (MiniLM or MPNet, read from its config): fit the
                                              # joint head on it and score it the same way
    python bench/text.py --head-seeds 5       # also refit the joint head with seeds 0-4 and
                                              # report mean +- std: one seed's dev score moves
                                              # by more than a point
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from multimodal_emotion.datasets import default_data_root  # noqa: E402
from multimodal_emotion.datasets.text_corpora import load_meld  # noqa: E402
from multimodal_emotion.encoders import create  # noqa: E402
from multimodal_emotion.heads import predict_proba  # noqa: E402
from multimodal_emotion.training.text import (  # noqa: E402
    f1_scores, fit_text_expert, joint_training_data)


def decode_16k(path: Path) -> np.ndarray:
    """Audio track as 16 kHz mono float32 (PyAV decode + resample)."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32)


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


def wer(ref: str, hyp: str) -> tuple[int, int]:
    """(word edits, reference words): Levenshtein over words after lower-casing and stripping
    punctuation, so "Don't forget a jacket." matches "don't forget a jacket"."""
    r, h = _words(ref), _words(hyp)
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


def dev_scores(head, dev: dict[str, np.ndarray]) -> list[float]:
    """GoEmotions macro-F1 and accuracy, MELD weighted-F1 and accuracy."""
    pred = predict_proba(head, dev["X"]).argmax(1)
    g, m = dev["corpus"] == 0, dev["corpus"] == 1
    g_macro, _ = f1_scores(dev["y"][g], pred[g])
    _, m_weighted = f1_scores(dev["y"][m], pred[m])
    g_acc = float((pred[g] == dev["y"][g]).mean())
    m_acc = float((pred[m] == dev["y"][m]).mean())
    return [g_macro, g_acc, m_weighted, m_acc]


def score_rows(name: str, head, dev: dict[str, np.ndarray]) -> str:
    return f"| {name:<34} | " + " | ".join(f"{v:.3f}" for v in dev_scores(head, dev)) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--skip-reference", action="store_true", help="no per-corpus heads")
    ap.add_argument("--text-encoder", default=None,
                    help="score another tuned text encoder (a folder written by "
                         "multimodal_emotion.training.text_encoder): the joint head is refitted "
                         "on it with the shipped hyper-parameters")
    ap.add_argument("--head-seeds", type=int, default=0,
                    help="also refit the joint head with this many seeds and report the spread")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.data) if args.data else default_data_root()

    from multimodal_emotion.model import DEFAULT_MODEL_DIR, EmotionModel
    from multimodal_emotion.recognizer import build_encoder
    from multimodal_emotion.training.default_model import TEXT_HEAD_GRID

    model_dir = Path(args.model) if args.model else DEFAULT_MODEL_DIR
    model = EmotionModel.from_pretrained(model_dir)
    hp = TEXT_HEAD_GRID
    if args.text_encoder:
        folder = Path(args.text_encoder).resolve()
        base = json.loads((folder / "config.json").read_text())["base_model"]
        encoder = build_encoder("text", {"name": "hf", "model": base,
                                         "checkpoint": str(folder)}, model_dir)
        head, _ = fit_text_expert(root, grid=[hp], verbose=False, encoder=encoder)
        shipped_name = "(a) joint head refitted"
    else:
        head = model.experts["text"]  # the shipped text expert
        # exactly the model's text encoder (with its fine-tuned layers, if it has them)
        encoder = build_encoder("text", model.config["encoders"]["text"], model_dir)
        shipped_name = "(a) joint GoEmotions+MELD (shipped)"
    dev = joint_training_data(root, encoder, split="dev")
    tuned = "top layers fine-tuned" if encoder.config().get("tuned_layers") else "frozen"

    print(f"\n## Text expert ({encoder.model_id}, {tuned}, mean+L2 {encoder.dim}-d) on dev\n")
    print("| head                               | GoEmo macro-F1 | GoEmo acc | MELD w-F1 | MELD acc |")
    print("|------------------------------------|-------|-------|-------|-------|")
    print(score_rows(shipped_name, head, dev), flush=True)
    if args.head_seeds:
        scores = []
        for seed in range(args.head_seeds):
            refit, _ = fit_text_expert(root, grid=[hp], seed=seed, verbose=False,
                                       encoder=encoder)
            scores.append(dev_scores(refit, dev))
            print(score_rows(f"(a) joint head refitted, seed {seed}", refit, dev), flush=True)
        m, sd = np.mean(scores, 0), np.std(scores, 0)
        print(f"| (a) joint head, seeds 0-{args.head_seeds - 1}: mean +- std | "
              + " | ".join(f"{a:.3f} +- {b:.3f}" for a, b in zip(m, sd)) + " |", flush=True)
    if not args.skip_reference:
        for corpora, name in (((0,), "(b) GoEmotions only"), ((1,), "(b) MELD only")):
            ref, _ = fit_text_expert(root, corpora=corpora, grid=[hp], verbose=False,
                                     encoder=encoder)
            print(score_rows(name, ref, dev), flush=True)

    texts, _, _ = load_meld(root / "meld", "dev")
    sample = texts[:1000]
    t0 = time.perf_counter()
    encoder.embed_texts(sample)
    dt = time.perf_counter() - t0
    print(f"\nencoder speed: {len(sample) / dt:.0f} texts/s "
          f"({len(sample)} MELD dev utterances, batch 64, {args.threads} thread(s))")

    clips = root / "crema_d_clips"
    transcriber = create("transcriber", "faster-whisper")
    print("\n## CREMA-D transcription (faster-whisper tiny.en int8, beam 1, VAD)\n")
    print("| clip | seconds of audio | transcribe s | transcript | WER |")
    print("|---|---|---|---|---|")
    edits = total = 0
    times = []
    with open(clips / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            audio = decode_16k(clips / f"{row['name']}.flv")
            t0 = time.perf_counter()
            hyp = transcriber.transcribe(audio)
            times.append(time.perf_counter() - t0)
            e, n = wer(row["transcript"], hyp)
            edits, total = edits + e, total + n
            print(f"| {row['name']} | {len(audio) / 16000:.2f} | {times[-1]:.2f} | {hyp} | "
                  f"{e / n:.2f} |")
    print(f"\nCREMA-D WER {edits / total:.3f} over {total} words; "
          f"{np.mean(times):.2f} s per clip (mean), {args.threads} thread(s) for torch; "
          f"CTranslate2 default threads")


if __name__ == "__main__":
    main()
