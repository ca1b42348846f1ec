"""What an experiment fuses: per-item labels, speakers, and one feature block per modality.

A modality *source* turns a dataset's items into a :class:`ModalityData` block: either an
encoder run on the media (RAVDESS audio through ``whisper``; cached on disk, keyed by the
encoder config and the file list) or precomputed features read from the corpus (the RAVDESS
OpenFace action units, the CMU-MOSI feature files). Fusion never sees anything else, so a new
corpus or encoder is one loader and one source away from every comparison.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError


@dataclass
class ModalityData:
    """One modality for all N items: pooled ``x`` [N, D], optional ``seq`` [N, K, D_seq] with
    ``seq_valid`` [N, K], and ``available`` [N] (False = absent for that item: masked)."""

    x: np.ndarray
    available: np.ndarray
    seq: np.ndarray | None = None
    seq_valid: np.ndarray | None = None
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    def take(self, idx: np.ndarray) -> "ModalityData":
        return ModalityData(self.x[idx], self.available[idx],
                            None if self.seq is None else self.seq[idx],
                            None if self.seq_valid is None else self.seq_valid[idx],
                            self.description)


@dataclass
class ExperimentData:
    """Items of one corpus, ready for fusion experiments.

    ``groups`` is the speaker (or recording session) of each item: protocols split on it, so no
    speaker is ever on both sides. ``fold`` gives the corpus's own fold per item when it has a
    fixed protocol (RAVDESS: 6 folds of 4 actors); ``split`` gives its own train/test split
    (CMU-MOSI) as strings ``"train"`` / ``"test"``.
    """

    name: str
    y: np.ndarray
    class_names: list[str]
    groups: np.ndarray
    modalities: dict[str, ModalityData]
    fold: np.ndarray | None = None
    split: np.ndarray | None = None
    reference: dict[str, np.ndarray] = field(default_factory=dict)
    ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.y)
        for m, d in self.modalities.items():
            if len(d.x) != n or len(d.available) != n:
                raise InputError(f"modality {m!r} has {len(d.x)} rows for {n} items")
        if len(self.groups) != n:
            raise InputError("groups must have one entry per item")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def speaker_normalise(x: np.ndarray, groups: np.ndarray, valid: np.ndarray | None = None
                      ) -> np.ndarray:
    """Z-normalise features within each speaker, with that speaker's own statistics.

    Unsupervised and label-free, but *transductive*: a test speaker is normalised with the
    statistics of all of that speaker's test items, so it assumes several clips per speaker are
    at hand at test time (a call, a session). It removes the speaker's baseline voice and resting
    face, which is most of what separates speakers. Works on [N, D] or [N, K, D] (then
    ``valid`` [N, K] says which steps count).
    """
    out = np.array(x, dtype=np.float32, copy=True)
    for g in np.unique(groups):
        rows = groups == g
        block = out[rows]
        if block.ndim == 3:
            steps = block[valid[rows]] if valid is not None else block.reshape(-1, block.shape[-1])
        else:
            steps = block
        if len(steps) < 2:
            continue
        mean, std = steps.mean(0), steps.std(0) + 1e-4
        out[rows] = (block - mean) / std
        if block.ndim == 3 and valid is not None:
            out[rows] = np.where(valid[rows][..., None], out[rows], 0.0)
    return out


# ------------------------------------------------------------------------------ loaders

Loader = Callable[[Path, dict[str, Any]], ExperimentData]
LOADERS: dict[str, Loader] = {}


def register_loader(name: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn
    return deco


def load_dataset(name: str, root: Path, modalities: dict[str, dict[str, Any]],
                 reference: dict[str, Any] | None = None) -> ExperimentData:
    if name not in LOADERS:
        raise InputError(f"unknown experiment dataset {name!r}; choose from {sorted(LOADERS)}")
    return LOADERS[name](Path(root), {"modalities": modalities, "reference": reference or {}})


# RAVDESS ------------------------------------------------------------------------------

RAVDESS_STATEMENTS = {1: "Kids are talking by the door.", 2: "Dogs are sitting by the door."}


def _ravdess_audio(root: Path, opts: dict[str, Any], seq_tokens: int) -> ModalityData:
    """An audio encoder over every RAVDESS clip (cached by encoder config and file list)."""
    from ..encoders import create
    from ..fusion.strategies import pool_sequences
    from ..training.audio import embed_ravdess, split_offsets

    opts = dict(opts)
    name = opts.pop("source")
    if name == "whisper":
        opts.setdefault("cpu_threads", 1)
    enc = create("audio", name, **opts)
    arr = embed_ravdess(enc, root)
    seq, valid = pool_sequences(split_offsets(arr["seq"], arr["seq_offsets"]), seq_tokens) \
        if arr["seq"].shape[1] and seq_tokens else (None, None)
    return ModalityData(arr["X"], arr["available"], seq, valid,
                        {"source": name, "encoder": enc.config()})


def read_openface_au(path: Path) -> dict[str, np.ndarray]:
    """clip id -> 35 action-unit values (17 intensities, 18 presences), from the CSV."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return {r[0]: np.asarray(r[1:], np.float32) for r in rows[1:]}


