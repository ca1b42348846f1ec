"""The report folder of an experiment: ``results.json`` (everything), ``results.md`` (the
tables), ``config.yaml`` (the exact settings and versions) and PNG figures a paper can use.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

METRIC_NAMES = {"accuracy": "Accuracy", "uar": "UAR", "macro_f1": "Macro-F1",
                "weighted_f1": "Weighted-F1", "roc_auc": "ROC-AUC"}
SPEAKER_NORM_NOTE = ("on: per-speaker z-score of every feature, label-free but transductive "
                     "(each test speaker is normalised with all of that speaker's test clips)")
KIND_COLORS = {"fusion": "#2b6cb0", "unimodal": "#a0aec0", "reference": "#dd6b20"}


def _pm(stat: dict[str, Any]) -> str:
    if stat is None or math.isnan(stat["mean"]):
        return "n/a"
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def markdown_table(results: dict[str, Any]) -> str:
    """The main comparison as a Markdown table (percent, mean ± std over folds x seeds)."""
    metric = results["protocol"]["metric"]
    head = "| row | kind | " + " | ".join(METRIC_NAMES.values()) \
        + " | runs | keeps a lone expert's answer |"
    lines = [head, "|" + "---|" * (len(METRIC_NAMES) + 4)]
    order = sorted(results["rows"].items(),
                   key=lambda kv: (["fusion", "unimodal", "reference"].index(kv[1]["kind"]),
                                   -kv[1]["summary"][metric]["mean"]))
    for name, row in order:
        s = row["summary"]
        label = f"**{name}**" if name == results.get("best") else name
        lines.append(f"| {label} | {row['kind']} | "
                     + " | ".join(_pm(s[k]) for k in METRIC_NAMES) + f" | {s['runs']} | "
                     + (_keeps(row.get("strategy", "")) if row["kind"] == "fusion" else "-")
                     + " |")
    return "\n".join(lines)


def missing_table(results: dict[str, Any]) -> str:
    metric = results["protocol"]["metric"]
    miss = results.get("missing_modality") or {}
    if not miss:
        return ""
    conds = sorted({c for v in miss.values() for c in v})
    lines = ["| strategy | keeps a lone expert's answer | all modalities | "
             + " | ".join(conds) + " |", "|" + "---|" * (len(conds) + 3)]
    for f, by in miss.items():
        lines.append(f"| {f} | {_keeps(f)} | {_pm(results['rows'][f]['summary'][metric])} | "
                     + " | ".join(_pm(by[c][metric]) if c in by else "" for c in conds) + " |")
    return "\n".join(lines)


def _keeps(strategy: str) -> str:
    """Whether the strategy answers exactly as the expert when one modality is present."""
    from ..fusion import FUSIONS, keeps_single_modality

    return ("yes" if keeps_single_modality(strategy) else "no") if strategy in FUSIONS else "-"


def late_weights(results: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Per row that fuses by weighted product (``late``), each modality's weight in every run:
    how much that modality's log-probabilities count in the fused answer."""
    out: dict[str, dict[str, list[float]]] = {}
    for name, row in results["rows"].items():
        for run in row["runs"]:
            for m, w in ((run.get("chosen") or {}).get("weights") or {}).items():
                out.setdefault(name, {}).setdefault(m, []).append(float(w))
    return out


def late_weights_table(results: dict[str, Any]) -> str:
    """Markdown: each late row's modality weights (mean ± std over runs) and the penalty C each
    modality's expert got most often."""
    weights = late_weights(results)
    if not weights:
        return ""
    lines = ["| row | modality | weight | C chosen (runs) |", "|---|---|---|---|"]
    for name, by_mod in weights.items():
        for m, ws in by_mod.items():
            cs = [run["chosen"]["C"][m] for run in results["rows"][name]["runs"]
                  if m in (run.get("chosen") or {}).get("C", {})]
            counts = {c: cs.count(c) for c in sorted(set(cs))}
            lines.append(f"| {name} | {m} | {np.mean(ws):.2f} ± {np.std(ws):.2f} | "
                         + ", ".join(f"{c:g} ({k})" for c, k in counts.items()) + " |")
    return "\n".join(lines)


