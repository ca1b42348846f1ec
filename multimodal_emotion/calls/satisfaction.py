"""Satisfaction from a call's emotional trajectory, fitted on the user's own labelled calls.

No satisfaction number ships with the package: there are no labelled calls here to fit one on,
and a number from nowhere would be read as a measurement. ``mer call fit-satisfaction`` fits a
logistic regression on *standardized* per-call features of the customer's trajectory
(:data:`FEATURES`), reports it cross-validated (stratified folds: AUC and accuracy per fold,
beside the majority-class accuracy), and saves a small JSON model; ``mer call --satisfaction
model.json`` applies it. The features are recomputed from each call's turns under the model's
own escalation rule, so a model and the calls it scores always agree on what the features mean.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .events import EscalationRule, negativity
from .score import valence
from .summary import customers, roles_of, summarize, turns_of

KIND = "mer-call-satisfaction/1"

# name -> what it is; every one computed from the customer's turns (see call_features)
FEATURES: dict[str, str] = {
    "score": "end-weighted sentiment score (README: the score formula)",
    "trend": "valence slope from start to end (0 when under two turns)",
    "mean_valence": "duration-weighted mean valence of the customer's turns",
    "end_valence": "mean valence in the last third of the call (the score when none)",
    "min_valence": "lowest valence of any customer turn",
    "negativity": "duration-weighted mean negativity (P(angry)+P(disgust), or the rule's "
                  "category)",
    "escalations": "number of escalations",
    "unrecovered": "1 when an escalation was still open at the end, else 0",
    "customer_talk_share": "customer talk time / all talk time",
    "overtalk_share": "time two people spoke at once / call duration",
    "interruptions_per_min": "interruptions (anyone's) per minute of call",
    "silence_share": "time nobody spoke / call duration",
}

_POSITIVE = {"1", "yes", "true", "satisfied", "positive", "good"}
_NEGATIVE = {"0", "no", "false", "unsatisfied", "dissatisfied", "negative", "bad"}


def call_features(result: Mapping[str, Any], rule: EscalationRule = EscalationRule()
                  ) -> dict[str, float]:
    """:data:`FEATURES` of one ``mer call --json`` object."""
    turns = turns_of(result)
    duration = float(result.get("duration") or max((t.end for t in turns), default=0.0))
    roles = roles_of(result)
    speakers = list(roles) or list(dict.fromkeys(t.speaker for t in turns))
    events, summary = summarize(turns, duration, roles, speakers, rule)
    cust = set(customers(roles, speakers))
    mine = [t for t in turns if t.speaker in cust and t.probabilities is not None
            and t.duration > 0]
    sent = summary["sentiment"]
    if mine:
        d = np.array([t.duration for t in mine])
        v = np.array([valence(t.probabilities) for t in mine])
        n = np.array([negativity(t, rule) for t in mine])
        mean_v, min_v, neg = float(np.average(v, weights=d)), float(v.min()), \
            float(np.average(n, weights=d))
    else:
        mean_v = min_v = neg = 0.0
    talk = {s: st["talk_s"] for s, st in summary["speakers"].items()}
    all_talk = sum(talk.values())
    minutes = max(duration, 1e-9) / 60
    interruptions = sum(st["interruptions"] for st in summary["speakers"].values())
    return {
        "score": sent["score"] or 0.0,
        "trend": sent["trend"] or 0.0,
        "mean_valence": mean_v,
        "end_valence": sent["end"] if sent["end"] is not None else (sent["score"] or 0.0),
        "min_valence": min_v,
        "negativity": neg,
        "escalations": float(summary["escalations"]),
        "unrecovered": float(summary["unrecovered_escalation"]),
        "customer_talk_share": sum(talk.get(s, 0.0) for s in cust) / all_talk if all_talk
        else 0.0,
        "overtalk_share": summary["overtalk_s"] / duration if duration else 0.0,
        "interruptions_per_min": interruptions / minutes if duration else 0.0,
        "silence_share": summary["silence_s"] / duration if duration else 0.0,
    }


def binary_labels(values: Sequence[str], positive: str | None = None) -> tuple[np.ndarray, str,
                                                                              str]:
    """``(y, positive, negative)`` from the label column: exactly two distinct values; which is
    "satisfied" comes from ``positive`` or from common spellings (1/yes/true/satisfied)."""
    names = sorted({str(v).strip() for v in values})
    if len(names) != 2:
        raise InputError(f"the satisfaction label must take exactly two values; found "
                         f"{len(names)}: {names[:10]}")
    if positive is None:
        hits = [n for n in names if n.lower() in _POSITIVE]
        if len(hits) == 1 and [n for n in names if n != hits[0]][0].lower() in _NEGATIVE:
            positive = hits[0]
        else:
            raise InputError(f"say which of {names} means satisfied (--positive)")
    if positive not in names:
        raise InputError(f"--positive {positive!r} is not one of the labels {names}")
    negative = names[1] if names[0] == positive else names[0]
    return np.array([str(v).strip() == positive for v in values], dtype=int), positive, negative


def fit_satisfaction(results: Sequence[Mapping[str, Any]], labels: Sequence[str],
                     positive: str | None = None, rule: EscalationRule = EscalationRule(),
                     folds: int = 5, C: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """Fit on labelled calls; the model (a JSON-ready dict) carries its cross-validated report.

    Cross-validation: stratified ``folds`` (fewer when the rarer class has fewer calls; at
    least two of each class are needed), scaler and regression refitted inside each fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(results) != len(labels):
        raise InputError("one label per call is needed")
    y, pos, neg = binary_labels(labels, positive)
    rarest = int(min(y.sum(), len(y) - y.sum()))
    if rarest < 2:
        raise InputError(f"at least two calls of each label are needed to cross-validate; "
                         f"the rarer label has {rarest}")
    names = list(FEATURES)
    X = np.array([[call_features(r, rule)[f] for f in names] for r in results], dtype=float)
    k = max(2, min(folds, rarest))
    per_fold = []
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (train, test) in enumerate(splitter.split(X, y)):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
        model.fit(X[train], y[train])
        p = model.predict_proba(X[test])[:, 1]
        auc = float(roc_auc_score(y[test], p)) if len(set(y[test])) == 2 else None
        per_fold.append({"fold": i, "n": int(len(test)), "auc": auc,
                         "accuracy": float(accuracy_score(y[test], p >= 0.5))})
    aucs = [f["auc"] for f in per_fold if f["auc"] is not None]
    mean = X.mean(0)
    std = X.std(0)
    std[std == 0] = 1.0  # a constant feature carries nothing; keep it harmless
    final = LogisticRegression(C=C, max_iter=1000).fit((X - mean) / std, y)
    return {
        "kind": KIND, "features": names, "mean": mean.tolist(), "std": std.tolist(),
        "coef": final.coef_[0].tolist(), "intercept": float(final.intercept_[0]),
        "positive": pos, "negative": neg, "C": C, "rule": rule.to_dict(),
        "n_calls": int(len(y)), "n_positive": int(y.sum()),
        "cv": {"folds": k, "per_fold": per_fold,
               "auc_mean": float(np.mean(aucs)) if aucs else None,
               "auc_std": float(np.std(aucs)) if aucs else None,
               "accuracy_mean": float(np.mean([f["accuracy"] for f in per_fold])),
               "majority_accuracy": float(max(y.mean(), 1 - y.mean()))},
    }


