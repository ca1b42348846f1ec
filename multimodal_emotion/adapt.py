"""``mer adapt``: fit the default fusion's few numbers to a user's own labelled clips.

The expert heads were trained on public corpora; a user's clips (their microphones, cameras,
speakers, class mix) make each expert more or less sure than it should be, and make voice,
words and face more or less redundant than on the data the defaults came from. Retraining heads
on a few dozen clips would overfit; refitting the numbers that say how to *read and combine*
the experts does not. So this module changes exactly two things in a copy of a model folder's
``config.json``, and nothing else:

* ``calibration.temperature[m]``: each expert's temperature, fitted on the clips where that
  modality was present (:func:`~multimodal_emotion.calibration.fit_temperature`, with the
  model's prior correction included so it minimises the NLL of what the model will show);
* ``fusions.product.weights``: how much each expert counts when several are present
  (:func:`~multimodal_emotion.fusion.product.fit_weights`, on the clips with two or more).

Each clip runs once through the recognizer; what is kept is its per-window raw expert logits and
availability (:class:`~multimodal_emotion.types.WindowLogits`), never the media. A seeded,
label-stratified part of the clips (grouped by speaker when the manifest names them, so a voice
is never on both sides) is held out, and the report scores every expert and the fused answer
there before and after: accuracy, UAR, ECE and NLL. Temperatures cannot change an expert's own
ranking, so its accuracy and UAR stay the same by construction; only the fused answer's can move.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .calibration import ExpertCalibration, expected_calibration_error, fit_temperature, nll
from .errors import InputError, MediaError
from .fusion.product import combine, fit_weights
from .labels import LABEL_TO_INDEX, LABELS
from .metrics import uar
from .types import WindowLogits

FUSION = "product"
MIN_HELD_OUT = 30  # below this, the before/after figures are anecdotes, and the report says so
MIN_EXPERT_ROWS = 5  # fewer windows with a modality than this: keep its base temperature
MIN_WEIGHT_ROWS = 5  # fewer windows with 2+ modalities than this: keep the product weights
# Pull of the weights towards 1, as if this many extra rows said "1": the penalty on the mean
# NLL is WEIGHT_PRIOR_ROWS / n, strong on a handful of clips (one clip once sent a weight to
# the bound 5), negligible on hundreds (fit_weights' own default, 0.01, is the floor).
WEIGHT_PRIOR_ROWS = 3.0


@dataclass
class ClipLogits:
    """One labelled clip reduced to what adapting needs: its windows' expert logits."""

    source: str  # manifest path / "text row 3" / "feedback:<id>": for the report, not data
    label: int
    group: str  # speaker (or the clip itself): held-out splitting never cuts a group
    windows: list[WindowLogits]


@dataclass
class AdaptResult:
    """What :func:`adapt` produced: the fitted numbers and the report (also written to disk)."""

    temperature: dict[str, float]
    weights: dict[str, float]
    report: dict[str, Any]
    out_dir: Path | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)


# -- 1. clips -> logits ----------------------------------------------------------------------
def encode_items(rec: Any, items: Sequence[Any], progress: bool | None = None
                 ) -> tuple[list[ClipLogits], list[dict[str, str]]]:
    """Run every manifest item once through ``rec`` (an
    :class:`~multimodal_emotion.recognizer.EmotionRecognizer` or anything with ``analyze`` and
    ``model``) and keep its expert logits. Audio and video go through ``rec.analyze`` (windows,
    transcription and all, exactly as at serving time); text rows through the text encoder and
    the clip text expert (the head transcripts use); images through the face expert (dataset
    crops, no detection, as ``mer evaluate`` does). Unreadable items are returned as skipped
    with the reason, not raised."""
    from tqdm import tqdm

    records: list[ClipLogits] = []
    skipped: list[dict[str, str]] = []
    show = sys.stderr.isatty() if progress is None else progress
    for k, item in enumerate(tqdm(items, desc="encode", unit="clip", disable=not show)):
        source = str(item.value) if item.kind != "text" else f"text row {k + 1}"
        group = str(item.speaker) if getattr(item, "speaker", None) else f"clip:{source}"
        try:
            windows = _item_logits(rec, item)
        except MediaError as exc:
            skipped.append({"source": source, "reason": str(exc)})
            continue
        if not any(v is not None for w in windows for v in w.logits.values()):
            skipped.append({"source": source, "reason": "no modality available (no speech, "
                            "no face)"})
            continue
        records.append(ClipLogits(source, int(item.label), group, windows))
    return records, skipped


