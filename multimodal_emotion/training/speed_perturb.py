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
from typing import Any

import numpy as np


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
    from .audio import embed_altered_copies

    return embed_altered_copies(corpus, encoder, root, every,
                                lambda wave, _: speed_changed(wave, speed), "speed",
                                {"speed": speed, "format": 1}, f"x{speed:g}", batch, progress)
