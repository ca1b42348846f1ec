"""End-to-end latency of ``mer analyze`` on a 5-second clip, 2 CPU cores.

Prints cold start (imports + model loading), then the median over warm runs of every stage,
and peak resident memory. Targets (issue #2): warm <= 1.5 s (1.0 s stretch), cold <= 5 s.

    .venv/bin/python bench/latency.py [--clip PATH] [--runs 10] [--fusion attention]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

from machine import describe  # bench/ is on sys.path when a bench runs

T_START = time.perf_counter()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", help="clip to analyze (default: a 5 s demo clip built here)")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--fusion", default=None)
    p.add_argument("--no-language-id", action="store_true",
                   help="skip Whisper base's language ID (the English-only pipeline)")
    p.add_argument("--base-compute-type", default=None,
                   help="compute type of the language-ID Whisper base (int8, float32)")
    p.add_argument("--voice", default=None,
                   help="eSpeak NG voice for the built clip, e.g. de (default: English)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load_before = os.getloadavg()[0]  # the cores are shared: say how busy they were

    clip_path = args.clip
    if not clip_path:
        from multimodal_emotion.demo import make_demo_clip

        clip_path = os.path.join(tempfile.mkdtemp(), "bench5s.mp4")
        if args.voice:
            from multimodal_emotion.demo import GERMAN_TEXT

            make_demo_clip(clip_path, text=GERMAN_TEXT, seconds=5.0, voice=args.voice)
        else:
            make_demo_clip(clip_path, seconds=5.0)
    t0 = time.perf_counter()
    from multimodal_emotion import EmotionRecognizer

    t_import = time.perf_counter() - t0
    if args.base_compute_type:  # as a model folder's config.json would say it
        from multimodal_emotion.model import DEFAULT_MODEL_DIR, EmotionModel

        model = EmotionModel.from_pretrained(DEFAULT_MODEL_DIR)
        model.config.setdefault("encoders", {})["language"] = {
            "compute_type": args.base_compute_type}
        rec = EmotionRecognizer(model, DEFAULT_MODEL_DIR)
    else:
        rec = EmotionRecognizer.from_pretrained(language_id=not args.no_language_id)
    t_load = time.perf_counter() - t0
    first = rec.analyze(clip_path, fusion=args.fusion)
    t_cold = time.perf_counter() - t0

    cpu_cold = time.process_time()
    runs, cpu = [], []
    for _ in range(args.runs):
        c = time.process_time()
        runs.append(rec.analyze(clip_path, fusion=args.fusion).timings_ms)
        cpu.append((time.process_time() - c) * 1000)
    stages = list(runs[0])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"clip: {clip_path} ({first.duration_s:.2f} s), fusion={first.fusion}, "
          f"label={first.label}, cores={os.cpu_count()}, runs={args.runs}")
    print(f"{'stage':<12}{'median ms':>10}{'min ms':>10}{'max ms':>10}")
    for s in stages:
        vals = [r.get(s, 0.0) for r in runs]
        print(f"{s:<12}{statistics.median(vals):>10.0f}{min(vals):>10.0f}{max(vals):>10.0f}")
    print("(face runs in a second thread beside audio+transcribe+text, so stages overlap and "
          "do not add up to total)")
    print(f"cold start: import {t_import:.2f} s, load models {t_load - t_import:.2f} s "
          f"(torch is imported here, beside the Whisper loads), first clip "
          f"{t_cold - t_load:.2f} s, total {t_cold:.2f} s")
    # CPU time (all threads of this process) does not grow when other jobs share the cores,
    # so it bounds what the wall time would be on an idle machine: at most this, at least
    # half of it with two cores busy.
    print(f"CPU time: warm clip median {statistics.median(cpu):.0f} ms "
          f"(min {min(cpu):.0f}); cold start {cpu_cold:.2f} s")
    print(f"peak RSS: {peak_mb:.0f} MB")
    print(f"load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores")
    print(describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