def _text_block(texts: list[str], opts: dict[str, Any], cache_name: str,
                supervision: dict[str, Any] | None = None) -> ModalityData:
    """Sentence embeddings of ``texts``; a relative ``checkpoint`` (e.g. ``text_encoder``, the
    shipped tuned MiniLM) is a folder inside the shipped model, as in a model's config.

    ``finetune: {folds, epochs, lr, batch_size}`` fine-tunes the encoder on the corpus's own
    training rows, cross-fitted by speaker (:mod:`.text_finetune`); it needs ``supervision``
    (``y``, ``groups``, ``train`` mask, ``n_classes``), which only corpora with a fixed
    train/test split give.
    """
    from ..model import DEFAULT_MODEL_DIR
    from ..recognizer import build_encoder
    from ..training.text import embed_texts_cached

    opts = dict(opts)
    name = opts.pop("source")
    finetune = opts.pop("finetune", None)
    enc = build_encoder("text", {"name": name, **opts}, DEFAULT_MODEL_DIR)
    description: dict[str, Any] = {"source": name, "encoder": enc.config()}
    if finetune:
        from .text_finetune import FINETUNE_DEFAULTS, crossfit_text_embeddings

        if supervision is None:
            raise InputError("text 'finetune' needs a corpus with its own train/test split "
                             "(e.g. cmu-mosi); k-fold corpora would need one encoder per fold")
        recipe = {**FINETUNE_DEFAULTS, **(finetune if isinstance(finetune, dict) else {})}
        unknown = set(recipe) - set(FINETUNE_DEFAULTS)
        if unknown:
            raise InputError(f"unknown text finetune option(s) {sorted(unknown)}")
        x = crossfit_text_embeddings(enc, texts, supervision["y"], supervision["groups"],
                                     supervision["train"], supervision["n_classes"],
                                     cache_name=f"{cache_name}-crossfit", **recipe)
        description["finetune"] = {**recipe, "cross_fitted_by": "speaker",
                                   "trained_on": "the corpus's training split only"}
    else:
        x = embed_texts_cached(enc, texts, cache_name)
    avail = np.asarray([bool(t.strip()) for t in texts])
    return ModalityData(x, avail, description=description)


@register_loader("ravdess")
def load_ravdess_experiment(root: Path, opts: dict[str, Any]) -> ExperimentData:
    """RAVDESS speech (8 classes) with the same recordings' OpenFace AUs and spoken sentence.

    Sources: ``audio`` any audio encoder name (``whisper``, ``mfcc-lstm``, ``wav2vec2`` + its
    options); ``face``: ``openface-au``; ``text``: a text encoder (``minilm``) over the sentence
    each clip says (RAVDESS has two fixed sentences, so text is uninformative by design).
    """
    from ..datasets.ravdess import RAVDESS_8_LABELS, load_ravdess, ravdess_folds

    records = load_ravdess(root)
    names = [Path(r.path).name.split(".")[0] for r in records]
    mods: dict[str, ModalityData] = {}
    seq_tokens = int(opts.get("seq_tokens", 4))
    for m, spec in opts["modalities"].items():
        src = spec["source"]
        if src == "openface-au":
            au = read_openface_au(root / "ravdess_openface" / "ravdess_au.csv")
            # Audio-only files are 03-01-..., the audio-visual originals 01-01-...
            keys = ["01" + n[2:] for n in names]
            missing = [k for k in keys if k not in au]
            if missing:
                raise InputError(f"{len(missing)} RAVDESS clips have no AU row, e.g. {missing[0]}")
            mods[m] = ModalityData(np.stack([au[k] for k in keys]), np.ones(len(keys), bool),
                                   description={"source": src, "features": 35})
        elif m == "text" or src in ("minilm", "mpnet", "hf"):
            texts = [RAVDESS_STATEMENTS[r.statement] for r in records]
            mods[m] = _text_block(texts, spec, "ravdess-text")
        else:
            mods[m] = _ravdess_audio(root, spec, seq_tokens)
    reference = {}
    if opts["reference"].get("source") == "mfcc-stats":
        from ..training.audio import ravdess_mfcc_stats

        reference["x"] = ravdess_mfcc_stats(root)
    return ExperimentData(
        "ravdess", np.asarray([RAVDESS_8_LABELS.index(r.label8) for r in records]),
        list(RAVDESS_8_LABELS), np.asarray([r.actor for r in records]), mods,
        fold=ravdess_folds([r.actor for r in records]), reference=reference,
        ids=np.asarray(names))