def _item_logits(rec: Any, item: Any) -> list[WindowLogits]:
    model = rec.model
    if item.kind in ("audio", "video"):
        pred = rec.analyze(str(item.value))
        return list(pred.expert_logits)
    if item.kind == "text":
        emb = rec.text.text_encoder.embed_texts([str(item.value)])[0]
        z = model.expert_logits({"text": emb}, {"text": True})
    elif item.kind == "image":
        from .encoders.face import preprocess_face
        from .evaluation import _image

        emb = rec.face.encode_images(preprocess_face(_image(item.value))[None])[0]
        z = model.expert_logits({"face": emb}, {"face": True})
    else:
        raise InputError(f"cannot adapt on a {item.kind!r} item")
    return [WindowLogits(0.0, 0.0, {m: None if v is None else v.tolist()
                                    for m, v in z.items()})]


def feedback_records(path: str | Path, model: Any) -> tuple[list[ClipLogits], dict[str, int]]:
    """Labelled rows of a server's feedback store whose logits came from ``model``'s heads
    (rows from other heads are counted and left out: their logits mean something else)."""
    from .feedback_store import FeedbackStore, heads_fingerprint

    store = FeedbackStore.open(path, create=False)
    want = heads_fingerprint(model)
    records, other = [], 0
    for row in store.labelled():
        if row.heads != want or list(row.labels) != list(model.labels):
            other += 1
            continue
        records.append(ClipLogits(f"feedback:{row.analysis_id}", LABEL_TO_INDEX[row.label],
                                  f"feedback:{row.analysis_id}", row.windows))
    return records, {"labelled": len(records) + other, "used": len(records),
                     "other_heads": other}


# -- 2. the held-out split -------------------------------------------------------------------
def held_out_split(labels: Sequence[int], groups: Sequence[str], fraction: float, seed: int
                   ) -> np.ndarray:
    """A boolean mask of held-out clips: about ``fraction`` of each label, whole groups only.

    Groups (speakers) are visited in a seeded random order, and each goes to the held-out part
    if that brings the held-out label counts closer to ``fraction`` of every label's total
    (L1 distance). With one clip per group this is plain stratified sampling."""
    if not 0 < fraction < 1:
        raise InputError(f"--holdout must be between 0 and 1, not {fraction}")
    y = np.asarray(labels, int)
    g = np.asarray(groups, object)
    n_classes = int(y.max()) + 1 if len(y) else 0
    target = fraction * np.bincount(y, minlength=n_classes)
    names = sorted(set(g.tolist()))
    order = np.random.default_rng(seed).permutation(len(names))
    held = np.zeros(len(y), bool)
    counts = np.zeros(n_classes)
    for i in order:
        sel = g == names[i]
        add = np.bincount(y[sel], minlength=n_classes)
        if np.abs(counts + add - target).sum() < np.abs(counts - target).sum():
            held |= sel
            counts += add
    return held


# -- 3. fitting ------------------------------------------------------------------------------
@dataclass
class _Windows:
    """Clips flattened to windows: logits ``[W, M, C]`` (0 where masked), ``mask`` ``[W, M]``,
    ``clip`` ``[W]`` (row of the clip), ``weight`` ``[W]`` (window seconds, as analyze
    weights them), ``y`` ``[W]``."""

    logits: torch.Tensor
    mask: torch.Tensor
    clip: np.ndarray
    weight: np.ndarray
    y: torch.Tensor


