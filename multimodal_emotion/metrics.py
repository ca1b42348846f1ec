"""Classification metrics computed from integer labels, without sklearn's silent warnings.

UAR (unweighted average recall, i.e. balanced accuracy) is the field's headline for emotion
recognition because classes are unbalanced; accuracy alone rewards predicting "neutral".
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def uar(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Unweighted average recall over the classes present in ``y_true`` (balanced accuracy)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in np.unique(y_true)]))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted ones."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def classification_report(y_true: Sequence[int], y_pred: Sequence[int],
                          class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, UAR, macro-F1, weighted-F1, per-class precision/recall/F1/support, confusion.

    Classes with no true sample are left out of UAR and macro averages (they have no recall), but
    stay in the confusion matrix so stray predictions into them remain visible.
    """
    y_true = np.asarray(y_true, int)
    y_pred = np.asarray(y_pred, int)
    n = len(class_names)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(float)
    support = cm.sum(1).astype(float)
    predicted = cm.sum(0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    total = support.sum()
    return {
        "n": int(total),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
        "labels": list(class_names),
    }


def format_report(report: dict[str, Any], title: str = "") -> str:
    """A readable text table of a :func:`classification_report`."""
    lines = [title] if title else []
    lines.append(f"n={report['n']}  accuracy={report['accuracy']:.4f}  UAR={report['uar']:.4f}  "
                 f"macro-F1={report['macro_f1']:.4f}  weighted-F1={report['weighted_f1']:.4f}")
    lines.append(f"{'class':<12}{'prec':>8}{'recall':>8}{'f1':>8}{'n':>7}")
    for name, m in report["per_class"].items():
        lines.append(f"{name:<12}{m['precision']:>8.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}"
                     f"{m['support']:>7d}")
    names = report["labels"]
    lines.append("confusion (rows true, cols predicted): " + " ".join(n[:4] for n in names))
    for name, row in zip(names, report["confusion_matrix"]):
        lines.append(f"  {name[:10]:<10}" + "".join(f"{v:>6d}" for v in row))
    return "\n".join(lines)
