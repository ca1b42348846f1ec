"""The ``mer`` command: a thin shell over :class:`EmotionRecognizer` and the evaluation and
training entry points. It parses arguments, prints, and maps errors to exit codes; nothing else.

Exit codes: 0 success, 1 unexpected error, 2 bad arguments, 3 unreadable media (at least one
input failed), 4 model problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from .errors import MerError


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights ship in packages; never call a hub
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mer", description="Multimodal emotion recognition from "
                                "video: voice, words and face, fused.")
    sub = p.add_subparsers()

    a = sub.add_parser("analyze", help="analyze clips (video or audio files)")
    a.add_argument("paths", nargs="+", help="media files (mp4, mov, mkv, webm, avi, flv, wav, ...)")
    a.add_argument("--fusion", choices=["concat", "sum", "attention", "late"], default=None,
                   help="fusion strategy (default: the model's, chosen on validation)")
    a.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    a.add_argument("--window", type=float, default=10.0,
                   help="seconds per segment for long clips (default 10)")
    a.add_argument("--fps", type=float, default=4.0, help="video frames sampled per second")
    a.add_argument("--json", action="store_true", help="one JSON object per input per line")
    a.set_defaults(func=_analyze)

    e = sub.add_parser("evaluate", help="score a model on a dataset or a manifest CSV")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=["ravdess", "crema-d", "tess", "emodb", "fer2013",
                                           "ckplus", "meld", "goemotions"])
    src.add_argument("--manifest", help="CSV with columns label and path or text (+ speaker)")
    e.add_argument("--root", help="dataset folder (default: $MER_DATA/<dataset>)")
    e.add_argument("--split", default=None, help="dataset split where it has several")
    e.add_argument("--modalities", default="audio,text,face",
                   help="comma-separated modalities to use for videos (default all)")
    e.add_argument("--fusion", choices=["concat", "sum", "attention", "late"], default=None)
    e.add_argument("--model", default=None)
    e.add_argument("--limit", type=int, default=None, help="evaluate at most N items")
    e.add_argument("--text-domain", choices=["spoken", "written"], default=None,
                   help="text head for text rows: spoken (dialogue, what clip transcripts use) "
                        "or written; default by dataset (goemotions: written), else spoken")
    e.add_argument("--json", action="store_true")
    e.add_argument("--plot", metavar="PNG", help="also write the confusion matrix as a PNG")
    e.set_defaults(func=_evaluate)

    t = sub.add_parser("train", help="reproduce the shipped weights from ../shared/data")
    t.add_argument("what", choices=["all", "face", "mfcc-lstm", "text-encoder", "heads"],
                   help="face: the FER2013 (or FER+) CNN; mfcc-lstm: the classic audio encoder; "
                        "text-encoder: LoRA adapters on all-mpnet-base-v2's top 3 layers, tuned "
                        "on GoEmotions + MELD with a written and a spoken head; heads: "
                        "experts + fusion on cached embeddings; all: everything in order")
    t.add_argument("--data", default=None, help="data root (default $MER_DATA or ../shared/data)")
    t.add_argument("--out", default=None, help="model folder (default: the package's default)")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--face-labels", choices=["fer2013", "ferplus"], default="fer2013",
                   help="face CNN targets: FER2013's labels (the shipped recipe) or FER+'s "
                        "vote shares (needs fer2013.csv.gz in the original Kaggle row order)")
    t.add_argument("--face-augment", choices=["basic", "video"], default="basic",
                   help="face CNN augmentation: basic (the shipped recipe) or video (adds "
                        "exposure, gamma, side light, blur, noise, stronger pose changes)")
    t.set_defaults(func=_train)

    x = sub.add_parser("experiment", help="compare fusion strategies on a dataset (YAML/TOML config)")
    x.add_argument("config", help="experiment config (YAML or TOML); see bench/experiments/")
    x.add_argument("--out", default=None, help="output folder (default: the config's, or "
                   "results/<name>)")
    x.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set seeds=[0] --set protocol.folds=3")
    x.add_argument("--data", default=None, help="data root (default $MER_DATA or ../shared/data)")
    x.set_defaults(func=_experiment)

    s = sub.add_parser("serve", help="start the HTTP API and web page (FastAPI under uvicorn)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    s.set_defaults(func=_serve)
    return p


def _analyze(args: argparse.Namespace) -> int:
    from .errors import MediaError
    from .recognizer import EmotionRecognizer

    rec = EmotionRecognizer.from_pretrained(args.model, window_s=args.window, fps=args.fps)
    failed = 0
    for path in args.paths:
        try:
            pred = rec.analyze(path, fusion=args.fusion)
        except MediaError as exc:
            failed += 1
            if args.json:
                print(json.dumps({"path": path, "error": "unreadable_media", "message": str(exc)}),
                      flush=True)
            print(f"error: {exc}", file=sys.stderr, flush=True)
            continue
        if args.json:
            print(json.dumps(pred.to_dict()), flush=True)
        else:
            print(format_prediction(pred.to_dict()), flush=True)
    return 3 if failed else 0


def format_prediction(d: dict) -> str:
    """A readable block for one clip: fused answer, then each modality's own view."""
    lines = [f"{d.get('path', '<clip>')}  ({d['duration_s']:.1f} s, fusion={d['fusion']})"]
    if d["label"] is None:
        lines.append(f"  no answer: {d.get('reason')}")
    else:
        top = sorted(d["probabilities"].items(), key=lambda kv: -kv[1])[:3]
        lines.append(f"  FUSED    {d['label']:<10} " + "  ".join(f"{k} {v:.2f}" for k, v in top))
    for m, v in d["modalities"].items():
        if v["available"]:
            p = v["probabilities"][v["label"]]
            line = f"  {m:<8} {v['label']:<10} {p:.2f}"
        else:
            line = f"  {m:<8} {'-':<10}      ({v.get('reason')})"
        if m == "text" and v.get("transcript"):
            line += f'   "{v["transcript"]}"'
        if m == "face":
            line += f"   faces in {v.get('frames_with_face', 0)}/{v.get('frames', 0)} frames"
        lines.append(line)
    for s in d.get("segments", []):
        lines.append(f"  [{s['start']:6.1f}-{s['end']:6.1f}] {s['label']}")
    t = d.get("timings_ms", {})
    lines.append("  time ms: " + ", ".join(f"{k} {v:.0f}" for k, v in t.items()))
    return "\n".join(lines)


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_cli

    return evaluate_cli(args)


def _train(args: argparse.Namespace) -> int:
    from .training.default_model import train_cli

    return train_cli(args)


def _experiment(args: argparse.Namespace) -> int:
    from .experiments.runner import experiment_cli

    return experiment_cli(args)


def _serve(args: argparse.Namespace) -> int:
    from .serving.app import serve_cli

    return serve_cli(args)


if __name__ == "__main__":
    raise SystemExit(main())
