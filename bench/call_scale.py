"""Time and peak memory of the call analysis (``calls.analyze_call``) against the call's length.

Builds stereo FLAC calls of real speech from ../shared/data/ravdess_speech: an "agent" (one
actor, neutral and calm sentences) on the left channel and a "customer" (another actor) on the
right, alternating turns of one or two sentences with 0.3-1.2 s pauses; the customer's middle
third is angry (strong intensity), the rest neutral, calm or happy. The turns are known from
the construction and handed to ``analyze_call`` as its turn finder's answer, so what is
measured is this package's part (streaming each turn's channel, per-turn emotion, the summary),
not voice activity or diarization. Each size runs in a fresh process; peak memory is that
process's ``ru_maxrss``.

``--recognizer null`` answers every turn at once (no model): the cost of decoding, cutting
turns and summarizing, which is what must stay flat. ``--recognizer real`` is the shipped
EmotionRecognizer (load time reported apart).

    .venv/bin/python bench/call_scale.py --recognizer null --minutes 10 60
    .venv/bin/python bench/call_scale.py --recognizer real --minutes 2 10 --keep kept/
    .venv/bin/python bench/call_scale.py --recognizer real --minutes 2 --language per-turn
    .venv/bin/python bench/call_scale.py --rescore kept/   # escalations under today's rule
    .venv/bin/python bench/call_scale.py --recognizer real --with-finder --minutes 10 60
    .venv/bin/python bench/call_scale.py --recognizer real --with-finder --mono --minutes 60
    .venv/bin/python bench/call_scale.py --recognizer real --with-finder --fast --minutes 60

``--with-finder`` times the whole job (the real turn finder, then the emotion of each turn,
its models loaded before the clock starts); ``--batch-turns 1`` analyzes turn by turn, as
before batching; ``--workers 1`` runs the groups one after another, as before they overlapped;
``--fast`` is ``mer call --fast`` (int8 in the voice expert's layers).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import describe  # bench/ is on sys.path when a bench runs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SR = 16_000


def ravdess(data: Path, actor: int, emotions: tuple[str, ...], intensity: str | None = None
            ) -> list[Path]:
    folder = data / "ravdess_speech" / f"Actor_{actor:02d}"
    out = sorted(p for p in folder.glob("*.flac") if p.name.split("-")[2] in emotions
                 and (intensity is None or p.name.split("-")[3] == intensity))
    if not out:
        raise SystemExit(f"no RAVDESS clips for actor {actor} under {data}")
    return out


def load(path: Path) -> np.ndarray:
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float32")
    assert sr == SR, (path, sr)
    return x if x.ndim == 1 else x.mean(1)


def build_call(path: Path, minutes: float, data: Path, seed: int = 0) -> dict:
    """Write the call; return its turns (start, end, speaker, channel) and the angry stretch."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    agent = [load(p) for p in ravdess(data, 1, ("01", "02"))]
    calm = [load(p) for p in ravdess(data, 2, ("01", "02", "03"))]
    angry = [load(p) for p in ravdess(data, 2, ("05",), "02")]
    total = minutes * 60.0
    angry_from, angry_to = total / 3, 2 * total / 3
    turns, t = [], 0.5
    with sf.SoundFile(str(path), "w", SR, 2, format="FLAC", subtype="PCM_16") as out:
        written = 0

        def put(start: float, audio: np.ndarray, channel: int) -> None:
            nonlocal written
            a = int(round(start * SR))
            if a > written:
                out.write(np.zeros((a - written, 2), np.float32))
                written = a
            block = np.zeros((audio.size, 2), np.float32)
            block[:, channel] = audio
            out.write(block)
            written += audio.size

        speaker = 0
        while True:
            pool = agent if speaker == 0 else (angry if angry_from <= t < angry_to else calm)
            audio = np.concatenate([pool[rng.integers(len(pool))]
                                    for _ in range(rng.integers(1, 3))])
            if t + audio.size / SR > total:
                break
            put(t, audio, speaker)
            end = t + audio.size / SR
            turns.append({"start": round(t, 3), "end": round(end, 3),
                          "speaker": "agent" if speaker == 0 else "customer",
                          "channel": speaker})
            t = end + float(rng.uniform(0.3, 1.2))
            speaker = 1 - speaker
        if written < int(total * SR):
            out.write(np.zeros((int(total * SR) - written, 2), np.float32))
    return {"turns": turns, "angry": [angry_from, angry_to], "duration": total}


