"""``mer train calibration``: fit each shipped expert's temperature on held-out data of its own
domain, record the class prior it was trained with, and measure calibration before and after.

Held-out data per expert (never the rows the expert was fitted on, never the set its benchmark
reports on for fitting):

* text (spoken head, what clip transcripts go through): fitted on the held-out 10 % of MELD
  train *dialogues* (the rows its head was chosen on), scored on MELD dev; trained prior = MELD
  train's label frequencies (the head was trained with plain cross-entropy).
* face: fitted on the CNN's held-out 10 % of its training images, scored on FER2013 ``Test``;
  trained prior = the training labels' frequencies.
* audio: leave-one-corpus-out predictions over RAVDESS, nEMO, CASIA and URDU
  (:func:`audio_calibration_data`); trained class-balanced, so no prior correction.

The result goes into the model folder's ``config.json`` (``calibration``) and a report
``calibration.json`` with expected calibration error (15 bins), negative log-likelihood and
accuracy per expert, before (raw softmax) and after (temperature).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..calibration import expected_calibration_error, fit_prior_power, \
    fit_temperature, label_prior, nll
from ..labels import LABELS
from ..model import EmotionModel


@dataclass
class CalibrationData:
    """An expert's logits on held-out rows to fit on (``fit``) and to score on (``score``),
    and the labels it was trained with (for its prior)."""

    fit_logits: np.ndarray
    fit_y: np.ndarray
    score_logits: np.ndarray
    score_y: np.ndarray
    train_y: np.ndarray | None  # None: the head was trained class-balanced (uniform prior)
    info: dict[str, Any]
    # per score row, the temperature fitted without that row's group (nested, so the "after"
    # figure is not scored on the rows its temperature saw); None: the one fitted temperature
    score_temperature: np.ndarray | None = None


def _logits(model: EmotionModel, modality: str, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        model.eval()
        return model.experts[modality](torch.as_tensor(x, dtype=torch.float32)).numpy()


def text_calibration_data(root: Path, model: EmotionModel, model_dir: Path) -> CalibrationData:
    from ..datasets.text_corpora import meld_dialogue_ids
    from ..recognizer import build_encoder
    from .text import held_out_groups, load_text_embeddings

    enc = build_encoder("text", model.config["encoders"]["text"], model_dir)
    x, y = load_text_embeddings("meld", "train", root, enc)
    held = held_out_groups(meld_dialogue_ids(root / "meld", "train"), 0.1, 0)
    dx, dy = load_text_embeddings("meld", "dev", root, enc)
    return CalibrationData(_logits(model, "text", x[held]), y[held],
                           _logits(model, "text", dx), dy, y[~held],
                           {"fit": "MELD train, held-out 10 % of dialogues",
                            "score": "MELD dev", "prior": "MELD train labels"})


def face_calibration_data(root: Path, model: EmotionModel, model_dir: Path) -> CalibrationData:
    from ..recognizer import build_encoder
    from .face_cnn import fer2013_face_embeddings

    cfg = model.config["encoders"]["face"]
    enc = build_encoder("face", cfg, model_dir)
    d = fer2013_face_embeddings(root, enc, model_dir / cfg["checkpoint"])
    x, labels, train = d["X"], d["labels"], d["usage"] == "Training"
    xt, yt = x[train], labels[train]
    return CalibrationData(_logits(model, "face", xt[d["held"]]), yt[d["held"]],
                           _logits(model, "face", x[~train]), labels[~train], yt[d["fitted"]],
                           {"fit": "FER2013 Training, the CNN's held-out 10 %",
                            "score": "FER2013 Test", "prior": "FER2013 Training labels"})


def audio_calibration_data(root: Path, model: EmotionModel, model_dir: Path) -> CalibrationData:
    """The audio expert must hold on a language and studio it never heard, so its temperature
    is fitted on *leave-one-corpus-out* predictions: for each of the four speech corpora, the
    shipped recipe trained on the other three scores every clip of the held-out one. The
    expert is trained with every (corpus, class) cell weighted equally, so its prior is
    uniform and is not corrected. Scored nested: each corpus's rows with a temperature fitted
    on the other three corpora's rows."""
    from .speech import EXPERT_CONFIG, fit_expert, load_speech_data, loco_split

    data = load_speech_data(root)
    logits = np.zeros((len(data.y), len(LABELS)), np.float32)
    learnt = np.zeros(len(data.y), bool)
    for c in np.unique(data.corpus):
        train, test = loco_split(data, c)
        head = fit_expert(data.rows(train), EXPERT_CONFIG)  # the shipped recipe
        with torch.inference_mode():
            head.eval()
            logits[test] = head(torch.as_tensor(data.X[test])).numpy()
        # a class no other corpus has (RAVDESS's disgust) was never learnt in this fold: its
        # clips would ask the temperature to explain a logit the head cannot produce
        learnt[test] = np.isin(data.y[test], np.unique(data.y[train]))
    data, logits = data.rows(learnt), logits[learnt]
    nested = np.ones(len(data.y))
    for c in np.unique(data.corpus):
        other = data.corpus != c
        nested[~other] = fit_temperature(logits[other], data.y[other])
    return CalibrationData(logits, data.y, logits, data.y, None,
                           {"fit": "leave-one-corpus-out predictions on RAVDESS, nEMO, CASIA, "
                                   "URDU (the recipe trained on the other three corpora; "
                                   "clips of a class no other corpus has left out)",
                            "score": "the same rows, each with the temperature fitted on the "
                                     "other three corpora",
                            "prior": "uniform: (corpus, class) cells weighted equally"},
                           nested)


