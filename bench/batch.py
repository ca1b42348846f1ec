"""Throughput of ``mer batch`` and what one file costs, on real clips.

Protocol: 20 real clips from ``$MER_DATA`` (default ../shared/data): the 6 CREMA-D videos
(FLV, 480x360, about 2.5 s), the 7 MEAD videos (one 1920x1080 full frame, six 256x256 crops;
four with sound) and the first RAVDESS speech recording (FLAC, about 3.5 s) of actors 1-7. They
are listed in a TXT manifest and analyzed with the shipped default model, into a fresh results
file per run, by

  - local worker processes, 1 and 2 (``mer batch --workers N``);
  - Ray Data on a local cluster (``ray.init(num_cpus=2)``), 2 actors (``--ray --workers 2``);
  - and 1 worker on one clip ("once"), whose CPU seconds beside the 1-worker run's give the CPU
    cost of a model load and of a file, which the load of the shared machine does not change.

Each run is timed end to end (worker start and model load included) and from its first result
to its last (the steady rate once models are loaded). The cost of one file is taken from the
``timings_ms`` the 1-worker run wrote (the face stage runs in a thread beside audio, transcribe
and text, so the stages add up to more than ``total``), plus the JSON line (serialise + write +
flush) and what is left (process hand-off, the pool). The machine's 1-minute load average is
printed beside each run: the 2 cores are shared with other jobs; the CPU seconds the local
workers used (getrusage of the joined children) over the wall time say how many cores a run
really got.

Run: PYTHONPATH=. python bench/batch.py [--runs local1,local2,ray2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # bench/ is on sys.path when a bench runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from multimodal_emotion.batch import AnalyzeSpec, Batch  # noqa: E402
from multimodal_emotion.datasets import default_data_root  # noqa: E402


def clip_list(data: Path) -> list[Path]:
    crema = sorted((data / "crema_d_clips").glob("*.flv"))
    mead = sorted((data / "mead_clips").glob("*.mp4"))
    ravdess = [sorted((data / "ravdess_speech" / f"Actor_{a:02d}").glob("*.flac"))[0]
               for a in range(1, 8)]
    clips = crema + mead + ravdess
    if len(clips) != 20:
        raise SystemExit(f"expected 20 clips under {data}, found {len(clips)}")
    return clips


def timed_run(name: str, manifest: Path, out: Path, workers: int, ray: str | None) -> dict:
    """One batch run: wall time, first-to-last result time, per-worker model load."""
    stamps: list[float] = []
    load_before = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    batch = Batch([manifest], out)
    summary = batch.run(AnalyzeSpec(), workers=workers, ray=ray,
                        on_result=lambda r: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # local workers, joined at the end
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    n = summary.done + summary.failed
    steady = (n - 1) / (stamps[-1] - stamps[0]) if n > 1 and stamps[-1] > stamps[0] else 0.0
    return {"run": name, "files": n, "failed": summary.failed, "wall_s": wall,
            "files_per_s": n / wall, "steady_files_per_s": steady,
            "first_result_s": stamps[0] - t0 if stamps else float("nan"),
            "load_s": statistics.mean(summary.load_s) if summary.load_s else float("nan"),
            "load_avg": (load_before, os.getloadavg()[0]),
            "worker_cpu_s": cpu if ray is None else float("nan")}


def cost_breakdown(out: Path, run: dict) -> list[tuple[str, float]]:
    """Mean milliseconds per file of each stage, from the lines a 1-worker run wrote (in the
    order it analyzed them). The first file is left out, as it is from the steady rate: it
    also pays one-off warm-up (first calls into each engine), shown on its own row."""
    lines = out.read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    first = recs[0]["timings_ms"]["total"] if "error" not in recs[0] else float("nan")
    ok = [r for r in recs[1:] if "error" not in r]
    keys: list[str] = []
    for r in ok:
        keys += [k for k in r["timings_ms"] if k not in keys]
    rows = [(k, statistics.mean(r["timings_ms"].get(k, 0.0) for r in ok)) for k in keys]
    # the JSON line: serialise the dict and append + flush, as the runner does
    with tempfile.TemporaryDirectory() as d, open(Path(d) / "x.jsonl", "a") as f:
        t = time.perf_counter()
        for r in recs:
            f.write(json.dumps(r) + "\n")
            f.flush()
        json_ms = (time.perf_counter() - t) * 1000 / len(recs)
    rows.append(("json line (dumps + write + flush)", json_ms))
    per_file_ms = 1000 / run["steady_files_per_s"] if run["steady_files_per_s"] else float("nan")
    total = dict(rows).get("total", float("nan"))
    rows.append(("per file at the steady rate (1 worker, first to last result)", per_file_ms))
    rows.append(("  of which outside analyze(): hand-off, pool", per_file_ms - total - json_ms))
    rows.append(("first file's total (warm-up included)", first))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="data root (default $MER_DATA or ../shared/data)")
    ap.add_argument("--runs", default="once,local1,local2,ray2",
                    help="once: 1 worker on the first clip only, for the CPU cost of a model "
                         "load; localN: N worker processes; rayN: N Ray actors")
    args = ap.parse_args()
    data = Path(args.data) if args.data else default_data_root()
    clips = clip_list(data)
    runs = args.runs.split(",")
    results, breakdown = [], None
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "clips.txt"
        manifest.write_text("\n".join(map(str, clips)) + "\n")
        one = Path(tmp) / "one.txt"
        one.write_text(f"{clips[0]}\n")
        for name in runs:
            out = Path(tmp) / f"{name}.jsonl"
            if name == "once":
                r = timed_run(name, one, out, 1, None)
            elif name.startswith("local"):
                r = timed_run(name, manifest, out, int(name[5:]), None)
            elif name.startswith("ray"):
                import ray

                t = time.perf_counter()
                ray.init(num_cpus=2, object_store_memory=100 * 1024 * 1024,
                         include_dashboard=False, logging_level="ERROR")
                start_s = time.perf_counter() - t
                try:
                    r = timed_run(name, manifest, out, int(name[3:]), "local")
                finally:
                    ray.shutdown()
                r["run"] += f" (+{start_s:.1f} s cluster start, not in wall)"
            else:
                raise SystemExit(f"unknown run {name!r}")
            results.append(r)
            print(f"# {r['run']}: {r}", file=sys.stderr, flush=True)
            if name == "local1":
                breakdown = cost_breakdown(out, r)

    print(f"\n20 real clips ({data}): 6 CREMA-D, 7 MEAD, 7 RAVDESS; shipped default model; "
          f"{os.cpu_count()} CPU cores, shared")
    print(describe() + "\n")
    print("| run | files (failed) | wall s | files/s end to end | first result s | "
          "files/s after first | model load s / worker | workers' CPU s (cores used) | "
          "load avg before -> after |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['run']} | {r['files']} ({r['failed']}) | {r['wall_s']:.1f} | "
              f"{r['files_per_s']:.3f} | {r['first_result_s']:.1f} | "
              f"{r['steady_files_per_s']:.3f} | {r['load_s']:.1f} | "
              + (f"{r['worker_cpu_s']:.0f} ({r['worker_cpu_s'] / r['wall_s']:.2f}) | "
                 if r['worker_cpu_s'] == r['worker_cpu_s'] else "n/a (Ray's processes) | ")
              + f"{r['load_avg'][0]:.1f} -> {r['load_avg'][1]:.1f} |")
    cpu = {r["run"]: r["worker_cpu_s"] for r in results}
    if "once" in cpu and "local1" in cpu:  # load + 1 file, load + 20 files: the difference
        per_file = (cpu["local1"] - cpu["once"]) / 19
        load = cpu["once"] - per_file
        print(f"\nCPU seconds (1 worker, user + sys, all its threads): a model load "
              f"{load:.1f}, a file {per_file:.2f}; so at most {os.cpu_count() / per_file:.2f} "
              f"files/s on {os.cpu_count()} free cores after the loads")
    if breakdown:
        print("\nper-file cost, 1 worker (mean ms over files 2-20; model load is in the table "
              "above, once per worker)\n")
        print("| stage | ms |")
        print("| --- | --- |")
        for k, v in breakdown:
            print(f"| {k} | {v:.1f} |")


if __name__ == "__main__":
    main()
