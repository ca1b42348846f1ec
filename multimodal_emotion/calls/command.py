"""The ``mer call`` shell: arguments in, the call's JSON / report / CSV out, errors to exit
codes exactly as ``mer analyze`` does (3 unreadable media, 2 bad arguments, 4 model problem).

``mer call fit-satisfaction`` reads a CSV of the user's labelled calls (``path``: a ``mer call
--json`` output or the call's media, analyzed here; ``satisfaction``: the label) and writes a
model with its cross-validated report.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from ..errors import InputError, MediaError
from .analysis import analyze_call, default_turn_finder
from .events import EscalationRule

LABEL_COLUMNS = ("satisfaction", "satisfied", "label")


def load_recognizer(args: argparse.Namespace) -> Any:
    """The shipped recognizer (or ``--model``); tests replace this function."""
    from ..recognizer import EmotionRecognizer

    return EmotionRecognizer.from_pretrained(args.model, fps=args.fps,
                                             max_duration_s=args.max_duration,
                                             audio_int8=getattr(args, "fast", False))


def turn_finder() -> tuple[Callable[..., Any], Callable[..., Any]] | tuple[None, None]:
    """``(find_turns, assign_roles)`` for :func:`analyze_call`; ``(None, None)`` takes the real
    one (``multimodal_emotion.segmenting``). Tests replace this function."""
    return None, None


class ProgressBar:
    """``[#####-----] 12/40 turns  2:13 / 10:00`` on one line of stderr, only on a terminal.

    One line for the whole job, redrawn in place: each drawing covers all of the one before
    (``finding turns ...`` is longer than ``3/40 turns ...``), so no stale characters are left
    behind to read as a second bar; :meth:`close` ends the line once, and again is a no-op."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream, self.width = stream or sys.stderr, width  # stderr as it is now, not at import
        self.on = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()
        self.drawn = 0  # the length of the line on screen (0: none)

    def __call__(self, done: int, total: int, at_s: float, duration: float) -> None:
        if not self.on:
            return
        if total == 0:  # the turn finder's pass
            frac, what = (at_s / duration if duration else 0.0), "finding turns"
        else:
            frac, what = done / total, f"{done}/{total} turns"
        fill = int(min(1.0, frac) * self.width)
        line = (f"[{'#' * fill}{'-' * (self.width - fill)}] {what} {_clock(at_s)} / "
                f"{_clock(duration)}  {time.monotonic() - self.t0:.0f} s ")
        self.stream.write("\r" + line.ljust(self.drawn))
        self.drawn = max(self.drawn, len(line))
        self.stream.flush()

    def close(self) -> None:
        if self.on and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        self.drawn = 0


def _clock(s: float) -> str:
    s = int(s)
    return f"{s // 60}:{s % 60:02d}"


def load_rule(path: str | None) -> EscalationRule:
    """``--rule``: a YAML/JSON file of :class:`EscalationRule` fields (the rest default)."""
    if path is None:
        return EscalationRule()
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise InputError(f"escalation rule {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"escalation rule {path}: not valid YAML/JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"escalation rule {path}: a mapping of fields is needed")
    try:
        return EscalationRule.from_dict(data)
    except TypeError as exc:
        raise InputError(f"escalation rule {path}: {exc}") from exc


def resolve_turn_finder() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """:func:`turn_finder`, else the real one: a missing one fails before the models load."""
    find, roles = turn_finder()
    if find is None or roles is None:
        find, roles = default_turn_finder()
    return find, roles


def analyze_to_result(path: str, rec: Any, args: argparse.Namespace, rule: EscalationRule,
                      label_map: Any, progress: Callable[..., None] | None = None
                      ) -> dict[str, Any]:
    """One call analyzed and summarized (no satisfaction)."""
    from .summary import call_result

    find, roles = resolve_turn_finder()
    call = analyze_call(path, rec, find_turns=find, assign_roles=roles, speakers=args.speakers,
                        agent_channel=args.agent_channel, agent=args.agent,
                        fusion=args.fusion, labels=label_map,
                        transcripts=not args.no_transcript, keep_digits=args.keep_digits,
                        progress=progress, language=args.language)
    return call_result(call, rule, path=path)


def call_cli(args: argparse.Namespace) -> int:
    """``mer call PATH``."""
    from ..label_maps import load_label_map
    from .report import csv_text, html_report
    from .satisfaction import load_model, predict_satisfaction

    # everything that can be wrong with the arguments fails before a model loads
    label_map = load_label_map(args.labels)
    rule = load_rule(args.rule)
    model = load_model(args.satisfaction) if args.satisfaction else None
    if rule.category is not None and label_map is None:
        raise InputError(f"the escalation rule uses the category {rule.category!r}: give the "
                         "label map that defines it with --labels")
    if label_map is not None and rule.category is not None \
            and rule.category not in label_map.categories:
        raise InputError(f"the escalation rule's category {rule.category!r} is not in the label"
                         f" map ({', '.join(label_map.categories)})")
    resolve_turn_finder()
    rec = load_recognizer(args)
    bar = ProgressBar()
    try:
        result = analyze_to_result(args.path, rec, args, rule, label_map, bar)
    except MediaError as exc:
        bar.close()
        if args.json:
            print(json.dumps({"path": args.path, "error": "unreadable_media",
                              "message": str(exc)}), flush=True)
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 3
    finally:
        bar.close()  # before any message (mer's error line, a warning): a line of its own
    if model is not None:
        result["summary"]["satisfaction"] = predict_satisfaction(model, result)
    for w in result.get("warnings", []):
        print(f"warning: {args.path}: {w}", file=sys.stderr, flush=True)
    if args.report:
        Path(args.report).write_text(html_report(result), encoding="utf-8")
    if args.csv:
        Path(args.csv).write_text(csv_text(result), encoding="utf-8")
    print(json.dumps(result) if args.json else format_call(result), flush=True)
    return 0


def format_call(result: dict[str, Any]) -> str:
    """A few readable lines: speakers, sentiment, events."""
    s = result["summary"]
    sent = s["sentiment"]
    f = (lambda v: "-" if v is None else f"{v:+.2f}")
    lines = [f"{result.get('path')}  ({result['duration']:.1f} s, {len(result['turns'])} turns)"]
    for sp in result["speakers"]:
        st = s["speakers"].get(sp["id"], {})
        top = sorted(st.get("shares", {}).items(), key=lambda kv: -kv[1])[:3]
        lines.append(f"  {sp['id']:<10} {sp['role']:<9} talk {sp['talk_time']:7.1f} s  "
                     f"interrupts {st.get('interruptions', 0)}  " +
                     "  ".join(f"{k} {v:.0%}" for k, v in top))
    lines.append(f"  customer sentiment {f(sent['score'])}  trend {f(sent['trend'])}  "
                 f"(start {f(sent['start'])}, end {f(sent['end'])})")
    for e in result["events"]:
        lines.append(f"  {e['type']:<10} {e['speaker']}  {e['start']:.1f}-{e['end']:.1f} s")
    if s.get("satisfaction"):
        sat = s["satisfaction"]
        lines.append(f"  satisfaction {sat['label']} (p {sat['probability']:.2f}, your model)")
    return "\n".join(lines)


def fit_cli(args: argparse.Namespace) -> int:
    """``mer call fit-satisfaction --calls labelled.csv --out model.json``."""
    from .satisfaction import fit_satisfaction, save_model

    rule = load_rule(args.rule)
    paths, labels = read_labelled_calls(args.calls)
    results, rec = [], None
    for p in paths:
        if p.suffix.lower() == ".json":
            try:
                results.append(json.loads(p.read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise InputError(f"{p}: cannot read a `mer call --json` result ({exc})") \
                    from exc
            continue
        if rec is None:
            rec = load_recognizer(args)
        print(f"analyzing {p}", file=sys.stderr, flush=True)
        results.append(analyze_to_result(str(p), rec, args, rule, None))
    model = fit_satisfaction(results, labels, args.positive, rule, folds=args.folds)
    save_model(model, args.out)
    cv = model["cv"]
    if args.json:
        print(json.dumps(cv))
    else:
        print(f"{model['n_calls']} calls ({model['n_positive']} {model['positive']}), "
              f"{cv['folds']}-fold cross-validation:")
        for fold in cv["per_fold"]:
            auc = "-" if fold["auc"] is None else f"{fold['auc']:.3f}"
            print(f"  fold {fold['fold']}: n {fold['n']}  AUC {auc}  accuracy "
                  f"{fold['accuracy']:.3f}")
        auc = "-" if cv["auc_mean"] is None else f"{cv['auc_mean']:.3f} ± {cv['auc_std']:.3f}"
        print(f"  mean AUC {auc}  accuracy {cv['accuracy_mean']:.3f} (majority class "
              f"{cv['majority_accuracy']:.3f})")
        print(f"model written to {args.out}")
    return 0


def read_labelled_calls(path: str) -> tuple[list[Path], list[str]]:
    """``path`` and a label column (``satisfaction``, ``satisfied`` or ``label``); relative
    paths are read from the CSV's folder."""
    p = Path(path)
    try:
        with p.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(f"{p}: {exc.strerror or exc}") from exc
    if not rows:
        raise InputError(f"{p}: no rows")
    column = next((c for c in LABEL_COLUMNS if c in rows[0]), None)
    if "path" not in rows[0] or column is None:
        raise InputError(f"{p}: columns 'path' and one of {list(LABEL_COLUMNS)} are needed; "
                         f"found {list(rows[0])}")
    paths, labels = [], []
    for i, row in enumerate(rows, 2):
        if not (row.get("path") or "").strip() or not (row.get(column) or "").strip():
            raise InputError(f"{p}, line {i}: empty path or label")
        q = Path(row["path"].strip())
        paths.append(q if q.is_absolute() else p.parent / q)
        labels.append(row[column].strip())
    return paths, labels