PROVIDERS: dict[str, Callable[[Path, EmotionModel, Path], CalibrationData]] = {
    "audio": audio_calibration_data,
    "text": text_calibration_data,
    "face": face_calibration_data,
}


def _scores(logits: np.ndarray, y: np.ndarray, t: float | np.ndarray) -> dict[str, float]:
    t = np.asarray(t, np.float64).reshape(-1, 1) if np.ndim(t) else t
    p = torch.softmax(torch.as_tensor(logits / t, dtype=torch.float64), -1).numpy()
    return {"ece": round(expected_calibration_error(p, y), 4), "nll": round(nll(p, y), 4),
            "accuracy": round(float((p.argmax(1) == y).mean()), 4), "n": int(len(y))}


def _balanced(logits: np.ndarray, y: np.ndarray, t: float, prior: list[float] | None,
              power: float) -> dict[str, float]:
    """UAR of the raw expert and of the prior-corrected one (what fusion multiplies)."""
    from ..metrics import uar

    z = torch.as_tensor(logits, dtype=torch.float64) / t
    out = {"uar_raw": round(float(uar(y, z.argmax(1).numpy())), 4)}
    if prior is not None:
        adj = z - power * torch.log(torch.as_tensor(prior, dtype=torch.float64))
        out["uar_corrected"] = round(float(uar(y, adj.argmax(1).numpy())), 4)
    return out


def fit_calibration(root: Path, model_dir: Path, modalities: list[str] | None = None,
                    verbose: bool = True) -> dict[str, Any]:
    """Fit temperatures and priors for ``modalities`` (default: every one with a provider)
    and write them into ``model_dir/config.json``; returns the report."""
    model = EmotionModel.from_pretrained(model_dir)
    cal = model.calibration
    report: dict[str, Any] = {}
    for m in modalities or list(PROVIDERS):
        d = PROVIDERS[m](root, model, model_dir)
        t = fit_temperature(d.fit_logits, d.fit_y)
        cal.temperature[m] = t
        if d.train_y is None:
            cal.train_prior.pop(m, None)
            cal.prior_power.pop(m, None)
        else:
            cal.train_prior[m] = label_prior(d.train_y, len(LABELS))
            cal.prior_power[m] = fit_prior_power(d.fit_logits, d.fit_y, cal.train_prior[m], t)
        report[m] = {"temperature": round(t, 4), **d.info,
                     "before": _scores(d.score_logits, d.score_y, 1.0),
                     "after": _scores(d.score_logits, d.score_y,
                                      t if d.score_temperature is None else d.score_temperature),
                     # under the uniform target: class-balanced figures of the corrected expert
                     "prior_power": round(cal.prior_power.get(m, 0.0), 4),
                     "balanced": _balanced(d.score_logits, d.score_y, t,
                                           cal.train_prior.get(m), cal.prior_power.get(m, 0.0))}
        if verbose:
            b, a = report[m]["before"], report[m]["after"]
            bal = report[m]["balanced"]
            print(f"{m:<6} T={t:.3f}  ECE {b['ece']:.3f} -> {a['ece']:.3f}  NLL {b['nll']:.3f} "
                  f"-> {a['nll']:.3f}  acc {a['accuracy']:.3f}  prior power "
                  f"{report[m]['prior_power']:.2f}: UAR {bal['uar_raw']:.3f} -> "
                  f"{bal.get('uar_corrected', bal['uar_raw']):.3f}  ({d.info['score']}, "
                  f"n={a['n']})", flush=True)
    cal.info = {**cal.info, "fitted": {m: {k: v for k, v in r.items()
                                           if k in ("fit", "score", "prior", "temperature")}
                                       for m, r in report.items()}}
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["calibration"] = cal.to_config()
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    old = model_dir / "calibration.json"
    full = json.loads(old.read_text()) if old.exists() else {}
    full.update(report)
    old.write_text(json.dumps(full, indent=2) + "\n")
    return report
