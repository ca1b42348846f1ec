"""Scores for one run, their spread over runs, and a paired test between two strategies.

Per run (one fold x one seed): accuracy, UAR, macro-F1, weighted-F1, one-vs-rest ROC-AUC
(macro over classes), per-class precision/recall/F1, confusion matrix. Over runs: mean and
sample standard deviation of each scalar, confusion matrices summed. Between the two best
strategies: paired over the same (fold, seed) runs, Wilcoxon signed-rank and paired t-test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metrics import classification_report, uar

__all__ = ["uar", "roc_auc_ovr", "run_report", "aggregate", "paired_test", "SCALARS"]

SCALARS = ("accuracy", "uar", "macro_f1", "weighted_f1", "roc_auc")


def roc_auc_ovr(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Macro one-vs-rest ROC-AUC (binary: the positive class's AUC); NaN if a class is absent
    from ``y_true`` so AUC is undefined."""
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true)
    n = proba.shape[1]
    if len(np.unique(y_true)) < n:
        return float("nan")
    if n == 2:
        return float(roc_auc_score(y_true, proba[:, 1]))
    return float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro",
                               labels=list(range(n))))


def run_report(y_true: np.ndarray, proba: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    rep = classification_report(y_true, proba.argmax(1), class_names)
    rep["roc_auc"] = roc_auc_ovr(y_true, proba)
    return rep


def aggregate(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean/std of scalars over runs, mean per-class scores, summed confusion matrix."""
    out: dict[str, Any] = {"runs": len(reports)}
    for k in SCALARS:
        vals = np.asarray([r[k] for r in reports], float)
        out[k] = {"mean": float(np.nanmean(vals)),
                  "std": float(np.nanstd(vals, ddof=1)) if len(vals) > 1 else 0.0,
                  "values": vals.tolist()}
    names = reports[0]["labels"]
    out["per_class"] = {
        c: {k: float(np.mean([r["per_class"][c][k] for r in reports]))
            for k in ("precision", "recall", "f1")} for c in names}
    out["confusion_matrix"] = np.sum([r["confusion_matrix"] for r in reports], 0).tolist()
    out["labels"] = names
    return out


def paired_test(a: list[float], b: list[float]) -> dict[str, Any]:
    """Paired comparison of two rows over the same runs: mean difference, wins, Wilcoxon
    signed-rank and paired t-test p-values (two-sided). With every difference zero the tests
    are undefined and p is reported as 1."""
    from scipy import stats

    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    d = a_ - b_
    res: dict[str, Any] = {"n": int(len(d)), "mean_diff": float(d.mean()),
                           "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
                           "ties": int((d == 0).sum())}
    if len(d) < 2 or np.all(d == 0):
        res.update(wilcoxon_p=1.0, ttest_p=1.0)
        return res
    res["wilcoxon_p"] = float(stats.wilcoxon(a_, b_, zero_method="zsplit").pvalue)
    res["ttest_p"] = float(stats.ttest_rel(a_, b_).pvalue) if np.std(d) > 0 else \
        (0.0 if d.mean() != 0 else 1.0)
    return res
