"""Embed every RAVDESS clip with an audio encoder, once: the arrays behind benches and fusion.

Cached with :func:`~multimodal_emotion.cache.cached_arrays`, keyed by the encoder's ``config()``
and the file list, so the exact shipped encoder's embeddings are computed once and shared by the
audio bench and the fusion trainer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from ..cache import cached_arrays
from ..datasets import default_data_root
from ..datasets.ravdess import RAVDESS_8_LABELS, load_ravdess, read_audio
from ..labels import LABEL_TO_INDEX


def embed_ravdess(encoder: Any, root: str | os.PathLike[str] | None = None,
                  progress: bool = True) -> dict[str, np.ndarray]:
    """Arrays for all RAVDESS speech clips, in sorted path order.

    ``X`` [N, dim] pooled embeddings, ``available`` [N] bool, ``label7`` canonical index into
    :data:`~multimodal_emotion.labels.LABELS`, ``label8`` index into ``RAVDESS_8_LABELS``,
    ``actor``, ``intensity``, ``statement``, ``name`` (file name), ``seconds`` (encode time per
    clip), and the frame sequences concatenated in ``seq`` with clip ``i`` at
    ``seq[seq_offsets[i]:seq_offsets[i+1]]``.
    """
    records = load_ravdess(root if root is not None else default_data_root())
    description = {"encoder": encoder.config(),
                   "files": [Path(r.path).name for r in records], "format": 1}

    def compute() -> dict[str, np.ndarray]:
        xs, seqs, avail, secs = [], [], [], []
        for r in tqdm(records, desc=f"embed RAVDESS [{encoder.name}]", disable=not progress,
                      mininterval=5):
            wave = read_audio(r.path)
            t0 = time.perf_counter()
            out = encoder.encode_audio(wave)
            secs.append(time.perf_counter() - t0)
            xs.append(out.embedding)
            avail.append(out.available)
            seq = out.sequence if out.sequence is not None else out.embedding[None, :0]
            seqs.append(np.asarray(seq, np.float32))
        width = max((s.shape[1] for s in seqs), default=0)
        seqs = [s if s.shape[1] == width else np.zeros((len(s), width), np.float32) for s in seqs]
        return {
            "X": np.stack(xs).astype(np.float32),
            "available": np.asarray(avail, bool),
            "label7": np.asarray([LABEL_TO_INDEX[r.label] for r in records], np.int64),
            "label8": np.asarray([RAVDESS_8_LABELS.index(r.label8) for r in records], np.int64),
            "actor": np.asarray([r.actor for r in records], np.int64),
            "intensity": np.asarray([r.intensity for r in records], np.int64),
            "statement": np.asarray([r.statement for r in records], np.int64),
            "name": np.asarray([Path(r.path).name for r in records]),
            "seconds": np.asarray(secs, np.float64),
            "seq": np.concatenate(seqs).astype(np.float32),
            "seq_offsets": np.cumsum([0] + [len(s) for s in seqs]).astype(np.int64),
        }

    return cached_arrays(f"ravdess-audio-{encoder.name}", description, compute)


def split_offsets(seq: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """The per-clip sequences of :func:`embed_ravdess`'s concatenated ``seq``."""
    return [seq[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def ravdess_mfcc_stats(root: str | os.PathLike[str]) -> np.ndarray:
    """The field's classic features: mean, std, min, max of raw (unnormalised) MFCC + deltas
    per RAVDESS clip (cached); the reference the benches and experiments compare against."""
    from ..encoders.audio import mfcc_features

    records = load_ravdess(root)

    def compute() -> dict[str, np.ndarray]:
        rows = []
        for r in tqdm(records, desc="MFCC statistics", mininterval=5):
            f = mfcc_features(read_audio(r.path), normalize=False)
            rows.append(np.concatenate([f.mean(0), f.std(0), f.min(0), f.max(0)]))
        return {"X": np.asarray(rows, np.float32)}

    desc = {"mfcc_stats": 1, "files": [Path(r.path).name for r in records]}
    return cached_arrays("ravdess-mfcc-stats", desc, compute)["X"]


def default_audio_encoder(threads: int = 1, **overrides: Any) -> Any:
    """The shipped default model's audio encoder (``recipe.ENCODERS["audio"]``); ``overrides``
    change its arguments (``final_layer=False``, as the recognizer builds it)."""
    from ..encoders import create
    from .recipe import ENCODERS

    cfg = {**ENCODERS["audio"], **overrides}
    return create("audio", cfg.pop("name"), cpu_threads=threads, **cfg)


def ravdess_audio_embeddings(root: str | os.PathLike[str] | None = None,
                             encoder: Any = None) -> dict[str, np.ndarray]:
    """RAVDESS arrays from the shipped default audio encoder (cached; see :func:`embed_ravdess`).

    What fusion trains on: ``X`` [1440, dim], ``label7`` (canonical index), ``actor``, ``name``.
    """
    return embed_ravdess(encoder if encoder is not None else default_audio_encoder(), root)


def embed_speech_corpus(name: str, encoder: Any = None,
                        root: str | os.PathLike[str] | None = None,
                        progress: bool = True, every: int = 1) -> dict[str, np.ndarray]:
    """Pooled embeddings of the utterances of one speech corpus (cached), sorted by path.

    ``every`` keeps every n-th utterance in path order (1: all): nEMO's 4,481 clips outnumber
    the other three corpora together, and a third of them is what a 2-core budget affords.

    ``X`` [N, dim], ``available`` [N] bool, ``label7`` (canonical index), ``speaker``
    (corpus-prefixed, e.g. ``nemo:WR0``), ``path`` (relative to the data root). RAVDESS goes
    through :func:`embed_ravdess`, so it shares that cache (and its frame sequences) with the
    fusion trainer; the other corpora keep no sequences: only the expert learns from them.
    ``encoder`` defaults to the shipped one (:func:`default_audio_encoder`).
    """
    from ..datasets.speech_corpora import load_speech_corpus

    root = Path(root) if root is not None else default_data_root()
    encoder = encoder if encoder is not None else default_audio_encoder()
    records = load_speech_corpus(name, root)[::every]
    rel = [os.path.relpath(r.path, root) for r in records]
    meta = {"label7": np.asarray([LABEL_TO_INDEX[r.label] for r in records], np.int64),
            "speaker": np.asarray([r.speaker for r in records]), "path": np.asarray(rel)}
    if name == "ravdess":
        if every != 1:
            raise ValueError("RAVDESS is always embedded whole (the fusion trainer shares it)")
        d = embed_ravdess(encoder, root, progress)
        return {"X": d["X"], "available": d["available"], **meta}

    def compute() -> dict[str, np.ndarray]:
        xs, avail = [], []
        for r in tqdm(records, desc=f"embed {name} [{encoder.name}]", disable=not progress,
                      mininterval=10):
            out = encoder.encode_audio(read_audio(r.path))
            xs.append(out.embedding)
            avail.append(out.available)
        return {"X": np.stack(xs).astype(np.float32), "available": np.asarray(avail, bool)}

    arrays = cached_arrays(f"{name}-audio-{encoder.name}",
                           {"encoder": encoder.config(), "files": rel, "format": 1}, compute)
    return {**arrays, **meta}


def embed_altered_copies(corpus: str, encoder: Any, root: str | os.PathLike[str], every: int,
                         alter: Callable[[np.ndarray, str], np.ndarray], name: str,
                         description: dict[str, Any], what: str, batch: int = 8,
                         progress: bool = True) -> dict[str, np.ndarray]:
    """Embeddings of an altered copy of every ``every``-th utterance of ``corpus`` (path order,
    the rows ``embed_speech_corpus(corpus, every=every)`` holds); cached under
    ``<corpus>-audio-<name>``, keyed by the encoder, the files and ``description``.

    ``alter(wave, path relative to the data root)`` makes the copy (a speed change, a short
    crop). ``X`` [N, dim], ``available`` [N] bool; labels and speakers are the originals'."""
    from ..datasets.speech_corpora import load_speech_corpus

    root = Path(root)
    records = load_speech_corpus(corpus, root)[::every]
    rel = [os.path.relpath(r.path, root) for r in records]

    def compute() -> dict[str, np.ndarray]:
        xs, avail = [], []
        with tqdm(total=len(records), desc=f"embed {corpus} {what} [{encoder.name}]",
                  disable=not progress, mininterval=10) as bar:
            for i in range(0, len(records), batch):
                waves = [alter(read_audio(r.path), p)
                         for r, p in zip(records[i:i + batch], rel[i:i + batch])]
                outs = encoder.encode_audio_batch(waves, batch)
                xs += [o.embedding for o in outs]
                avail += [o.available for o in outs]
                bar.update(len(waves))
        return {"X": np.stack(xs).astype(np.float32), "available": np.asarray(avail, bool)}

    return cached_arrays(f"{corpus}-audio-{name}",
                         {"encoder": encoder.config(), "files": rel, **description}, compute)
