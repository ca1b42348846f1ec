"""The ``mer`` command: a thin shell over :class:`EmotionRecognizer` and the evaluation and
training entry points. It parses arguments, prints, and maps errors to exit codes; nothing else.

Exit codes: 0 success, 1 unexpected error, 2 bad arguments, 3 unreadable media (at least one
input failed), 4 model problem.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Callable, NoReturn, Sequence

from .errors import MerError

# the fusion registry's names, spelled out so `mer --help` needs no torch import (a test checks
# that this list matches multimodal_emotion.fusion.FUSIONS)
FUSION_CHOICES = ["product", "concat", "sum", "attention", "late"]
# Sampling rates the decoder accepts: below 0.5 fps a face is seen too rarely to matter; above
# 30 the cost grows with no gain (a 2 s clip at --fps 1e9 took a minute). Same bounds as HTTP.
FPS_RANGE = (0.5, 30.0)
MAX_DURATION_DEFAULT = 3600.0  # media.DEFAULT_MAX_DURATION_S, without importing numpy here


def number(lo: float, hi: float, *, integer: bool = False, lo_open: bool = False
           ) -> Callable[[str], float]:
    """An argparse ``type`` that accepts a finite number in ``[lo, hi]`` (``(lo, hi]`` with
    ``lo_open``) and refuses the rest -- nan, inf, 0, negatives -- with one clear line (exit 2),
    instead of a traceback, a hang or a silently absurd run."""

    def parse(text: str) -> float:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if integer else 'a number'}") from None
        low_ok = value > lo if lo_open else value >= lo
        if not (math.isfinite(value) and low_ok and value <= hi):
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: give a number {'>' if lo_open else '>='} {lo:g} and "
                f"<= {hi:g}")
        return value

    parse.__name__ = "integer" if integer else "number"
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument costs one line on stderr (and exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
    p = _Parser(prog="mer", description="Multimodal emotion recognition from "
                                "video: voice, words and face, fused.")
    sub = p.add_subparsers(parser_class=_Parser)

    a = sub.add_parser("analyze", help="analyze clips (video or audio files)")
    a.add_argument("paths", nargs="+", help="media files (mp4, mov, mkv, webm, avi, flv, wav, ...)")
    a.add_argument("--fusion", choices=FUSION_CHOICES, default=None,
                   help="fusion strategy (default: the model's, product: the calibrated "
                        "experts' product)")
    a.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    a.add_argument("--window", type=number(0.0, 3600.0, lo_open=True), default=10.0,
                   help="seconds per segment for long clips (default 10; at most 3600)")
    a.add_argument("--fps", type=number(*FPS_RANGE), default=4.0,
                   help=f"video frames sampled per second ({FPS_RANGE[0]:g} to "
                        f"{FPS_RANGE[1]:g}; default 4)")
    a.add_argument("--max-duration", type=number(0.0, 86400.0, lo_open=True),
                   default=MAX_DURATION_DEFAULT, metavar="SECONDS",
                   help="refuse files longer than this (default 3600): memory and time grow "
                        "with duration")
    a.add_argument("--json", action="store_true", help="one JSON object per input per line")
    a.add_argument("--labels", metavar="YAML", default=None,
                   help="a label map of your own categories (e.g. satisfied / neutral / "
                        "frustrated) shown beside the emotion; see docs/label_map.yaml")
    a.add_argument("--explain", action="store_true",
                   help="also list the transcript words that moved the text expert most")
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
    e.add_argument("--fusion", choices=FUSION_CHOICES, default=None)
    e.add_argument("--model", default=None)
    e.add_argument("--limit", type=number(1, 10**9, integer=True), default=None, help="evaluate at most N items")
    e.add_argument("--text-domain", choices=["spoken", "written"], default=None,
                   help="text head for text rows: spoken (dialogue, what clip transcripts use) "
                        "or written; default by dataset (goemotions: written), else spoken")
    e.add_argument("--json", action="store_true")
    e.add_argument("--plot", metavar="PNG", help="also write the confusion matrix as a PNG")
    e.set_defaults(func=_evaluate)

    t = sub.add_parser("train", help="reproduce the shipped weights from ../shared/data")
    t.add_argument("what", choices=["all", "face", "mfcc-lstm", "text-encoder", "heads",
                                    "audio-expert", "calibration"],
                   help="face: the FER2013 (or FER+) CNN; mfcc-lstm: the classic audio encoder; "
                        "audio-expert: only the audio expert, on RAVDESS + nEMO + CASIA + "
                        "URDU, written into an existing model folder (fusions untouched); "
                        "text-encoder: LoRA adapters on all-mpnet-base-v2's top 3 layers, tuned "
                        "on GoEmotions + MELD with a written and a spoken head; heads: "
                        "experts + fusion on cached embeddings; calibration: each expert's "
                        "temperature and training prior on held-out data (also run after "
                        "heads); all: everything in order")
    t.add_argument("--data", default=None, help="data root (default $MER_DATA or ../shared/data)")
    t.add_argument("--out", default=None, help="model folder (default: the package's default)")
    t.add_argument("--epochs", type=number(1, 10**6, integer=True), default=None)
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

    ad = sub.add_parser(
        "adapt", help="fit the fusion's numbers (expert temperatures, product weights) to your "
        "own labelled clips; writes a new model folder and a before/after report",
        description="Runs each clip once through the base model's encoders, holds out a "
        "stratified part (by speaker when the manifest has a speaker column), refits only each "
        "expert's temperature and the product fusion's weights on the rest, and writes a copy "
        "of the base model folder with those numbers changed, plus adapt_report.json/.md "
        "(accuracy, UAR, ECE, NLL of each expert and the fused answer on the held-out clips, "
        "before vs after).")
    ad.add_argument("--manifest", help="CSV with columns label and path or text (+ speaker); "
                    "labels must be canonical names or their synonyms")
    ad.add_argument("--feedback", metavar="DB", help="also use the labelled analyses a server "
                    "stored (MER_FEEDBACK=1): its MER_DATA_DIR or the feedback.sqlite3 file")
    ad.add_argument("--out", required=True, help="new model folder to write (must not exist "
                    "or be empty)")
    ad.add_argument("--base", default=None, help="model folder to adapt (default: the shipped "
                    "model)")
    ad.add_argument("--holdout", type=number(0.0, 0.9, lo_open=True), default=0.3,
                    help="fraction of clips held out to measure before/after (default 0.3)")
    ad.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    ad.add_argument("--json", action="store_true", help="print the report as JSON")
    ad.set_defaults(func=_adapt)

    ex = sub.add_parser("export", help="write a model folder for another runtime")
    exs = ex.add_subparsers(parser_class=_Parser, required=True, dest="format")
    xo = exs.add_parser(
        "onnx", help="a folder that runs on onnxruntime without torch (mer analyze --model OUT)",
        description="Exports the Whisper encoder layers, the text encoder with its adapters "
        "merged, the face CNN and the expert heads to ONNX; calibration and the product fusion "
        "stay numbers in config.json. The folder runs with `mer analyze --model OUT` and "
        "EmotionRecognizer.from_pretrained(OUT), with or without torch installed.")
    xo.add_argument("out", help="new folder to write (must not exist or be empty)")
    xo.add_argument("--model", default=None, help="model folder to export (default: shipped)")
    xo.add_argument("--int8", default="default", metavar="WHICH",
                    help="encoders stored as int8: default (where bench/onnx.py measured that "
                         "it pays: text=weights), none, all (dynamic int8 everywhere), or a "
                         "list such as audio,text=weights (dynamic unless =weights)")
    xo.set_defaults(func=_export_onnx)

    from .serving.settings import env_help  # stdlib only: --help stays fast

    s = sub.add_parser("serve", help="start the HTTP API and web page (FastAPI under uvicorn)",
                       epilog=env_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=number(0, 65535, integer=True), default=8000)
    s.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    s.set_defaults(func=_serve)
    return p


def _analyze(args: argparse.Namespace) -> int:
    from .errors import MediaError
    from .label_maps import load_label_map
    from .recognizer import EmotionRecognizer

    label_map = load_label_map(args.labels)  # a bad map fails before any model loads
    rec = EmotionRecognizer.from_pretrained(args.model, window_s=args.window, fps=args.fps,
                                            max_duration_s=args.max_duration)
    failed = 0
    for path in args.paths:
        try:
            pred = rec.analyze(path, fusion=args.fusion, labels=label_map,
                               explain_words=args.explain)
        except MediaError as exc:
            failed += 1
            if args.json:
                print(json.dumps({"path": path, "error": "unreadable_media", "message": str(exc)}),
                      flush=True)
            print(f"error: {exc}", file=sys.stderr, flush=True)
            continue
        for w in pred.warnings:
            print(f"warning: {path}: {w}", file=sys.stderr, flush=True)
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
        lines.append(f"  FUSED    {d['label']:<10} " + "  ".join(f"{k} {v:.2f}" for k, v in top)
                     + f"   confidence {d['confidence']:.2f}")
        if d.get("business"):
            b = d["business"]
            lines.append(f"  {b['scheme'][:8]:<8} {b['label']:<10} " + "  ".join(
                f"{k} {v:.2f}" for k, v in sorted(b["probabilities"].items(),
                                                  key=lambda kv: -kv[1])))
        ag = d.get("agreement") or {}
        if ag.get("disagree"):
            lines.append(f"  experts agree: {', '.join(ag['agree']) or 'none'}; disagree: "
                         f"{', '.join(ag['disagree'])}")
    for m, v in d["modalities"].items():
        if v["available"]:
            p = v["probabilities"][v["label"]]
            line = f"  {m:<8} {v['label']:<10} {p:.2f}"
        else:
            line = f"  {m:<8} {'-':<10}      ({v.get('reason')})"
        if m == "text" and v.get("transcript"):
            line += f'   "{v["transcript"]}"'
        if m == "text" and v.get("translated"):  # say it is a translation, and of what
            line += f'   (translated from {v["language"]}: "{v.get("transcript_original")}")'
        if m == "face":
            line += f"   faces in {v.get('frames_with_face', 0)}/{v.get('frames', 0)} frames"
        lines.append(line)
    ex = d.get("explanation")
    if ex:
        lines.append(f"  why {ex['label']}: starts at {ex['base']:.2f} with no modality; " + ", ".join(
            f"{m} {v:+.2f}" for m, v in ex["contributions"].items() if v) + "  (Shapley)")
        for w in ex.get("words") or []:
            lines.append(f"    word {w['word']!r:<16} {w['effect']:+.3f}")
    for s in d.get("segments", []):
        lines.append(f"  [{s['start']:6.1f}-{s['end']:6.1f}] {s['label']:<10} "
                     f"{s.get('confidence', 0):.2f}")
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


def _adapt(args: argparse.Namespace) -> int:
    from .adapt import adapt_cli

    return adapt_cli(args)


def _export_onnx(args: argparse.Namespace) -> int:
    from .export.onnx import export_onnx, parse_int8

    section = export_onnx(args.out, args.model, parse_int8(args.int8))
    int8 = [f"{m} {how}" for m, how in section["int8"].items() if how]
    print(f"wrote {args.out} (int8: {', '.join(int8) or 'none'}; largest |onnx - torch| on "
          f"probe inputs: " + ", ".join(f"{k} {v:.1e}" for k, v in section["check"].items())
          + ")")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .serving.app import serve_cli

    return serve_cli(args)


if __name__ == "__main__":
    raise SystemExit(main())
