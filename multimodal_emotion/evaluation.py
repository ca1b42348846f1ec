"""``mer evaluate``: score the loaded model on a dataset folder or a manifest CSV.

Each item is routed by what it is: text rows go through the text expert, images through the
face expert (no detection: dataset images are already face crops), audio files through the
audio expert, and videos through the whole pipeline and the chosen fusion.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm import tqdm

from .datasets import default_data_root
from .errors import InputError, MediaError
from .labels import EMODB_CODES, FER2013_CODES, LABEL_TO_INDEX, LABELS, RAVDESS_CODES, \
    to_canonical
from .metrics import classification_report, format_report

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
AUDIO_EXT = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac"}
# Which text head a text corpus is scored with: GoEmotions is written (Reddit comments), MELD
# is spoken dialogue, like the transcripts of clips. A manifest uses --text-domain.
DATASET_TEXT_DOMAINS = {"goemotions": "written", "meld": "spoken"}
CREMA_CODES = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy",
               "NEU": "neutral", "SAD": "sad"}


@dataclass
class Item:
    kind: str  # "text" | "image" | "audio" | "video"
    value: object  # text, image array, or path
    label: int
    speaker: str | None = None


def evaluate_cli(args: argparse.Namespace) -> int:
    items, dropped = (load_manifest(Path(args.manifest)) if args.manifest
                      else load_dataset(args.dataset, args.root, args.split))
    if args.limit:
        items = items[: args.limit]
    if not items:
        raise InputError("nothing to evaluate: no labelled items found")
    from .recognizer import EmotionRecognizer

    rec = EmotionRecognizer.from_pretrained(args.model)
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    text_domain = getattr(args, "text_domain", None) or DATASET_TEXT_DOMAINS.get(args.dataset)
    y_true, y_pred, failed = evaluate_items(rec, items, modalities, args.fusion, text_domain)
    report = classification_report(y_true, y_pred, LABELS)
    if any(i.kind == "text" for i in items):
        report["text_domain"] = text_domain or rec.model.expert_domains.get("text", "default")
    report.update({"dataset": args.dataset or args.manifest, "dropped_labels": dropped,
                   "failed": failed, "fusion": args.fusion or rec.model.default_fusion,
                   "kinds": sorted({i.kind for i in items})})
    if getattr(args, "plot", None):
        plot_confusion(report, args.plot)
        report["plot"] = str(args.plot)
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report, f"{report['dataset']}: {len(y_true)} items "
                            f"({', '.join(report['kinds'])}), {failed} failed, dropped labels "
                            f"{dropped or 'none'}"))
    return 0 if not failed else 3


def plot_confusion(report: dict, path: str | Path) -> Path:
    """Row-normalised confusion matrix (recall on the diagonal) with counts, as a PNG."""
    from .plots import save_confusion

    return save_confusion(
        path, report["confusion_matrix"], report["labels"],
        f"{report.get('dataset', '')}\nacc {report['accuracy']:.3f}  UAR {report['uar']:.3f}  "
        f"macro-F1 {report['macro_f1']:.3f}  (n={report['n']})")


def evaluate_items(rec, items: list[Item], modalities: list[str], fusion: str | None,
                   text_domain: str | None = None):
    """Predict every item; returns true labels, predicted labels and the count that failed.
    Text rows go through the text expert's head for ``text_domain`` (``None``: the head clip
    transcripts use)."""
    from .encoders.face import preprocess_face

    y_true: list[int] = []
    y_pred: list[int] = []
    failed = 0
    texts = [i for i in items if i.kind == "text"]
    if texts:
        x = rec.text.text_encoder.embed_texts([str(i.value) for i in texts])
        y_pred += list(rec.model.expert_proba("text", x, text_domain).argmax(1))
        y_true += [i.label for i in texts]
    images = [i for i in items if i.kind == "image"]
    if images:
        faces = np.stack([preprocess_face(_image(i.value)) for i in images])
        y_pred += list(rec.model.expert_proba("face", rec.face.encode_images(faces)).argmax(1))
        y_true += [i.label for i in images]
    from . import media

    for item in tqdm([i for i in items if i.kind in ("audio", "video")], desc="evaluate",
                     disable=not sys.stderr.isatty()):
        try:
            clip = media.load(item.value, fps=rec.fps)
        except MediaError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        if item.kind == "audio":
            out = rec.audio.encode(clip)
            if not out.available:
                failed += 1
                continue
            probs = rec.model.expert_proba("audio", out.embedding[None])[0]
        else:
            outputs, _ = rec.encode(clip)
            avail = {m: o.available and m in modalities for m, o in outputs.items()}
            probs, _ = rec.model.predict({m: o.embedding for m, o in outputs.items()}, avail,
                                         fusion, {m: o.sequence for m, o in outputs.items()})
            if probs is None:
                failed += 1
                continue
        y_pred.append(int(np.argmax(probs)))
        y_true.append(item.label)
    return y_true, y_pred, failed


def _image(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    import cv2

    img = cv2.imread(str(value), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise MediaError(f"{value}: not a readable image")
    return img


def _labelled(pairs: Iterable[tuple[str, object, str, str | None]]) -> tuple[list[Item], dict]:
    items, dropped = [], {}
    for kind, value, name, speaker in pairs:
        canon = to_canonical(name)
        if canon is None:
            dropped[name] = dropped.get(name, 0) + 1
            continue
        items.append(Item(kind, value, LABEL_TO_INDEX[canon], speaker))
    return items, dropped


def _kind_of(path: Path) -> str:
    ext = path.suffix.lower()
    return "image" if ext in IMAGE_EXT else "audio" if ext in AUDIO_EXT else "video"


def load_manifest(path: Path) -> tuple[list[Item], dict]:
    """CSV with ``label`` and one of ``path`` / ``text`` (relative paths are relative to the
    CSV), optional ``speaker``."""
    if not path.exists():
        raise InputError(f"manifest {path} not found")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "label" not in rows[0] or not ({"path", "text"} & set(rows[0])):
        raise InputError(f"{path}: needs a 'label' column and a 'path' or 'text' column")
    pairs = []
    for r in rows:
        if r.get("text"):
            pairs.append(("text", r["text"], r["label"], r.get("speaker")))
        else:
            p = Path(r["path"])
            p = p if p.is_absolute() else path.parent / p
            pairs.append((_kind_of(p), p, r["label"], r.get("speaker")))
    return _labelled(pairs)


def load_dataset(name: str, root: str | None, split: str | None) -> tuple[list[Item], dict]:
    """Items of a named corpus in its usual on-disk layout."""
    base = Path(root) if root else default_data_root() / {
        "ravdess": "ravdess_speech", "crema-d": "crema_d_clips", "fer2013": "fer2013",
        "meld": "meld", "goemotions": "goemotions"}.get(name, name)
    if not base.exists():
        raise InputError(f"{name}: folder {base} not found; pass --root")
    if name == "ravdess":
        files = sorted(p for p in base.rglob("*") if p.suffix.lower() in AUDIO_EXT | {".mp4"})
        return _labelled((_kind_of(p), p, RAVDESS_CODES[p.stem.split("-")[2]],
                          p.stem.split("-")[-1]) for p in files)
    if name == "crema-d":
        files = sorted(p for p in base.rglob("*") if p.suffix.lower() in
                       {".flv", ".mp4", ".wav", ".mp3"})
        return _labelled((_kind_of(p), p, CREMA_CODES[p.stem.split("_")[2]],
                          p.stem.split("_")[0]) for p in files if len(p.stem.split("_")) >= 3)
    if name == "tess":
        files = sorted(p for p in base.rglob("*.wav"))
        return _labelled(("audio", p, p.stem.split("_")[-1], p.stem.split("_")[0])
                         for p in files)
    if name == "emodb":
        files = sorted(p for p in base.rglob("*.wav"))
        items, dropped = [], {}
        for p in files:
            canon = EMODB_CODES.get(p.stem[5])
            if canon is None:
                dropped[p.stem[5]] = dropped.get(p.stem[5], 0) + 1
            else:
                items.append(Item("audio", p, LABEL_TO_INDEX[canon], p.stem[:2]))
        return items, dropped
    if name == "ckplus":
        files = sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_EXT)
        return _labelled(("image", p, p.parent.name, None) for p in files)
    if name == "fer2013":
        from .datasets.fer2013 import load_fer2013

        images, labels, usage = load_fer2013(base)
        want = {"test": "Test", "train": "Training", None: "Test"}.get(split, split)
        keep = usage == want
        return [Item("image", img, int(y)) for img, y in zip(images[keep], labels[keep])], {}
    if name in ("meld", "goemotions"):
        from .datasets.text_corpora import load_goemotions, load_meld

        split = split or "dev"
        if name == "meld":
            texts, labels, speakers = load_meld(base, split)
        else:
            texts, labels = load_goemotions(base, split, "ekman")
            speakers = [None] * len(texts)
        return [Item("text", t, int(y), s) for t, y, s in zip(texts, labels, speakers)], {}
    raise InputError(f"unknown dataset {name!r}")


__all__ = ["evaluate_cli", "load_dataset", "load_manifest", "Item", "FER2013_CODES"]
