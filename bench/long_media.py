"""Peak memory and time of ``mer analyze`` on long recordings: does memory grow with duration?

Builds audio-only FLAC files of real speech (the six CREMA-D utterances in ../shared/data,
decoded and looped with 1 s pauses) of each requested length, plus an hour of digital silence,
and runs ``mer analyze --json`` on each in a fresh process, reporting wall time, windows and
peak resident memory (``ru_maxrss`` of the child). Files are decoded piece by piece
(``media_stream``), so the peak should not depend on the duration.

    .venv/bin/python bench/long_media.py --minutes 2 10 --silence-minutes 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import describe  # bench/ is on sys.path when a bench runs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from multimodal_emotion import demo, media  # noqa: E402


def speech_flac(path: Path, minutes: float, data: Path) -> Path:
    import av

    clips = sorted((data / "crema_d_clips").glob("*.flv"))
    if not clips:
        raise SystemExit(f"no CREMA-D clips under {data}")
    pause = np.zeros(media.SAMPLE_RATE, np.float32)
    loop = np.concatenate([x for c in clips for x in (media.load(c).audio, pause)])
    total = int(minutes * 60 * media.SAMPLE_RATE)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=media.SAMPLE_RATE, layout="mono")
        done = 0
        while done < total:
            piece = loop[: total - done]
            frame = av.AudioFrame.from_ndarray((piece[None] * 32767).astype(np.int16),
                                               format="s16", layout="mono")
            frame.sample_rate, frame.pts = media.SAMPLE_RATE, done
            for packet in stream.encode(frame):
                out.mux(packet)
            done += piece.size
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def run(path: Path) -> dict:
    cmd = [sys.executable, "-m", "multimodal_emotion.cli", "analyze", "--json",
           "--max-duration", "36000", str(path)]
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, text=True, env={
            **os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the max so far
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        out_f.seek(0), err_f.seek(0)
        stdout, stderr = out_f.read(), err_f.read()
    peak = usage.ru_maxrss
    if proc.returncode != 0:
        return {"error": stderr.strip().splitlines()[-1], "wall": wall}
    out = json.loads(stdout.splitlines()[-1])
    return {"wall": wall, "peak_mb": peak / 1024, "label": out["label"],
            "windows": max(1, len(out.get("segments", []))), "duration": out["duration_s"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, nargs="*", default=[2.0, 10.0])
    p.add_argument("--silence-minutes", type=float, nargs="*", default=[60.0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mer-long-"))
    rows = []
    for m in a.minutes:
        rows.append((f"speech, {m:g} min", run(speech_flac(work / f"speech_{m:g}.flac", m,
                                                             Path(a.data)))))
    for m in a.silence_minutes:
        rows.append((f"silence, {m:g} min", run(demo.make_silent_flac(
            work / f"silence_{m:g}.flac", seconds=m * 60))))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(describe() + "\n")
    print("| file | duration s | windows | label | wall s | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        if "error" in r:
            print(f"| {name} | - | - | error: {r['error']} | {r['wall']:.0f} | - |")
        else:
            print(f"| {name} | {r['duration']:.0f} | {r['windows']} | {r['label']} | "
                  f"{r['wall']:.0f} | {r['peak_mb']:.0f} |")
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
