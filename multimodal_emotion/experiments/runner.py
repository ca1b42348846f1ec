"""Run a fusion comparison end to end: load (cached) features, split by speaker, train every
row on every (fold, seed), score, aggregate, test, and write the report folder.

    mer experiment bench/experiments/ravdess.yaml
    from multimodal_emotion.experiments import run_experiment, load_config
    results = run_experiment(load_config("bench/experiments/ravdess.yaml"))
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .config import ExperimentConfig, load_config
from .data import ExperimentData, ModalityData, load_dataset, speaker_normalise
from .metrics import aggregate, paired_test, run_report
from .protocol import make_splits
from .trainer import RunOutput, train_late, train_logreg, train_neural, train_product, \
    train_svm

REFERENCE_ROW = "reference"
PROBE_ROW = "linear probe"


def _versions() -> dict[str, str]:
    import sklearn
    import torch

    from .. import __version__

    return {"multimodal_emotion": __version__, "torch": str(torch.__version__),
            "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "python": platform.python_version()}


def prepare(cfg: ExperimentConfig, data: ExperimentData | None = None) -> ExperimentData:
    """Load the dataset's modality blocks (extraction is cached) and apply speaker norm."""
    if data is None:
        from ..datasets import default_data_root

        root = Path(cfg.data) if cfg.data else default_data_root()
        opts = {m: dict(spec) for m, spec in cfg.modalities.items()}
        data = load_dataset(cfg.dataset, root, opts, cfg.reference)
        data.modalities = {m: data.modalities[m] for m in cfg.modalities}
    if cfg.speaker_norm:
        g = data.groups
        data.modalities = {
            m: ModalityData(speaker_normalise(d.x, g), d.available,
                            None if d.seq is None else speaker_normalise(d.seq, g, d.seq_valid),
                            d.seq_valid, {**d.description, "speaker_norm": True})
            for m, d in data.modalities.items()}
        if "x" in data.reference:
            data.reference = {**data.reference, "x": speaker_normalise(data.reference["x"], g)}
    return data


def _rows(cfg: ExperimentConfig, data: ExperimentData) -> list[dict[str, Any]]:
    """The comparison's rows: each strategy, each modality alone, the classic reference."""
    rows = [{"name": f, "kind": "fusion", "strategy": f, "modalities": list(data.modalities)}
            for f in cfg.fusions]
    if cfg.unimodal:
        rows += [{"name": f"{m} only", "kind": "unimodal", "strategy": "concat",
                  "modalities": [m]} for m in data.modalities]
    if cfg.linear_probe:
        rows.append({"name": PROBE_ROW, "kind": "reference", "strategy": "logreg",
                     "modalities": list(data.modalities),
                     "description": "logistic regression on the concatenated pooled features"})
    if cfg.reference and "x" in data.reference:
        rows.append({"name": REFERENCE_ROW, "kind": "reference", "strategy": "svm",
                     "modalities": [], "description": cfg.reference.get("description",
                                                                        "features + SVM")})
    return rows


