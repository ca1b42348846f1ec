"""The ``mer`` command: a thin shell over :class:`EmotionRecognizer` and the evaluation and
training entry points. It parses arguments, prints, and maps errors to exit codes; nothing else.

Exit codes: 0 success, 1 unexpected error, 2 bad arguments, 3 unreadable media (at least one
input failed), 4 model problem, 5 no capture device (``mer stream --mic``). ``mer batch`` also
exits 1 when an input failed for an unexpected reason (its line says ``internal_error``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path
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
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["call", "fit-satisfaction"]:  # a sub-command of `call`, which takes a PATH
        argv = ["call-fit-satisfaction", *argv[2:]]
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
    _analysis_options(a)
    a.add_argument("--json", action="store_true", help="one JSON object per input per line")
    a.set_defaults(func=_analyze)

    b = sub.add_parser(
        "batch", help="analyze many files (paths, folders, manifests) into a JSON-lines file; "
        "resumable; local worker processes or a Ray cluster",
        description="One line per input in --out: what `mer analyze --json` prints for it (an "
        "error line for a file that cannot be read). A rerun skips inputs the file already "
        "answers, so an interrupted run resumes where it stopped. Exit 3 when an input failed.")
    b.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="media files, folders (searched recursively for audio and video files) "
                        "or manifests (.csv with a 'path' column, .txt with one path a line)")
    b.add_argument("--out", required=True, metavar="JSONL", help="results file (appended to)")
    b.add_argument("--workers", type=number(1, 1024, integer=True), default=None,
                   help="worker processes (Ray: actors), each loading the models once "
                        "(default: one per 2 CPU cores; Ray: as many as the cluster's CPUs "
                        "hold at --ray-cpus each)")
    b.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on a Ray cluster with Ray Data: 'auto' (the cluster this node "
                        "belongs to), 'ray://head:10001', or nothing for a local one; needs "
                        "pip install 'multimodal-emotion[ray]'. Write --ray=ADDRESS or put it "
                        "after the inputs")
    b.add_argument("--ray-cpus", type=number(0.0, 1024.0, lo_open=True), default=1.0,
                   metavar="N", help="CPUs each Ray actor reserves (default 1)")
    b.add_argument("--retry-failed", action="store_true",
                   help="analyze again the inputs whose earlier line is an error")
    b.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    _analysis_options(b)
    b.set_defaults(func=_batch)

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

    _add_call_parsers(sub)

    st = sub.add_parser(
        "stream", help="live analysis: sliding windows over a recording replayed in real time, "
        "or a microphone and camera; one result per window as soon as it is ready",
        description="Replays PATH at real-time pace (or --speed) through the streaming engine, "
        "or captures the microphone and camera (--mic), and prints one result per window "
        "(--json: one JSON object per line, with start, end, label, probabilities, "
        "confidence, modalities, lag_ms and dropped). When the analysis falls behind, video "
        "frames are dropped before whole windows, and each result says so.")
    src_st = st.add_mutually_exclusive_group(required=True)
    src_st.add_argument("path", nargs="?", help="a recording to replay")
    src_st.add_argument("--mic", action="store_true",
                        help="capture the default microphone (sounddevice) and camera (OpenCV); "
                             "exit 5 when the machine has neither")
    st.add_argument("--speed", type=number(0.0, 1000.0), default=1.0,
                    help="replay speed: 1 real time (default), 4 four times faster, 0 as fast "
                         "as possible (then no window is dropped)")
    st.add_argument("--window", type=number(0.5, 60.0), default=4.0,
                    help="seconds per window (default 4)")
    st.add_argument("--hop", type=number(0.1, 60.0), default=2.0,
                    help="seconds between window starts (default 2: what keeps up on 2 cores; "
                         "see the README's Live section)")
    st.add_argument("--fps", type=number(*FPS_RANGE), default=2.0,
                    help="video frames analyzed per second (default 2)")
    st.add_argument("--camera", type=number(-1, 64, integer=True), default=0,
                    help="camera index for --mic (-1: microphone only)")
    st.add_argument("--seconds", type=number(0.0, 86400.0, lo_open=True), default=None,
                    help="stop --mic capture after this long (default: Ctrl-C)")
    st.add_argument("--fusion", choices=FUSION_CHOICES, default=None)
    st.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    st.add_argument("--json", action="store_true", help="one JSON object per window per line")
    st.set_defaults(func=_stream)

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


def _analysis_options(p: argparse.ArgumentParser) -> None:
    """The options of one analysis, shared by ``analyze`` and ``batch``."""
    p.add_argument("--fusion", choices=FUSION_CHOICES, default=None,
                   help="fusion strategy (default: the model's, product: the calibrated "
                        "experts' product)")
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--window", type=number(0.0, 3600.0, lo_open=True), default=10.0,
                   help="seconds per segment for long clips (default 10; at most 3600)")
    p.add_argument("--fps", type=number(*FPS_RANGE), default=4.0,
                   help=f"video frames sampled per second ({FPS_RANGE[0]:g} to "
                        f"{FPS_RANGE[1]:g}; default 4)")
    p.add_argument("--max-duration", type=number(0.0, 86400.0, lo_open=True),
                   default=MAX_DURATION_DEFAULT, metavar="SECONDS",
                   help="refuse files longer than this (default 3600): memory and time grow "
                        "with duration")
    p.add_argument("--labels", metavar="YAML", default=None,
                   help="a label map of your own categories (e.g. satisfied / neutral / "
                        "frustrated) shown beside the emotion; see docs/label_map.yaml")
    p.add_argument("--explain", action="store_true",
                   help="also list the transcript words that moved the text expert most")

def _add_call_parsers(sub: argparse._SubParsersAction) -> None:
    """``mer call PATH`` and ``mer call fit-satisfaction`` (see calls/command.py)."""
    opts = _Parser(add_help=False)
    opts.add_argument("--speakers", type=number(1, 32, integer=True), default=None,
                      help="voices in a mono recording (default: estimated)")
    who = opts.add_mutually_exclusive_group()
    who.add_argument("--agent-channel", choices=["left", "right"], default=None,
                     help="stereo: the channel the agent is recorded on")
    who.add_argument("--agent", default=None, metavar="WHO",
                     help="which voice is the agent: first (the first to speak), most (who "
                          "talks most) or a speaker id; see README, Calls")
    opts.add_argument("--fusion", choices=FUSION_CHOICES, default=None)
    opts.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    opts.add_argument("--fps", type=number(*FPS_RANGE), default=4.0,
                      help="video frames sampled per second (default 4)")
    opts.add_argument("--max-duration", type=number(0.0, 86400.0, lo_open=True),
                      default=MAX_DURATION_DEFAULT, metavar="SECONDS",
                      help="refuse recordings longer than this (default 3600)")
    opts.add_argument("--rule", metavar="YAML", default=None,
                      help="escalation rule fields (threshold, min_turns, ...; README, Calls)")
    opts.add_argument("--language", default="auto", metavar="CODE",
                      help="the call's language: auto (detected on the first long, sure turn, "
                           "then kept), a code such as en or de, or per-turn")
    opts.add_argument("--no-transcript", action="store_true",
                      help="keep no words: transcripts are left out of every output")
    opts.add_argument("--keep-digits", action="store_true",
                      help="keep digits in transcripts (redacted to # by default)")
    opts.add_argument("--fast", action="store_true",
                      help="int8 arithmetic in the voice expert's layers: the 60-minute "
                           "bench call took 15-17 %% less time; about 6 %% of unseen clips get "
                           "another voice label (README, Calls: --fast)")
    c = sub.add_parser("call", parents=[opts],
                       help="a customer-service call: per-turn emotion, events, report",
                       epilog="mer call fit-satisfaction --calls labelled.csv --out model.json "
                              "fits a satisfaction model on your own labelled calls (see "
                              "mer call fit-satisfaction --help)")
    c.add_argument("path", help="the call recording (stereo: one party per channel)")
    c.add_argument("--json", action="store_true", help="print the call as one JSON object")
    c.add_argument("--report", metavar="HTML", help="also write a self-contained HTML report")
    c.add_argument("--csv", metavar="CSV", help="also write one row per turn")
    c.add_argument("--labels", metavar="YAML", default=None,
                   help="a label map of your own categories, shown on each turn")
    c.add_argument("--satisfaction", metavar="MODEL", default=None,
                   help="a model from mer call fit-satisfaction; without one no "
                        "satisfaction is shown")
    c.set_defaults(func=_call)
    f = sub.add_parser("call-fit-satisfaction", parents=[opts], prog="mer call fit-satisfaction",
                       help="(mer call fit-satisfaction) fit satisfaction on labelled calls")
    f.add_argument("--calls", required=True, metavar="CSV",
                   help="columns path (a mer call --json output, or the call's media) and "
                        "satisfaction (two values, e.g. 1/0)")
    f.add_argument("--out", required=True, metavar="JSON", help="where to write the model")
    f.add_argument("--positive", default=None,
                   help="the label value meaning satisfied (default: 1, yes, true, satisfied)")
    f.add_argument("--folds", type=number(2, 20, integer=True), default=5,
                   help="cross-validation folds (default 5; fewer with few calls)")
    f.add_argument("--json", action="store_true", help="print the cross-validation as JSON")
    f.set_defaults(func=_call_fit)


def _call(args: argparse.Namespace) -> int:
    from .calls.command import call_cli

    return call_cli(args)


def _call_fit(args: argparse.Namespace) -> int:
    from .calls.command import fit_cli

    return fit_cli(args)


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
            with _progress_bar(path) as progress:
                pred = rec.analyze(path, fusion=args.fusion, labels=label_map,
                                   explain_words=args.explain, progress=progress)
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


@contextlib.contextmanager
def _progress_bar(name: str):
    """A progress callback for ``analyze``: a bar on stderr for files longer than a minute,
    only when stderr is a terminal (never in pipes, logs or ``--json`` consumers' captures)."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar = None

    def update(done: float, total: float | None) -> None:
        nonlocal bar
        if bar is None:
            if total is None or total < 60:
                return
            bar = tqdm(total=round(total), desc=Path(name).name[:30], unit="s", leave=False,
                       mininterval=1)
        bar.update(max(0, round(done) - bar.n))

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()

def _batch(args: argparse.Namespace) -> int:
    from .batch import AnalyzeSpec, Batch, job
    from .errors import InputError
    from .label_maps import load_label_map

    if args.ray is not None and args.ray not in ("local", "auto") and ":" not in args.ray:
        raise InputError(f"--ray {args.ray!r} is not a Ray address ('auto', 'host:port' or "
                         "'ray://host:10001'); to start a local cluster, put --ray after the "
                         "inputs or write --ray=local")
    spec = AnalyzeSpec(model=args.model, fusion=args.fusion, window_s=args.window, fps=args.fps,
                       max_duration_s=args.max_duration, explain=args.explain,
                       labels=load_label_map(args.labels))  # a bad map fails before workers
    batch = Batch(args.inputs, args.out, retry_failed=args.retry_failed)
    s = batch.summary
    if s.repaired_bytes and not args.quiet:
        print(f"note: {args.out}: cut off a partial last line ({s.repaired_bytes} bytes) left "
              "by an interrupted run; that input is analyzed again", file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(total=len(batch.todo), unit="file", file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet or not sys.stderr.isatty(),
               desc=f"mer batch ({s.skipped} skipped)" if s.skipped else "mer batch")
    try:
        # the factory is looked up here, at call time, and sent to the workers by reference
        summary = batch.run(spec, workers=args.workers, ray=args.ray, ray_cpus=args.ray_cpus,
                            factory=job.load_recognizer, on_result=lambda r: bar.update(1))
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted: {s.done + s.failed} written to {args.out}; run the same command "
              "again to resume", file=sys.stderr)
        return 130
    finally:
        bar.close()  # before any error message, so it starts on a line of its own
    if not args.quiet:
        print(summary.line(), file=sys.stderr)
    return 1 if "internal_error" in summary.errors else 3 if summary.failed else 0


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
        if m == "face" and v.get("frames"):  # no frames: the reason above already says why
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


def _stream(args: argparse.Namespace) -> int:
    from .live_sources import file_chunks, open_devices, replay
    from .recognizer import EmotionRecognizer
    from .streaming import recognizer_engine, warm_up

    if args.hop > args.window:
        print(f"error: --hop ({args.hop:g}) must not be longer than --window ({args.window:g})",
              file=sys.stderr)
        return 2
    devices = None
    if args.mic:  # before loading models: a machine without devices is told at once
        devices = open_devices(camera=None if args.camera < 0 else int(args.camera))
        print(f"streaming from the {devices.describe()}"
              + "".join(f" ({p})" for p in devices.problems), file=sys.stderr, flush=True)
    else:
        from .media_stream import probe

        probe(args.path)  # an unreadable file fails before the models load
    rec = EmotionRecognizer.from_pretrained(args.model, fps=args.fps)
    warm_up(rec.analyze_segment)

    def show(result) -> None:
        d = result.to_dict()
        print(json.dumps(d) if args.json else format_window(d), flush=True)

    engine = recognizer_engine(rec, show, fusion=args.fusion, window_s=args.window,
                               hop_s=args.hop, fps=args.fps,
                               block=not args.mic and args.speed == 0)
    try:
        if devices is not None:
            devices.run(engine, seconds=args.seconds)
        else:
            for w in replay(file_chunks(args.path, args.fps), engine, speed=args.speed):
                print(f"warning: {args.path}: {w}", file=sys.stderr, flush=True)
    finally:
        stats = engine.close(drain=not args.mic)
        print("stream: " + ", ".join(f"{k} {v}" for k, v in stats.to_dict().items()),
              file=sys.stderr, flush=True)
    return 0


def format_window(d: dict) -> str:
    """One line per live window: time span, fused label, each modality's label, lag, drops."""
    span = f"[{d['start']:7.1f}-{d['end']:7.1f}]"
    if d.get("error"):
        return f"{span} error: {d['error']}"
    head = f"{span} {d['label'] or '-':<9} {d['confidence'] or 0:.2f}"
    mods = "  ".join(f"{m} {v['label'] or '-'}" for m, v in d["modalities"].items())
    drop = d["dropped"]
    extra = "".join([f"  dropped {drop['frames']} frames" if drop["frames"] else "",
                     f"  skipped {drop['windows']} windows" if drop["windows"] else ""])
    return f"{head}   {mods}   lag {d['lag_ms']:.0f} ms{extra}"


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