def _flatten(records: Sequence[ClipLogits], modalities: Sequence[str], n: int) -> _Windows:
    logits, mask, clip, weight, y = [], [], [], [], []
    for i, r in enumerate(records):
        multi = len(r.windows) > 1
        for w in r.windows:
            logits.append([w.logits.get(m) or [0.0] * n for m in modalities])
            mask.append([w.logits.get(m) is not None for m in modalities])
            clip.append(i)
            weight.append(max(w.end - w.start, 1e-6) if multi else 1.0)
            y.append(r.label)
    return _Windows(torch.tensor(logits, dtype=torch.float32).reshape(-1, len(modalities), n),
                    torch.tensor(mask, dtype=torch.bool).reshape(-1, len(modalities)),
                    np.asarray(clip, int), np.asarray(weight, float),
                    torch.tensor(y, dtype=torch.long))


def _log_q(win: _Windows, cal: ExpertCalibration, modalities: Sequence[str]) -> torch.Tensor:
    """Calibrated expert log-probabilities ``[W, M, C]`` (0 where masked)."""
    out = torch.stack([cal.log_proba(m, win.logits[:, j]) for j, m in enumerate(modalities)], 1)
    return out.masked_fill(~win.mask[..., None], 0.0)


def fit_fusion_numbers(records: Sequence[ClipLogits], cal: ExpertCalibration,
                       weights: dict[str, float], modalities: Sequence[str]
                       ) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """New temperatures and product weights fitted on ``records`` (windows as rows, each with
    its clip's label). An expert present in fewer than :data:`MIN_EXPERT_ROWS` windows, or in
    windows of only one label, keeps its temperature; weights are fitted only on windows with
    two or more modalities (the only ones they act on; at least :data:`MIN_WEIGHT_ROWS`),
    starting from the current ones and pulled towards 1 more strongly the fewer there are."""
    n = len(cal.labels)
    win = _flatten(records, modalities, n)
    temperature = dict(cal.temperature)
    info: dict[str, Any] = {"temperature_rows": {}, "kept": {}}
    for j, m in enumerate(modalities):
        rows = win.mask[:, j]
        info["temperature_rows"][m] = int(rows.sum())
        if rows.sum() < MIN_EXPERT_ROWS or len(set(win.y[rows].tolist())) < 2:
            info["kept"][m] = (f"{int(rows.sum())} windows with {m}"
                               + (" of one label" if rows.sum() >= MIN_EXPERT_ROWS else "")
                               + f"; needs {MIN_EXPERT_ROWS}+ of 2+ labels")
            continue
        temperature[m] = fit_temperature(win.logits[rows, j].numpy(), win.y[rows].numpy(),
                                         offset=cal.prior_offset(m).numpy())
    new_cal = ExpertCalibration(cal.labels, temperature, cal.train_prior, cal.target_prior,
                                prior_power=cal.prior_power, info=cal.info)
    multi = win.mask.sum(1) >= 2
    n_multi = int(multi.sum())
    info["weight_rows"] = n_multi
    start = torch.tensor([weights.get(m, 1.0) for m in modalities])
    if n_multi < MIN_WEIGHT_ROWS:
        return temperature, {m: float(weights.get(m, 1.0)) for m in modalities}, info
    w = fit_weights(_log_q(win, new_cal, modalities), win.mask, win.y, new_cal.log_target(),
                    init=start, l2=max(0.01, WEIGHT_PRIOR_ROWS / n_multi))
    fitted = {m: float(w[j]) for j, m in enumerate(modalities)}
    # a modality never present with another one has no evidence about its weight
    for j, m in enumerate(modalities):
        if not bool((win.mask[:, j] & multi).any()):
            fitted[m] = float(weights.get(m, 1.0))
    return temperature, fitted, info


# -- 4. scoring ------------------------------------------------------------------------------
def clip_probabilities(records: Sequence[ClipLogits], cal: ExpertCalibration,
                       weights: dict[str, float], modalities: Sequence[str]
                       ) -> dict[str, np.ndarray]:
    """Per-clip probabilities ``[N, C]`` of every expert and of the fused answer (``"fused"``),
    NaN rows where there is none; windows are combined by duration-weighted mean, as
    :meth:`EmotionRecognizer.analyze` does."""
    n = len(cal.labels)
    win = _flatten(records, modalities, n)
    lq = _log_q(win, cal, modalities)
    w = torch.tensor([weights.get(m, 1.0) for m in modalities], dtype=torch.float32)
    per_window = {m: (lq[:, j].exp().numpy(), win.mask[:, j].numpy())
                  for j, m in enumerate(modalities)}
    fused = combine(lq, win.mask, cal.log_target(), w).exp().numpy()
    per_window["fused"] = (fused, win.mask.any(1).numpy())
    out = {}
    for name, (p, ok) in per_window.items():
        probs = np.full((len(records), n), np.nan)
        for i in range(len(records)):
            sel = (win.clip == i) & ok
            if sel.any():
                ww = win.weight[sel]
                probs[i] = (p[sel] * ww[:, None]).sum(0) / ww.sum()
        out[name] = probs
    return out