def run_experiment(cfg: ExperimentConfig, data: ExperimentData | None = None,
                   out: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every row on every split; write the report folder when ``out`` (or ``cfg.out``)
    is set; return the results dict (the content of ``results.json``)."""
    t0 = time.perf_counter()
    data = prepare(cfg, data)
    load_s = time.perf_counter() - t0
    splits = make_splits(data, cfg.protocol, cfg.seeds)
    rows = _rows(cfg, data)
    per_row: dict[str, list[dict[str, Any]]] = {r["name"]: [] for r in rows}
    missing: dict[str, dict[str, list[dict[str, Any]]]] = {}
    t1 = time.perf_counter()
    bar = tqdm(total=len(splits) * len(rows), desc=f"{cfg.name}", disable=not progress,
               unit="run", mininterval=2)
    for split in splits:
        for row in rows:
            bar.set_postfix_str(f"{split.name} {row['name']}")
            t = time.perf_counter()
            res = _train_row(cfg, data, row, split)
            rep = run_report(data.y[split.test], res.test_proba, data.class_names)
            per_row[row["name"]].append({
                "fold": split.fold, "seed": split.seed, "report": rep,
                "best_epoch": res.best_epoch, "val_uar": res.val_uar, "chosen": res.chosen,
                "history": res.history, "seconds": time.perf_counter() - t,
                "n_train": len(split.train), "n_val": len(split.val), "n_test": len(split.test)})
            for m, p in res.missing_proba.items():
                missing.setdefault(row["name"], {}).setdefault(f"without {m}", []).append(
                    run_report(data.y[split.test], p, data.class_names))
            bar.update()
    bar.close()
    train_s = time.perf_counter() - t1
    results = _assemble(cfg, data, splits, rows, per_row, missing)
    results["timing"] = {"load_s": round(load_s, 1), "compare_s": round(train_s, 1),
                         "runs": len(splits) * len(rows)}
    target = out or cfg.out
    if target:
        from .report import write_report

        write_report(results, Path(target))
    return results


def _train_row(cfg: ExperimentConfig, data: ExperimentData, row: dict[str, Any],
               split) -> RunOutput:
    if row["strategy"] == "logreg":
        x = np.concatenate([data.modalities[m].x for m in row["modalities"]], 1)
        return train_logreg(x, data.y, split.train, split.val, split.test, data.n_classes,
                            split.seed)
    if row["kind"] == "reference":
        return train_svm(data.reference["x"], data.y, split.train, split.val, split.test,
                         data.n_classes, split.seed)
    mods = {m: data.modalities[m] for m in row["modalities"]}
    if row["strategy"] == "product":
        return train_product(mods, data.y, split.train, split.val, split.test, data.n_classes,
                             cfg.train, split.seed, cfg.fusion_options.get("product"),
                             missing=cfg.missing_modality)
    if row["strategy"] == "late":
        return train_late(mods, data.y, split.train, split.val, split.test, data.n_classes,
                          cfg.train, split.seed, cfg.fusion_options.get("late"),
                          missing=cfg.missing_modality)
    return train_neural(row["strategy"], mods, data.y, split.train, split.val, split.test,
                        data.n_classes, cfg.train, split.seed,
                        cfg.fusion_options.get(row["strategy"]) if row["kind"] == "fusion"
                        else None,
                        missing=cfg.missing_modality and row["kind"] == "fusion")


def _assemble(cfg: ExperimentConfig, data: ExperimentData, splits, rows, per_row, missing
              ) -> dict[str, Any]:
    metric = cfg.metric
    table: dict[str, Any] = {}
    for row in rows:
        runs = per_row[row["name"]]
        agg = aggregate([r["report"] for r in runs])
        table[row["name"]] = {
            **{k: v for k, v in row.items() if k != "name"}, "summary": agg,
            "runs": [{"fold": r["fold"], "seed": r["seed"], "best_epoch": r["best_epoch"],
                      "val_uar": r["val_uar"], "chosen": r["chosen"],
                      "seconds": round(r["seconds"], 2),
                      **{k: r["report"][k] for k in ("accuracy", "uar", "macro_f1",
                                                     "weighted_f1", "roc_auc")}}
                     for r in runs],
            "curves": [r["history"] for r in runs],
        }
    fusions = sorted((r["name"] for r in rows if r["kind"] == "fusion"),
                     key=lambda n: -table[n]["summary"][metric]["mean"])
    paired = None
    if len(fusions) >= 2:
        a, b = fusions[:2]
        paired = {"a": a, "b": b, "metric": metric,
                  **paired_test(table[a]["summary"][metric]["values"],
                                table[b]["summary"][metric]["values"])}
    speakers = sorted(set(data.groups.tolist()), key=str)
    return {
        "name": cfg.name, "config": cfg.to_dict(), "versions": _versions(),
        "dataset": {"name": data.name, "items": int(len(data.y)), "speakers": len(speakers),
                    "classes": data.class_names,
                    "class_counts": np.bincount(data.y, minlength=data.n_classes).tolist(),
                    "modalities": {m: {"dim": d.dim, "sequence": d.seq is not None,
                                       "available": int(d.available.sum()), **d.description}
                                   for m, d in data.modalities.items()}},
        "protocol": {"kind": cfg.protocol.kind, "metric": metric, "splits": [
            {"fold": s.fold, "seed": s.seed, "n_train": len(s.train), "n_val": len(s.val),
             "n_test": len(s.test),
             "val_speakers": sorted({str(g) for g in data.groups[s.val]}),
             "test_speakers": sorted({str(g) for g in data.groups[s.test]})}
            for s in splits]},
        "rows": table,
        "missing_modality": {f: {c: aggregate(reps) for c, reps in conds.items()}
                             for f, conds in missing.items()},
        "ranking": fusions, "best": fusions[0] if fusions else None,
        "paired_test": paired,
    }


def experiment_cli(args: Any) -> int:
    """``mer experiment CONFIG [--out DIR] [--set k=v ...] [--data ROOT]``."""
    overrides = list(args.set)
    if args.data:
        overrides.append(f"data={args.data}")
    cfg = load_config(args.config, overrides)
    out = Path(args.out or cfg.out or Path("results") / cfg.name)
    results = run_experiment(cfg, out=out)
    from .report import markdown_table

    print(markdown_table(results))
    t = results["timing"]
    print(f"\nfeatures ready in {t['load_s']} s; {t['runs']} runs in {t['compare_s']} s; "
          f"report in {out}/")
    return 0
