"""Speed-perturbed copies of training utterances: voices the four speech corpora lack.

Speech recognition's speed perturbation: each utterance played 0.9x and 1.1x as fast
(resampled, so tempo and pitch move together) is a new voice with the same emotion. The audio
expert has 66 speaker ids in four corpora; the copies widen the range of pitch and rate it sees,
one of the ways an unseen speaker differs. A copy keeps its speaker id, so no
speaker-grouped split ever puts a voice's copy on one side and the voice on the other.

Only training uses them; every protocol scores original recordings. Embedded by exactly the
shipped encoder and cached like :func:`~multimodal_emotion.training.audio.embed_speech_corpus`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..cache import cached_arrays
from ..datasets.ravdess import read_audio

# The shipped recipe's speeds, and every n-th utterance perturbed per corpus (nEMO's 4,481
# outnumber the rest: a third of them is what a 2-core budget affords; all are used as recorded).
SPEEDS: tuple[float, ...] = (0.9, 1.1)
SPEED_EVERY: dict[str, int] = {"nemo": 3}


def speed_changed(wave: np.ndarray, speed: float) -> np.ndarray:
    """``wave`` played ``speed`` times as fast (polyphase resampling in tenths of a step)."""
    from scipy.signal import resample_poly

    return resample_poly(wave, 10, int(round(10 * speed))).astype(np.float32)


def embed_speed_copies(corpus: str, speed: float, encoder: Any, root: str | os.PathLike[str],
                       every: int = 1, batch: int = 8, progress: bool = True
                       ) -> dict[str, np.ndarray]:
    """Embeddings of every ``every``-th utterance of ``corpus`` (path order, the rows
    ``embed_speech_corpus(corpus, every=every)`` holds) played at ``speed``; cached.

    ``X`` [N, dim], ``available`` [N] bool. Labels and speakers are the originals'."""
    from ..datasets.speech_corpora import load_speech_corpus

    root = Path(root)
    records = load_speech_corpus(corpus, root)[::every]
    rel = [os.path.relpath(r.path, root) for r in records]

    def compute() -> dict[str, np.ndarray]:
        xs, avail = [], []
        with tqdm(total=len(records), desc=f"embed {corpus} x{speed:g} [{encoder.name}]",
                  disable=not progress, mininterval=10) as bar:
            for i in range(0, len(records), batch):
                waves = [speed_changed(read_audio(r.path), speed) for r in records[i:i + batch]]
                outs = encoder.encode_audio_batch(waves, batch)
                xs += [o.embedding for o in outs]
                avail += [o.available for o in outs]
                bar.update(len(waves))
        return {"X": np.stack(xs).astype(np.float32), "available": np.asarray(avail, bool)}

    return cached_arrays(f"{corpus}-audio-speed", {"encoder": encoder.config(), "files": rel,
                                                   "speed": speed, "format": 1}, compute)