def mono_mix(path: Path) -> Path:
    """The mean of the call's two channels, written beside it (``--mono``)."""
    import soundfile as sf

    out = path.with_name(path.stem + "_mono.flac")
    with sf.SoundFile(str(path)) as src, sf.SoundFile(str(out), "w", SR, 1, format="FLAC",
                                                      subtype="PCM_16") as dst:
        for block in src.blocks(blocksize=SR * 60, dtype="float32"):
            dst.write(block.mean(1))
    return out


class NullRecognizer:
    """Answers every turn 'neutral' without a model: only the pipeline around it is timed."""

    fps, max_duration_s = 4.0, 36000.0

    def analyze_segment(self, clip, fusion=None, labels=None):
        from multimodal_emotion.labels import LABELS
        from multimodal_emotion.types import ModalityView, Prediction

        p = {k: (1.0 if k == "neutral" else 0.0) for k in LABELS}
        views = {m: ModalityView(True, "neutral", p, None, {"transcript": ""} if m == "text"
                                 else {}) for m in ("audio", "text", "face")}
        return Prediction("neutral", p, views, "product", clip.duration, confidence=1.0)


def child(call_path: str, truth_path: str, recognizer: str, keep: str = "") -> None:
    from types import SimpleNamespace

    from multimodal_emotion.calls import analyze_call, call_result
    from multimodal_emotion.turns import Turn

    truth = json.loads(Path(truth_path).read_text())
    turns = [Turn(**t) for t in truth["turns"]]
    t0 = time.perf_counter()
    if recognizer == "real":
        from multimodal_emotion.recognizer import EmotionRecognizer

        rec = EmotionRecognizer.from_pretrained(
            max_duration_s=36000.0, audio_int8=bool(os.environ.get("MER_BENCH_FAST")))
    else:
        rec = NullRecognizer()
    load_s = time.perf_counter() - t0
    language = os.environ.get("MER_BENCH_LANGUAGE", "auto")
    finder: dict = {}  # the real turn finder with --with-finder, else the known turns
    if not os.environ.get("MER_BENCH_FINDER"):
        finder = {"find_turns": lambda source, speakers=None: SimpleNamespace(turns=turns,
                                                                              channels=2),
                  "assign_roles": lambda result, **kw: {"agent": "agent",
                                                        "customer": "customer"}}
    else:  # its models load before the clock starts, as the recognizer's do
        from multimodal_emotion.segmenting import diarize, vad

        vad._session(), diarize._encoder()
        import sklearn.cluster  # noqa: F401  (a one-off import the mono clustering needs)
    t1, c1 = time.perf_counter(), _cpu_s()
    call = analyze_call(call_path, rec, language=language,
                        batch_turns=int(os.environ.get("MER_BENCH_BATCH", "8")),
                        workers=int(os.environ.get("MER_BENCH_WORKERS", "2")), **finder)
    result = call_result(call)
    wall, cpu = time.perf_counter() - t1, _cpu_s() - c1
    if keep:
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        Path(keep).write_text(json.dumps(result))
    print(json.dumps({
        "load_s": load_s, "wall_s": wall, "cpu_s": cpu, "turns": len(result["turns"]),
        "finder_s": call.timings_s.get("turns"), "emotion_s": call.timings_s.get("emotion"),
        "language": result.get("language"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "sentiment": result["summary"]["sentiment"]["score"], **escalation_check(result)}))


def _cpu_s() -> float:
    """User + system CPU seconds of this process, all threads: steadier than wall time on a
    machine other jobs share."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def escalation_check(result: dict, rule=None) -> dict:
    """Escalations of a call result under ``rule`` (default: the current default) against the
    angry middle third the call was built with."""
    from multimodal_emotion.calls.events import EscalationRule
    from multimodal_emotion.calls.summary import roles_of, summarize, turns_of

    rule = rule or EscalationRule()
    duration = float(result["duration"])
    roles = roles_of(result)
    events, _ = summarize(turns_of(result), duration, roles, list(roles), rule)
    a, b = duration / 3, 2 * duration / 3
    esc = [e for e in events if e["type"] == "escalation"]
    hit = [e for e in esc if e["start"] < b and e["end"] > a]
    return {"escalations": len(esc), "escalation_in_angry_stretch": bool(hit),
            "false_alarms": len(esc) - len(hit),
            "found_after_s": round(hit[0]["start"] - a, 1) if hit else None}


def rescore(folder: Path) -> None:
    """``--rescore DIR``: the escalation check of kept results under the current rule."""
    print("| call | turns | escalations | in the angry third | false alarms | starts (s after the "
          "angry third began) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for path in sorted(folder.glob("call_*.json")):
        result = json.loads(path.read_text())
        c = escalation_check(result)
        print(f"| {result['duration'] / 60:g} min | {len(result['turns'])} | {c['escalations']} "
              f"| {'yes' if c['escalation_in_angry_stretch'] else 'no'} | {c['false_alarms']} "
              f"| {c['found_after_s']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    ap.add_argument("--recognizer", choices=["null", "real"], default="null")
    ap.add_argument("--data", default=os.environ.get("MER_DATA", str(REPO.parent / "shared" /
                                                                     "data")))
    ap.add_argument("--keep", metavar="DIR", help="also write each call's result JSON here")
    ap.add_argument("--rescore", metavar="DIR", help="only re-check the escalations of "
                    "results kept with --keep, under the current rule (no model)")
    ap.add_argument("--language", default="auto",
                    help="analyze_call's language: auto (default), per-turn or a code")
    ap.add_argument("--with-finder", action="store_true",
                    help="find the turns with the real turn finder (timed with the rest: "
                         "the whole job) instead of handing over the known ones")
    ap.add_argument("--mono", action="store_true",
                    help="analyze the mono mix of the built call (with --with-finder: "
                         "speakers by voice clustering)")
    ap.add_argument("--batch-turns", type=int, default=8,
                    help="analyze_call's batch_turns (1: one turn at a time, as before)")
    ap.add_argument("--workers", type=int, default=2,
                    help="analyze_call's workers: groups of turns in flight at once (1: one "
                         "after another, as before the overlap)")
    ap.add_argument("--fast", action="store_true",
                    help="int8 in the voice expert's layers, as mer call --fast")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rescore:
        rescore(Path(args.rescore))
        return
    if args.child:
        child(*args.child)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            call = Path(tmp) / f"call_{minutes:g}min.flac"
            truth = build_call(call, minutes, Path(args.data))
            if args.mono:
                call = mono_mix(call)
            truth_path = Path(tmp) / "truth.json"
            truth_path.write_text(json.dumps(truth))
            keep = str(Path(args.keep) / f"call_{minutes:g}min.json") if args.keep else ""
            proc = subprocess.run([sys.executable, __file__, "--child", str(call),
                                   str(truth_path), args.recognizer, keep], capture_output=True,
                                  text=True, env={**os.environ, "PYTHONPATH": str(REPO),
                                                  "MER_BENCH_LANGUAGE": args.language,
                                                  "MER_BENCH_BATCH": str(args.batch_turns),
                                                  "MER_BENCH_WORKERS": str(args.workers),
                                                  "MER_BENCH_FAST": "1" if args.fast else "",
                                                  "MER_BENCH_FINDER":
                                                      "1" if args.with_finder else ""})
            if proc.returncode:
                raise SystemExit(proc.stderr[-3000:])
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r.update(minutes=minutes, mb=call.stat().st_size / 2**20, load=os.getloadavg()[0])
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    flags = "".join(f" {f}" for f, on in (("--with-finder", args.with_finder),
                                           ("--mono", args.mono), ("--fast", args.fast)) if on)
    print(f"\nrecognizer: {args.recognizer}; {os.cpu_count()} CPUs; command: "
          f"python bench/call_scale.py --recognizer {args.recognizer} --language "
          f"{args.language} --batch-turns {args.batch_turns} --workers {args.workers}{flags} "
          f"--minutes "
          + " ".join(f"{m:g}" for m in args.minutes))
    print(describe())
    print("| call | FLAC | turns | wall (turn finder + emotion) | CPU | x real time | peak RSS "
          "| load (1 min) | escalation in the angry third | false alarms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['minutes']:g} min | {r['mb']:.0f} MB | {r['turns']} | {r['wall_s']:.1f} s "
              f"({r['finder_s']:.1f} + {r['emotion_s']:.1f}) "
              f"| {r['cpu_s']:.0f} s | {r['minutes'] * 60 / r['wall_s']:.1f}x | "
              f"{r['peak_rss_mb']:.0f} MB | {r['load']:.1f} | "
              f"{'yes' if r['escalation_in_angry_stretch'] else 'no'} | {r['false_alarms']} |")
    if args.recognizer == "real":
        print(f"(model load {rows[0]['load_s']:.1f} s, not counted)")


if __name__ == "__main__":
    main()
