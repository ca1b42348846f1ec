"""Live analysis at real-time pace (issue 17): result lag and memory over a long stream, with
the full default model, on real CREMA-D clips looped, through ``mer stream``'s engine.

The six CREMA-D clips (one actor, six emotions, ~2.5 s each, 480x360 video) are decoded once
into 0.25 s pieces and replayed end to end, over and over, at real-time pace (each piece is
pushed when its last sample would have been captured), for ``--minutes``. Prints: windows cut,
analyzed, skipped, frames dropped; lag p50/p95/max (wall time from the push that completed a
window to its result); analysis time p50/p95; CPU seconds per window (what an idle 2-core
machine would need); resident memory sampled every 30 s; and the load average, because the
cores are shared. Targets: lag p95 <= 1.0 s, memory flat.

    nice .venv/bin/python bench/stream.py [--minutes 10] [--window 4] [--hop 2] [--fps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

DATA = Path(os.environ.get("MER_DATA") or Path(__file__).resolve().parents[1].parent
            / "shared" / "data")
CLIPS = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def looped(pieces: list, seconds: float) -> Iterator:
    """The decoded pieces again and again, times shifted so the stream runs on, for
    ``seconds``."""
    from multimodal_emotion.media_stream import MediaChunk

    offset = 0.0
    length = pieces[-1].end
    while offset < seconds:
        for c in pieces:
            if offset + c.start >= seconds:
                return
            yield MediaChunk(offset + c.start, offset + c.end, c.audio, c.frames,
                             None if c.frame_times is None else c.frame_times + offset)
        offset += length


def decode_once(fps: float) -> list:
    """The six clips as one list of 0.25 s pieces, end to end (times continuous)."""
    from multimodal_emotion.live_sources import file_chunks
    from multimodal_emotion.media_stream import MediaChunk

    out, offset = [], 0.0
    for emo in CLIPS:
        path = DATA / "crema_d_clips" / f"1001_DFA_{emo}_XX.flv"
        end = offset
        for c in file_chunks(str(path), fps):
            if c.audio is None or not c.audio.size:
                continue
            out.append(MediaChunk(offset + c.start, offset + c.end, c.audio, c.frames,
                                  None if c.frame_times is None else c.frame_times + offset))
            end = offset + c.end
        offset = end
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--window", type=float, default=4.0)
    p.add_argument("--hop", type=float, default=2.0)
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--rss-every", type=float, default=30.0, help="seconds between RSS samples")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import psutil

    from multimodal_emotion import EmotionRecognizer
    from multimodal_emotion.live_sources import replay
    from multimodal_emotion.streaming import recognizer_engine, warm_up

    proc = psutil.Process()
    t0 = time.perf_counter()
    rec = EmotionRecognizer.from_pretrained(fps=args.fps)
    warm_up(rec.analyze_segment)
    load_s = time.perf_counter() - t0
    pieces = decode_once(args.fps)
    results = []
    engine = recognizer_engine(rec, results.append, window_s=args.window, hop_s=args.hop,
                               fps=args.fps)
    rss: list[tuple[float, float]] = []
    loads: list[float] = []
    stop = threading.Event()
    start = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            rss.append((time.monotonic() - start, proc.memory_info().rss / 2**20))
            loads.append(os.getloadavg()[0])
            stop.wait(args.rss_every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0 = proc.cpu_times()
    replay(looped(pieces, args.minutes * 60), engine, speed=1.0)
    stats = engine.close()
    cpu1 = proc.cpu_times()
    stop.set()
    sampler.join()
    rss.append((time.monotonic() - start, proc.memory_info().rss / 2**20))
    loads.append(os.getloadavg()[0])
    wall = time.monotonic() - start

    ok = [r for r in results if r.error is None]
    lags = [r.lag_ms for r in ok]
    analysis = [r.analysis_ms for r in ok]
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    with_face = [r for r in ok if r.frames > 0]
    figures = {
        "stream_s": round(args.minutes * 60, 1), "wall_s": round(wall, 1),
        "window_s": args.window, "hop_s": args.hop, "fps": args.fps,
        "windows_cut": stats.windows, "analyzed": stats.analyzed,
        "skipped_windows": stats.skipped_windows, "errors": stats.errors,
        "frames_sampled": stats.windows and sum(r.frames + r.dropped["frames"] for r in results),
        "frames_dropped": stats.dropped_frames, "windows_with_face": len(with_face),
        "lag_ms": {"p50": round(pct(lags, 50)), "p95": round(pct(lags, 95)),
                   "max": round(max(lags)) if lags else None},
        "analysis_ms": {"p50": round(pct(analysis, 50)), "p95": round(pct(analysis, 95))},
        "cpu_s_per_window": round(cpu_s / max(1, stats.analyzed), 2),
        "rss_mb": [round(m) for _, m in rss],
        "load_avg_1min": {"min": round(min(loads), 1), "median": round(statistics.median(loads),
                                                                         1),
                          "max": round(max(loads), 1)},
        "model_load_s": round(load_s, 1), "cores": os.cpu_count(),
    }
    print(f"bench/stream.py --minutes {args.minutes:g} --window {args.window:g} --hop "
          f"{args.hop:g} --fps {args.fps:g}   (CREMA-D x6 looped, full default model, "
          f"{os.cpu_count()} cores)")
    rows = [
        ("stream / wall", f"{figures['stream_s']:.0f} s / {figures['wall_s']:.0f} s"),
        ("windows cut / analyzed / skipped",
         f"{stats.windows} / {stats.analyzed} / {stats.skipped_windows}"),
        ("frames dropped (of sampled)", f"{stats.dropped_frames} of "
                                        f"{figures['frames_sampled']}"),
        ("lag p50 / p95 / max", f"{figures['lag_ms']['p50']} / {figures['lag_ms']['p95']} / "
                                f"{figures['lag_ms']['max']} ms"),
        ("analysis p50 / p95", f"{figures['analysis_ms']['p50']} / "
                               f"{figures['analysis_ms']['p95']} ms"),
        ("CPU per analyzed window", f"{figures['cpu_s_per_window']:.2f} s"),
        ("RSS every 30 s (MB)", " ".join(str(m) for m in figures["rss_mb"])),
        ("RSS first / last / max", f"{figures['rss_mb'][0]} / {figures['rss_mb'][-1]} / "
                                   f"{max(figures['rss_mb'])} MB"),
        ("load average (1 min) min/med/max",
         f"{figures['load_avg_1min']['min']} / {figures['load_avg_1min']['median']} / "
         f"{figures['load_avg_1min']['max']}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