# CMU-MOSI ------------------------------------------------------------------------------

def _read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return [r for r in csv.reader(f) if r]


@register_loader("cmu-mosi")
def load_mosi_experiment(root: Path, opts: dict[str, Any]) -> ExperimentData:
    """CMU-MOSI utterances with the corpus's own speaker-independent train/test split.

    Sources: ``mosi-audio`` (73-d), ``mosi-video`` (100-d), ``mosi-text`` (100-d): the given
    aligned feature rows; or a text encoder name (``minilm``) run on the transcripts, frozen or
    (``finetune: {...}``) fine-tuned on the training split, cross-fitted by speaker. The
    speaker of an utterance is its video id (``<video>_<n>``): every MOSI video is one speaker.
    """
    base = root / "cmu_mosi"
    transcripts = _read_rows(base / "transcripts.csv")
    blocks: dict[str, np.ndarray] = {}
    y_parts, ids, split = [], [], []
    for part in ("train", "test"):
        index = [int(float(r[0])) for r in _read_rows(base / f"text_{part}.csv")]
        rows = [transcripts[i] for i in index]
        ids += [r[0] for r in rows]
        split += [part] * len(rows)
        labels = np.asarray([int(float(r[3])) for r in rows])
        for kind in ("audio", "video", "text"):
            feat = np.asarray(_read_rows(base / kind / f"{kind}_{part}0.csv"), np.float64)
            if len(feat) != len(rows):
                raise InputError(f"MOSI {kind} {part}: {len(feat)} rows for {len(rows)} items")
            if not np.array_equal(feat[:, -1].astype(int), labels):
                raise InputError(f"MOSI {kind} {part}: labels do not align with transcripts")
            blocks.setdefault(kind, []).append(feat[:, :-1].astype(np.float32))
        y_parts.append(labels)
    by_id = {r[0]: r[1] for r in transcripts}
    texts = [by_id[i].lower() for i in ids]
    n = len(ids)
    y = np.concatenate(y_parts)
    groups = np.asarray([i.rsplit("_", 1)[0] for i in ids])
    supervision = {"y": y, "groups": groups, "train": np.asarray(split) == "train",
                   "n_classes": 2}
    mods: dict[str, ModalityData] = {}
    for m, spec in opts["modalities"].items():
        src = spec["source"]
        if src.startswith("mosi-"):
            kind = src.split("-", 1)[1]
            if kind not in blocks:
                raise InputError(f"unknown MOSI feature source {src!r}")
            x = np.concatenate(blocks[kind])
            mods[m] = ModalityData(np.nan_to_num(x), np.ones(n, bool),
                                   description={"source": src, "features": x.shape[1]})
        else:
            mods[m] = _text_block(texts, spec, "mosi-text", supervision)
    reference = {}
    ref_src = opts["reference"].get("source")
    if ref_src:
        kinds = [ref_src] if isinstance(ref_src, str) else list(ref_src)
        reference["x"] = np.concatenate(
            [np.nan_to_num(np.concatenate(blocks[k.split("-", 1)[1]])) for k in kinds], 1)
    return ExperimentData("cmu-mosi", y, ["negative", "positive"],
                          groups, mods, split=np.asarray(split), reference=reference,
                          ids=np.asarray(ids))