def score(probs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy, UAR, ECE (15 bins) and NLL over the rows that have an answer."""
    ok = ~np.isnan(probs).any(1)
    p, t = probs[ok], np.asarray(y)[ok]
    if not len(t):
        return {"n": 0, "accuracy": None, "uar": None, "ece": None, "nll": None}
    pred = p.argmax(1)
    return {"n": int(len(t)), "accuracy": round(float((pred == t).mean()), 4),
            "uar": round(uar(t, pred), 4), "ece": round(expected_calibration_error(p, t), 4),
            "nll": round(nll(p, t), 4)}


def held_out_scores(records: Sequence[ClipLogits], cal: ExpertCalibration,
                    weights: dict[str, float], modalities: Sequence[str]) -> dict[str, Any]:
    y = np.array([r.label for r in records], int)
    probs = clip_probabilities(records, cal, weights, modalities)
    return {name: score(p, y) for name, p in
            [("fused", probs["fused"])] + [(m, probs[m]) for m in modalities]}


# -- 5. the whole job ------------------------------------------------------------------------
def adapt(model: Any, base_dir: str | Path, records: list[ClipLogits], out_dir: str | Path,
          holdout: float = 0.3, seed: int = 0, skipped: Sequence[dict[str, str]] = (),
          sources: dict[str, Any] | None = None) -> AdaptResult:
    """Hold out part of ``records``, fit the fusion's numbers on the rest, score both, and write
    the adapted copy of ``base_dir`` (with ``adapt_report.json`` / ``.md``) to ``out_dir``.
    ``model`` is ``base_dir`` loaded (:class:`~multimodal_emotion.model.EmotionModel`)."""
    modalities = list(model.modalities)
    if FUSION not in model.fusions:
        raise InputError(f"the base model has no {FUSION!r} fusion to adapt; it has "
                         f"{sorted(model.fusions)}")
    if not records:
        raise InputError("no readable clip to adapt on" + (
            f" ({len(skipped)} skipped: {skipped[0]['reason']} ...)" if skipped else ""))
    y = np.array([r.label for r in records], int)
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise InputError(f"adapting needs clips of at least 2 labels; all "
                         f"{len(records)} readable clips are {LABELS[classes[0]]!r}")
    groups = [r.group for r in records]
    grouped = any(not g.startswith("clip:") and not g.startswith("feedback:") for g in groups)
    held = held_out_split(y, groups, holdout, seed)
    if held.all() or not held.any():
        raise InputError(f"{len(records)} clips in {len(set(groups))} groups cannot be split "
                         f"into a fitting part and a held-out part; add clips (or speakers)")
    fit_rows = [r for r, h in zip(records, held) if not h]
    test_rows = [r for r, h in zip(records, held) if h]
    cal = model.calibration
    base_weights = dict(model.fusions[FUSION].weights)
    temperature, weights, fit_info = fit_fusion_numbers(fit_rows, cal, base_weights, modalities)
    new_cal = ExpertCalibration(cal.labels, temperature, cal.train_prior, cal.target_prior,
                                prior_power=cal.prior_power, info=cal.info)
    before = held_out_scores(test_rows, cal, base_weights, modalities)
    after = held_out_scores(test_rows, new_cal, weights, modalities)
    per_class = {LABELS[c]: {"fit": int(((y == c) & ~held).sum()),
                             "held_out": int(((y == c) & held).sum())} for c in classes}
    warnings = []
    if len(test_rows) < MIN_HELD_OUT:
        warnings.append(f"only {len(test_rows)} clips are held out (fewer than {MIN_HELD_OUT}): "
                        f"the before/after figures below are anecdotes, not measurements; "
                        f"collect more labelled clips before trusting or shipping this model")
    thin = [k for k, v in per_class.items() if v["held_out"] == 0]
    if thin:
        warnings.append(f"no held-out clip of {', '.join(thin)}: nothing is measured for them")
    warnings += [f"{m}: base temperature kept ({why})" for m, why in fit_info["kept"].items()]
    if fit_info["weight_rows"] < MIN_WEIGHT_ROWS:
        warnings.append(f"{fit_info['weight_rows']} fitting windows had two or more "
                        f"modalities (needs {MIN_WEIGHT_ROWS}+): product weights kept")
    if skipped:
        warnings.append(f"{len(skipped)} unreadable clip(s) skipped (listed under 'skipped')")
    report = {
        "base": str(base_dir), "out": str(out_dir),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": sources or {}, "holdout": holdout, "seed": seed,
        "split": "by speaker" if grouped else "by clip",
        "clips": {"readable": len(records), "skipped": len(skipped),
                  "fit": len(fit_rows), "held_out": len(test_rows)},
        "per_class": per_class,
        "fitted": {
            "temperature": {m: {"before": round(float(cal.temperature.get(m, 1.0)), 4),
                                "after": round(float(temperature.get(m, 1.0)), 4),
                                "windows": fit_info["temperature_rows"][m]}
                            for m in modalities},
            "weights": {m: {"before": round(base_weights.get(m, 1.0), 4),
                            "after": round(weights[m], 4)} for m in modalities},
            "weight_windows": fit_info["weight_rows"],
        },
        "held_out_scores": {"before": before, "after": after},
        "warnings": warnings,
        "skipped": list(skipped),
    }
    out = write_adapted_model(base_dir, out_dir, temperature, weights, report)
    return AdaptResult(temperature, weights, report, out, list(skipped))


def write_adapted_model(base_dir: str | Path, out_dir: str | Path,
                        temperature: dict[str, float], weights: dict[str, float],
                        report: dict[str, Any]) -> Path:
    """Copy ``base_dir`` to ``out_dir`` (weights and encoder folders byte for byte) and change
    only ``config.json``'s ``calibration`` and ``fusions.product.weights``; add the reports."""
    base, out = Path(base_dir), Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} exists and is not empty; choose a new folder for the adapted "
                         f"model")
    if out.resolve() == base.resolve():
        raise InputError("--out must differ from --base: the base model is never changed")
    shutil.copytree(base, out, dirs_exist_ok=True)
    config = json.loads((base / "config.json").read_text())
    model_labels = config.get("labels", list(LABELS))
    cal = ExpertCalibration.from_config(model_labels, config.get("calibration"))
    cal.temperature.update({m: float(t) for m, t in temperature.items()})
    cal.info = {**cal.info, "adapted": {
        "from": str(base), "created": report["created"], "clips": report["clips"],
        "report": "adapt_report.json"}}
    config["calibration"] = cal.to_config()
    config["fusions"][FUSION]["weights"] = {m: round(float(w), 6) for m, w in weights.items()}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "adapt_report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "adapt_report.md").write_text(format_report_md(report))
    return out


