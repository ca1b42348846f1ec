"""Text path benchmark: the text expert on GoEmotions-Ekman dev and MELD dev, encoder speed, and
transcription of the six CREMA-D clips (word error rate, seconds per clip).

Rows: (a) the shipped text heads, one per input domain on one tuned encoder: *spoken* (MELD
train; what clip transcripts go through) and *written* (GoEmotions train), each scored on both
dev sets; (b) for comparison, one joint head (GoEmotions + MELD, the earlier recipe) on the same
encoder. Heads are chosen on validation rows carved from train; dev sets are only scored here,
never used to choose anything.

    python bench/text.py [--data ../shared/data] [--threads 1] [--model DIR]
    python bench/text.py --text-encoder DIR   # a tuned-layers folder from training.text_encoder
                                              # (MiniLM or MPNet, read from its config): fit the
                                              # joint head on it and score it the same way
    python bench/text.py --head-seeds 5       # also refit each head with seeds 0-4 and
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
    f1_scores, fit_text_expert, joint_training_data, joint_training_texts)


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
    from multimodal_emotion.training.default_model import TEXT_HEAD_GRID, TEXT_HEAD_GRIDS
    from multimodal_emotion.training.text_encoder import TEXT_DOMAINS, text_validation_rows

    model_dir = Path(args.model) if args.model else DEFAULT_MODEL_DIR
    model = EmotionModel.from_pretrained(model_dir)
    hp = TEXT_HEAD_GRID
    if args.text_encoder:
        folder = Path(args.text_encoder).resolve()
        base = json.loads((folder / "config.json").read_text())["base_model"]
        encoder = build_encoder("text", {"name": "hf", "model": base,
                                         "checkpoint": str(folder)}, model_dir)
        heads = {"(a) joint head refitted": fit_text_expert(root, grid=[hp], verbose=False,
                                                            encoder=encoder)[0]}
    else:
        # the shipped heads: one per input domain (spoken = what clip transcripts use)
        heads = {f"(a) {d or 'joint'} head (shipped)": model.expert_head("text", d)
                 for d in (model.domains("text") or [None])}
        # exactly the model's text encoder (with its tuned layers or adapters, if any)
        encoder = build_encoder("text", model.config["encoders"]["text"], model_dir)
    dev = joint_training_data(root, encoder, split="dev")
    tuned = "tuned" if encoder.config().get("tuned_layers") else "frozen"

    print(f"\n## Text expert ({encoder.model_id}, {tuned}, mean+L2 {encoder.dim}-d) on dev\n")
    print("| head                               | GoEmo macro-F1 | GoEmo acc | MELD w-F1 | MELD acc |")
    print("|------------------------------------|-------|-------|-------|-------|")
    for name, head in heads.items():
        print(score_rows(name, head, dev), flush=True)
    domains = model.domains("text") if not args.text_encoder else []
    if args.head_seeds:
        # refit each head with other seeds: how much of a dev score is one seed's luck
        # validation rows need only each row's corpus, not its embedding
        val = text_validation_rows(root, joint_training_texts(root)[2]) if domains else None
        for domain in domains or [None]:
            scores = []
            for seed in range(args.head_seeds):
                if domain is None:
                    refit, _ = fit_text_expert(root, grid=[hp], seed=seed, verbose=False,
                                               encoder=encoder)
                else:
                    refit, _ = fit_text_expert(root, corpora=(TEXT_DOMAINS.index(domain),),
                                               grid=TEXT_HEAD_GRIDS[domain], seed=seed,
                                               verbose=False, encoder=encoder, val=val)
                scores.append(dev_scores(refit, dev))
                print(score_rows(f"(a) {domain or 'joint'} head refitted, seed {seed}", refit,
                                 dev), flush=True)
            m, sd = np.mean(scores, 0), np.std(scores, 0)
            print(f"| (a) {domain or 'joint'} head, seeds 0-{args.head_seeds - 1}: mean +- std | "
                  + " | ".join(f"{a:.3f} +- {b:.3f}" for a, b in zip(m, sd)) + " |", flush=True)
    if not args.skip_reference:
        refs = [((0, 1), "(b) one joint head, same encoder")] if domains else \
            [((0,), "(b) GoEmotions only"), ((1,), "(b) MELD only")]
        for corpora, name in refs:
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
