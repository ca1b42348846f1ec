"""What int8 arithmetic in the voice expert's layers (``mer call --fast``) costs and buys.

The shipped audio expert pools four Whisper base layers run in torch (float32). ``--fast``
(``EmotionRecognizer(audio_int8=True)``, ``quantization.int8_linear_layers``) runs their linear
maps in int8; the expert's head is the shipped one, trained on float32 embeddings. Three
measurements, each printed as a table:

1. **Held-out accuracy** (``--loco``): for each corpus, the recipe's expert trained on the other
   three corpora's float32 embeddings (``training.speech.loco_uar``'s protocol) scores the held-out
   corpus embedded in float32 and in int8: what an unseen voice and studio gets either way.
   Embeds every corpus once in int8 (cached; nEMO every 3rd by default, ~8 min on 2 cores).
2. **Agreement and speed** (``--n``): ``--n`` random clips per corpus (seed 0) through the shipped
   expert (calibrated), float32 against int8: labels that change, the largest probability change,
   and the encoder's time per clip in batches of 8 (as a call's turns run).
3. **Calls** (``--calls A B``): turn labels of two ``bench/call_scale.py --keep`` folders (one run
   without, one with ``--fast``) compared turn by turn.

    .venv/bin/python bench/int8_audio.py --loco --n 120
    .venv/bin/python bench/int8_audio.py --calls kept_exact/ kept_fast/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from multimodal_emotion.datasets import default_data_root  # noqa: E402
from multimodal_emotion.datasets.speech_corpora import SPEECH_CORPORA  # noqa: E402
from multimodal_emotion.heads import predict_proba  # noqa: E402
from multimodal_emotion.metrics import uar  # noqa: E402
from multimodal_emotion.training.audio import default_audio_encoder  # noqa: E402
from multimodal_emotion.training.speech import (fit_expert, load_speech_data,  # noqa: E402
                                                loco_split, restricted_predict)


def loco(root: Path, nemo_every: int) -> None:
    """Table 1: LOCO UAR of float32-trained experts on float32 vs int8 held-out embeddings."""
    every = {"nemo": nemo_every}
    # originals only: int8 copies of the speed-perturbed training rows are not worth embedding
    # for what this table asks (how int8 moves the held-out side)
    fp32 = load_speech_data(root, every=every, speeds=())
    int8 = load_speech_data(root, default_audio_encoder(threads=2, int8=True), every=every,
                            speeds=())
    if not (np.array_equal(fp32.y, int8.y) and np.array_equal(fp32.speaker, int8.speaker)):
        raise SystemExit("float32 and int8 rows differ (a clip silent in one only?)")
    print("\n## Leave-one-corpus-out UAR (%), expert trained on the other corpora in float32\n")
    print("| held-out corpus | clips | float32 held-out | int8 held-out | labels changed |")
    print("| --- | --- | --- | --- | --- |")
    for corpus in SPEECH_CORPORA:
        train, test = loco_split(fp32, corpus)
        head = fit_expert(fp32.rows(train))
        y = fp32.y[test]
        allowed = np.unique(y)
        a = restricted_predict(predict_proba(head, fp32.X[test]), allowed)
        b = restricted_predict(predict_proba(head, int8.X[test]), allowed)
        print(f"| {corpus} | {len(y)} | {100 * uar(y, a):.1f} | {100 * uar(y, b):.1f} | "
              f"{100 * np.mean(a != b):.1f} % |", flush=True)


def agreement(root: Path, n: int) -> None:
    """Table 2: the shipped expert on ``n`` clips per corpus, float32 vs int8, and the time."""
    import torch

    from multimodal_emotion.datasets.ravdess import read_audio
    from multimodal_emotion.datasets.speech_corpora import load_speech_corpus
    from multimodal_emotion.model_dir import DEFAULT_MODEL_DIR, load_model

    torch.set_num_threads(2)
    model = load_model(DEFAULT_MODEL_DIR)
    encoders = {"float32": default_audio_encoder(threads=2, final_layer=False),
                "int8": default_audio_encoder(threads=2, final_layer=False, int8=True)}
    rng = np.random.default_rng(0)
    print(f"\n## The shipped expert, float32 vs int8 ({n} random clips per corpus, seed 0)\n")
    print("| corpus | clips | labels changed | largest probability change | float32 ms/clip "
          "| int8 ms/clip |")
    print("| --- | --- | --- | --- | --- | --- |")
    total = changed = 0
    for corpus in SPEECH_CORPORA:
        records = load_speech_corpus(corpus, root)
        pick = rng.choice(len(records), size=min(n, len(records)), replace=False)
        waves = [read_audio(records[i].path) for i in pick]
        proba, ms = {}, {}
        for name, enc in encoders.items():
            enc.encode_audio_batch(waves[:8], 8)  # warm-up
            t = time.perf_counter()
            outs = enc.encode_audio_batch(waves, 8)
            ms[name] = (time.perf_counter() - t) * 1000 / len(waves)
            proba[name] = model.calibrated_expert_proba(
                "audio", np.stack([o.embedding for o in outs]))
        a, b = proba["float32"].argmax(1), proba["int8"].argmax(1)
        total, changed = total + len(a), changed + int((a != b).sum())
        print(f"| {corpus} | {len(a)} | {100 * np.mean(a != b):.1f} % | "
              f"{np.abs(proba['float32'] - proba['int8']).max():.3f} | {ms['float32']:.0f} | "
              f"{ms['int8']:.0f} |", flush=True)
    print(f"| all | {total} | {100 * changed / total:.1f} % | | | |")


def calls(exact: Path, fast: Path) -> None:
    """Table 3: turn labels of the same built calls analyzed without and with ``--fast``."""
    print("\n## Calls: turn labels without and with --fast (bench/call_scale.py --keep)\n")
    print("| call | turns | label changed | largest probability change | escalations (exact / "
          "fast) | sentiment score (exact / fast) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path in sorted(exact.glob("call_*.json")):
        other = fast / path.name
        if not other.exists():
            continue
        a, b = json.loads(path.read_text()), json.loads(other.read_text())
        ta, tb = a["turns"], b["turns"]
        if [(t["start"], t["end"]) for t in ta] != [(t["start"], t["end"]) for t in tb]:
            raise SystemExit(f"{path.name}: the two runs found different turns")
        changed = sum(x["label"] != y["label"] for x, y in zip(ta, tb))
        diff = max(abs(x["probabilities"][k] - y["probabilities"][k])
                   for x, y in zip(ta, tb) for k in x["probabilities"])
        esc = [sum(e["type"] == "escalation" for e in r["events"]) for r in (a, b)]
        sent = [r["summary"]["sentiment"]["score"] for r in (a, b)]
        print(f"| {a['duration'] / 60:g} min | {len(ta)} | {changed} ({100 * changed / len(ta):.1f}"
              f" %) | {diff:.3f} | {esc[0]} / {esc[1]} | {sent[0]:+.3f} / {sent[1]:+.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loco", action="store_true", help="table 1 (embeds all corpora in int8)")
    ap.add_argument("--nemo-every", type=int, default=3,
                    help="table 1: every n-th nEMO utterance (3: a third, as bench/"
                         "speech_corpora.py --nemo-every 3)")
    ap.add_argument("--n", type=int, default=0, help="table 2: clips per corpus (0: skip)")
    ap.add_argument("--calls", nargs=2, metavar=("EXACT", "FAST"), type=Path,
                    help="table 3: two bench/call_scale.py --keep folders")
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    root = args.data or default_data_root()
    print("command: python bench/int8_audio.py " + " ".join(sys.argv[1:]))
    if args.loco:
        loco(root, args.nemo_every)
    if args.n:
        agreement(root, args.n)
    if args.calls:
        calls(*args.calls)


if __name__ == "__main__":
    main()