# -- 6. reading the report -------------------------------------------------------------------
def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def format_table(report: dict[str, Any]) -> str:
    """The held-out before/after table (markdown; also readable in a terminal)."""
    b, a = report["held_out_scores"]["before"], report["held_out_scores"]["after"]
    lines = ["| held out | n | accuracy before → after | UAR before → after | "
             "ECE before → after | NLL before → after |", "| --- | ---: | --- | --- | --- | --- |"]
    for name in b:
        row = [name, str(a[name]["n"])]
        for k in ("accuracy", "uar", "ece", "nll"):
            row.append(f"{_fmt(b[name][k])} → {_fmt(a[name][k])}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def format_fitted(report: dict[str, Any]) -> str:
    f = report["fitted"]
    lines = ["| expert | temperature before → after | fitting windows | product weight "
             "before → after |", "| --- | --- | ---: | --- |"]
    for m, t in f["temperature"].items():
        w = f["weights"][m]
        lines.append(f"| {m} | {t['before']:.3f} → {t['after']:.3f} | {t['windows']} | "
                     f"{w['before']:.3f} → {w['after']:.3f} |")
    return "\n".join(lines)


def format_report_md(report: dict[str, Any]) -> str:
    c = report["clips"]
    classes = ", ".join(f"{k} {v['fit']}/{v['held_out']}" for k, v in report["per_class"].items())
    sources = ", ".join(f"{k} `{v}`" for k, v in report["sources"].items() if v)
    parts = [f"# Adapted fusion: {report['out']}", "",
             f"Base model `{report['base']}`" + (f"; sources: {sources}" if sources else "")
             + ".", "",
             f"{c['readable']} readable clips ({c['skipped']} skipped): {c['fit']} to fit, "
             f"{c['held_out']} held out ({report['holdout']:.0%} asked, split {report['split']}, "
             f"seed {report['seed']}). Per class (fit/held out): {classes}.", ""]
    if report["warnings"]:
        parts += ["## Warnings", ""] + [f"- **{w}**" for w in report["warnings"]] + [""]
    parts += ["## Held-out clips, before vs after", "", format_table(report), "",
              "An expert's accuracy and UAR cannot change: a temperature rescales its "
              "confidence, never its ranking. ECE: expected calibration error (15 bins); NLL: "
              "mean negative log-likelihood of the true label (lower is better for both).", "",
              "## What changed in config.json", "", format_fitted(report), "",
              "Nothing else: expert heads, encoders and weights files are copied unchanged."]
    if report["skipped"]:
        parts += ["", "## Skipped clips", ""] + [f"- `{s['source']}`: {s['reason']}"
                                                 for s in report["skipped"]]
    return "\n".join(parts) + "\n"


# -- 7. the shell's entry point --------------------------------------------------------------
def adapt_cli(args: argparse.Namespace) -> int:
    """``mer adapt``: read the manifest and/or feedback store, encode, fit, write, print."""
    from .evaluation import load_manifest
    from .model import DEFAULT_MODEL_DIR

    if not args.manifest and not args.feedback:
        raise InputError("give --manifest CSV, --feedback DB, or both")
    items: list[Any] = []
    if args.manifest:
        try:
            items, dropped = load_manifest(Path(args.manifest))
        except KeyError as exc:  # a label name the label table has never seen
            raise InputError(f"{args.manifest}: {exc.args[0]}; use the canonical labels "
                             f"{list(LABELS)}") from None
        if dropped:
            raise InputError(f"{args.manifest}: labels outside {list(LABELS)}: "
                             + ", ".join(f"{k!r} ({v})" for k, v in dropped.items())
                             + "; remove those rows or map them to a canonical label")
    base_dir = Path(args.base) if args.base else DEFAULT_MODEL_DIR
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):  # fail before minutes of encoding, not after
        raise InputError(f"{out} exists and is not empty; choose a new folder")
    from .recognizer import EmotionRecognizer

    rec = EmotionRecognizer.from_pretrained(base_dir)
    records, skipped = encode_items(rec, items)
    for s in skipped:
        print(f"skipped: {s['source']}: {s['reason']}", file=sys.stderr)
    sources: dict[str, Any] = {"manifest": args.manifest}
    if args.feedback:
        fb, counts = feedback_records(args.feedback, rec.model)
        records += fb
        sources["feedback"] = f"{args.feedback} ({counts['used']} labelled analyses used, "\
                              f"{counts['other_heads']} from other expert heads left out)"
    result = adapt(rec.model, base_dir, records, out, args.holdout, args.seed, skipped, sources)
    if args.json:
        print(json.dumps(result.report))
    else:
        c = result.report["clips"]
        print(f"{c['readable']} clips ({c['skipped']} skipped): {c['fit']} fit, "
              f"{c['held_out']} held out, split {result.report['split']}")
        for w in result.report["warnings"]:
            print(f"warning: {w}")
        print(format_table(result.report))
        print(format_fitted(result.report))
        print(f"adapted model: {out} (report: {out / 'adapt_report.md'})")
    return 0


__all__ = ["adapt", "adapt_cli", "encode_items", "feedback_records", "held_out_split",
           "fit_fusion_numbers", "held_out_scores", "write_adapted_model", "ClipLogits"]