def _markdown(results: dict[str, Any]) -> str:
    cfg, ds, metric = results["config"], results["dataset"], results["protocol"]["metric"]
    mods = ", ".join(f"{m} = {v.get('source')} ({v['dim']}-d"
                     + (", + sequence" if v.get("sequence") else "") + ")"
                     for m, v in ds["modalities"].items())
    proto = results["protocol"]
    n_runs = len(proto["splits"])
    lines = [
        f"# {results['name']}",
        "",
        f"- dataset: {ds['name']}, {ds['items']} items, {ds['speakers']} speakers, "
        f"{len(ds['classes'])} classes ({', '.join(ds['classes'])})",
        f"- modalities: {mods}",
        f"- protocol: {proto['kind']}, speaker-independent; {n_runs} runs "
        f"(folds x seeds {cfg['seeds']}); early stopping and every choice on validation "
        f"speakers drawn from the training speakers only",
        f"- speaker normalisation: {SPEAKER_NORM_NOTE if cfg['speaker_norm'] else 'off'}",
        f"- headline metric: {METRIC_NAMES[metric]}; mean ± std over runs, in %",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()),
    ]
    if "timing" in results:
        t = results["timing"]
        lines.append(f"- time: features {t['load_s']} s (cached after the first run), "
                     f"{t['runs']} training runs {t['compare_s']} s")
    lines += ["", "## Comparison", "", markdown_table(results), ""]
    mt = missing_table(results)
    if mt:
        lines += ["## Missing modality at test time", "",
                  f"{METRIC_NAMES[metric]} of each strategy when one modality is removed from "
                  "every test item (the model was trained with modality dropout).", "", mt, ""]
    p = results.get("paired_test")
    if p:
        lines += ["## Paired test between the two best strategies", "",
                  f"{p['a']} vs {p['b']} on {METRIC_NAMES[p['metric']]} over {p['n']} paired "
                  f"runs: mean difference {100 * p['mean_diff']:+.2f} points, "
                  f"{p['wins']} wins / {p['losses']} losses / {p['ties']} ties; Wilcoxon "
                  f"signed-rank p = {p['wilcoxon_p']:.3g}, paired t-test p = {p['ttest_p']:.3g}.",
                  ""]
    lw = late_weights_table(results)
    if lw:
        lines += ["## Late fusion: how much each modality counts", "",
                  "The fused answer is softmax(sum over modalities of weight x log-probability of "
                  "that modality's expert); weights and each expert's penalty C were chosen on the "
                  "validation speakers of each run. A weight matters only as far as its "
                  "expert's output varies: an expert that says the same for every item (a flat "
                  "distribution, e.g. text that carries no emotion) keeps its starting weight, "
                  "1, and moves no answer.", "", lw, ""]
    best = results.get("best")
    if best:
        s = results["rows"][best]["summary"]
        lines += [f"## Per class: {best}", "", "| class | precision | recall | F1 |",
                  "|---|---|---|---|"]
        for c, v in s["per_class"].items():
            lines.append(f"| {c} | {100 * v['precision']:.1f} | {100 * v['recall']:.1f} | "
                         f"{100 * v['f1']:.1f} |")
        lines.append("")
    lines += ["## Figures", "", "- `comparison.png`: every row, mean ± std",
              "- `confusion_<row>.png`: confusion matrix per strategy, summed over runs, "
              "normalised by true class", "- `curves.png`: training loss and validation "
              f"{METRIC_NAMES['uar']} per epoch (mean over runs)",
              "- `missing_modality.png`: each strategy with one modality removed"]
    if lw:
        lines.append("- `late_weights.png`: late fusion's weight per modality, every run")
    lines.append("")
    return "\n".join(lines)


