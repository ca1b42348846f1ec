"""What batching a call's turns buys: CPU and per-stage time of ``analyze_segments`` against
one turn at a time (``analyze_segment``), and whether the answers stay the same.

Takes the first ``--turns`` turns of the 10-minute call ``bench/call_scale.py`` builds (RAVDESS
speech, stereo, each turn cut from its speaker's channel), loads the shipped recognizer once,
warms it up, then analyzes the turns with each ``--batch`` size (1: ``analyze_segment`` per
turn, the path before batching), the call's language given as English (as ``analyze_call``
does once it is fixed), with each ``--workers`` count (groups in flight at once, as
``analyze_call(workers=...)`` runs them: ``calls.overlap.InOrder``). Per-stage seconds are the
sums of each prediction's ``timings_ms`` (a batch stage's time is shared among its turns; with
more than one worker a stage's time includes waiting for the engine the other group holds, so
they add up to more than the wall time). CPU is the process's user + system time, steadier than
wall time on a shared machine.

    .venv/bin/python bench/call_batching.py --turns 32 --batch 1 4 8 16 32
    .venv/bin/python bench/call_batching.py --turns 64 --batch 8 --workers 1 2 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from machine import describe  # bench/ is on sys.path when a bench runs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    import soundfile as sf

    from call_scale import build_call
    from multimodal_emotion.calls.overlap import InOrder
    from multimodal_emotion.recognizer import EmotionRecognizer
    from multimodal_emotion.types import Clip

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=32)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    ap.add_argument("--workers", type=int, nargs="+", default=[1],
                    help="groups in flight at once (analyze_call's workers) for batches > 1")
    ap.add_argument("--fast", action="store_true",
                    help="int8 in the voice expert's layers, as mer call --fast")
    ap.add_argument("--data", default=os.environ.get("MER_DATA", str(REPO.parent / "shared" /
                                                                     "data")))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "call.flac"
        truth = build_call(path, 10.0, Path(args.data))
        x, sr = sf.read(str(path), dtype="float32")
    clips = [Clip(x[int(round(t["start"] * sr)):int(round(t["end"] * sr)), t["channel"]].copy(),
                  sr, None, None, 4.0, t["end"] - t["start"], f"turn {i}")
             for i, t in enumerate(truth["turns"][:args.turns])]
    rec = EmotionRecognizer.from_pretrained(max_duration_s=36000.0, audio_int8=args.fast)
    lang = ("en", 0.94)
    rec.analyze_segments(clips[:4], language=lang, batch_size=4)  # warm-up
    rows, ref = [], None
    runs = [(bs, w) for bs in args.batch for w in (args.workers if bs > 1 else [1])]
    for bs, workers in runs:
        t, c = time.perf_counter(), _cpu_s()
        if bs == 1:
            preds = [rec.analyze_segment(clip, language=lang) for clip in clips]
        else:
            preds = []
            with InOrder(lambda g: rec.analyze_segments(g, language=lang, batch_size=bs),
                         lambda g, ps: preds.extend(ps), workers) as groups:
                for g in range(0, len(clips), bs):
                    groups.submit(clips[g:g + bs])
                groups.drain()
        wall, cpu = time.perf_counter() - t, _cpu_s() - c
        stages = Counter()
        for p in preds:
            for k, v in p.timings_ms.items():
                stages[k] += v / 1000
        ref = ref or preds
        same = sum(a.label == b.label and a.modalities["text"].extras["transcript"]
                   == b.modalities["text"].extras["transcript"] for a, b in zip(ref, preds))
        diff = max((abs(a.probabilities[k] - b.probabilities[k]) for a, b in zip(ref, preds)
                    if a.probabilities for k in a.probabilities), default=0.0)
        rows.append((bs, workers, wall, cpu, stages, same, diff, os.getloadavg()[0]))
        print(json.dumps({"batch": bs, "workers": workers, "wall_s": wall, "cpu_s": cpu,
                          **stages}), file=sys.stderr, flush=True)
    command = (f"bench/call_batching.py --turns {args.turns} --batch "
               + " ".join(map(str, args.batch)) + " --workers "
               + " ".join(map(str, args.workers)) + (" --fast" if args.fast else ""))
    print(f"\n{len(clips)} turns of the 10-minute bench call; command: python {command}")
    print(describe())
    print("| batch | workers | wall | CPU | audio (Whisper base L1-4) | transcribe (tiny.en) "
          "| text (sentence encoder) | same label + transcript as the first row "
          "| max probability diff | load (1 min) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for bs, workers, wall, cpu, st, same, diff, load in rows:
        print(f"| {bs} | {workers} | {wall:.1f} s | {cpu:.1f} s | {st['audio']:.1f} s | "
              f"{st['transcribe']:.1f} s | {st['text']:.1f} s | {same}/{len(clips)} | "
              f"{diff:.1e} | {load:.1f} |")


if __name__ == "__main__":
    main()