def save_model(model: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(model, indent=2) + "\n")


def load_model(path: str | Path) -> dict[str, Any]:
    """A saved model, checked: its features must be the ones this version computes."""
    p = Path(path)
    try:
        model = json.loads(p.read_text())
    except OSError as exc:
        raise InputError(f"satisfaction model {p}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"satisfaction model {p}: not JSON ({exc})") from exc
    if not isinstance(model, dict) or model.get("kind") != KIND:
        raise InputError(f"{p} is not a satisfaction model (made by mer call fit-satisfaction)")
    unknown = [f for f in model.get("features", []) if f not in FEATURES]
    if unknown or not model.get("features"):
        raise InputError(f"{p}: features {unknown} are not computed by this version")
    n = len(model["features"])
    if any(len(model.get(k, [])) != n for k in ("mean", "std", "coef")):
        raise InputError(f"{p}: mean, std and coef must each have {n} numbers")
    return model


def predict_satisfaction(model: Mapping[str, Any], result: Mapping[str, Any]
                         ) -> dict[str, Any]:
    """``{"probability", "label", ...}`` of one call under a fitted model."""
    rule = EscalationRule.from_dict(model.get("rule") or {})
    feats = call_features(result, rule)
    z = [(feats[f] - m) / s for f, m, s in zip(model["features"], model["mean"], model["std"])]
    logit = float(model["intercept"]) + float(np.dot(model["coef"], z))
    p = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))
    cv = model.get("cv") or {}
    return {"probability": round(p, 4),
            "label": model["positive"] if p >= 0.5 else model["negative"],
            "model": {"n_calls": model.get("n_calls"), "cv_auc": cv.get("auc_mean"),
                      "cv_folds": cv.get("folds")},
            "features": {k: round(v, 4) for k, v in feats.items()}}