def write_report(results: dict[str, Any], out: Path) -> list[Path]:
    """Write the folder; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "results.json", out / "results.md", out / "config.yaml"]
    files[0].write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    files[1].write_text(_markdown(results))
    plain = json.loads(json.dumps({"config": results["config"], "versions": results["versions"]},
                                  default=_json_default))
    files[2].write_text(yaml.safe_dump(plain, sort_keys=False))
    files += plot_all(results, out)
    return files


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# ---------------------------------------------------------------------------------- figures

def plot_all(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    files = [plot_comparison(results, out / "comparison.png")]
    for name, row in results["rows"].items():
        if row["kind"] != "unimodal":
            slug = name.replace(" ", "_")
            files.append(plot_confusion(row["summary"], name, out / f"confusion_{slug}.png"))
    if any(r["kind"] != "reference" for r in results["rows"].values()):
        files.append(plot_curves(results, out / "curves.png"))
    if results.get("missing_modality"):
        files.append(plot_missing(results, out / "missing_modality.png"))
    if late_weights(results):
        files.append(plot_late_weights(results, out / "late_weights.png"))
    return files


def plot_late_weights(results: dict[str, Any], path: Path) -> Path:
    """Bars: mean weight per modality for each late-fusion row; dots: the single runs."""
    import matplotlib.pyplot as plt

    weights = late_weights(results)
    mods = sorted({m for by in weights.values() for m in by})
    fig, ax = plt.subplots(figsize=(max(6.4, 1.6 + 1.4 * len(mods) * len(weights)), 3.8))
    width = 0.8 / len(weights)
    rng = np.random.default_rng(0)
    for j, (name, by) in enumerate(weights.items()):
        xs = np.arange(len(mods)) + (j - (len(weights) - 1) / 2) * width
        means = [np.mean(by.get(m, [np.nan])) for m in mods]
        ax.bar(xs, means, width * 0.9, label=name, color=KIND_COLORS["fusion"], alpha=0.55)
        for x, m in zip(xs, mods):
            ws = by.get(m, [])
            ax.plot(x + rng.uniform(-width * 0.25, width * 0.25, len(ws)), ws, "o", ms=3,
                    color="#1a202c")
    ax.set_xticks(np.arange(len(mods)), mods)
    ax.set_ylabel("weight on log-probability")
    ax.axhline(1.0, color="grey", ls="--", lw=0.8)
    runs = max(len(ws) for by in weights.values() for ws in by.values())
    ax.set_title(f"{results['name']}: late fusion, how much each modality counts\n"
                 f"(bars: mean, dots: the {runs} runs)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_comparison(results: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    metric = results["protocol"]["metric"]
    rows = sorted(results["rows"].items(), key=lambda kv: kv[1]["summary"][metric]["mean"])
    means = [100 * r["summary"][metric]["mean"] for _, r in rows]
    stds = [100 * r["summary"][metric]["std"] for _, r in rows]
    colors = [KIND_COLORS[r["kind"]] for _, r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.4))
    y = np.arange(len(rows))
    ax.barh(y, means, xerr=stds, color=colors, capsize=4, ecolor="#333")
    for yi, m, s in zip(y, means, stds):
        ax.text(m + s + 0.8, yi, f"{m:.1f}", va="center", fontsize=9)
    ax.set_yticks(y, [n for n, _ in rows])
    ax.set_xlabel(f"{METRIC_NAMES[metric]} (%), mean ± std over {rows[0][1]['summary']['runs']} "
                  "runs")
    ax.set_xlim(0, min(100, max(m + s for m, s in zip(means, stds)) + 10))
    chance = 100 / len(results["dataset"]["classes"])
    ax.axvline(chance, color="#999", ls="--", lw=1)
    ax.text(chance, len(rows) - 0.4, " chance", color="#777", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in KIND_COLORS.values()]
    ax.legend(handles, list(KIND_COLORS), loc="lower right", fontsize=8)
    ax.set_title(f"{results['name']}: {results['dataset']['name']}, speaker-independent")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_confusion(summary: dict[str, Any], name: str, path: Path) -> Path:
    from ..plots import save_confusion

    cm = np.asarray(summary["confusion_matrix"])
    size = 1.6 + 0.62 * len(summary["labels"])
    return save_confusion(path, cm, summary["labels"],
                          f"{name}: recall % per true class ({int(cm.sum())} test items)",
                          percent=True, figsize=(size + 1.0, size), title_size=10)


def _mean_curve(curves: list[list[dict[str, float]]], key: str) -> np.ndarray:
    n = max(len(c) for c in curves)
    arr = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        arr[i, :len(c)] = [h[key] for h in c]
    return np.nanmean(arr, 0)


def plot_curves(results: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, row in results["rows"].items():
        curves = [c for c in row["curves"] if c]
        if row["kind"] == "reference" or not curves:
            continue
        style = "-" if row["kind"] == "fusion" else ":"
        for ax, key in zip(axes, ("train_loss", "val_loss", "val_uar")):
            y = _mean_curve(curves, key)
            ax.plot(np.arange(1, len(y) + 1), 100 * y if key == "val_uar" else y, style,
                    label=name)
    titles = ("training loss", "validation loss", "validation UAR (%)")
    for ax, t in zip(axes, titles):
        ax.set_title(t)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    fig.suptitle(f"{results['name']}: learning curves, mean over runs (runs stop early at "
                 "different epochs)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_missing(results: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    metric = results["protocol"]["metric"]
    miss = results["missing_modality"]
    strategies = list(miss)
    conds = ["all modalities"] + sorted({c for v in miss.values() for c in v})
    fig, ax = plt.subplots(figsize=(1.6 + 1.9 * len(strategies), 4))
    width = 0.8 / len(conds)
    cmap = plt.get_cmap("tab10")
    for k, c in enumerate(conds):
        vals, errs = [], []
        for f in strategies:
            s = results["rows"][f]["summary"][metric] if k == 0 else miss[f].get(c, {}).get(metric)
            vals.append(100 * s["mean"] if s else 0)
            errs.append(100 * s["std"] if s else 0)
        x = np.arange(len(strategies)) + (k - (len(conds) - 1) / 2) * width
        ax.bar(x, vals, width, yerr=errs, capsize=3, label=c, color=cmap(k))
    ax.set_xticks(range(len(strategies)), strategies)
    ax.set_ylabel(f"{METRIC_NAMES[metric]} (%)")
    ax.set_ylim(0, 100)
    ax.axhline(100 / len(results["dataset"]["classes"]), color="#999", ls="--", lw=1)
    ax.legend(fontsize=8, ncol=len(conds), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.set_title(f"{results['name']}: one modality removed at test time")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
