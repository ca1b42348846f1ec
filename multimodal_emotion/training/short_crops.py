"""Short crops of the speech utterances: the audio expert on (and trained for) a single word.

Every utterance the four speech corpora hold is a sentence of 2-5 s, so the expert learned what
a sentence's pooled Whisper statistics look like. A single word, a short reply or a short turn in
a call pools fewer, less varied frames. The crops here are windows of 0.5-1.5 s cut from inside
each utterance's speech, labelled as the utterance: the same voice and emotion at the length a
word has. They serve two ends (``bench/speech_corpora.py --short``):

* a protocol: the speaker-independent and leave-one-corpus-out splits scored on the held-out
  side's crops instead of its whole recordings (``short=True`` in ``training.speech``). The
  shipped expert's RAVDESS 6-fold UAR falls from 77.6 % on whole sentences to 46.5 % on crops.
* a training option (:data:`SHORT_CROPS`): the crops of the training side as extra copies.
  Measured, it lifts that RAVDESS figure to 60.7 % but lowers CASIA's leave-one-corpus-out UAR
  on whole recordings from 37.0 to 36.3 % (under issue 14's line of chance + 20), so the shipped
  recipe does without it.

Like the speed copies (:mod:`~multimodal_emotion.training.speed_perturb`) they keep their
speaker id, so no speaker-grouped split puts a voice's crop on one side and the voice on the
other; the protocols score them only when asked. Each utterance's window is drawn from a
generator seeded by its path, so the crops, and their cache, are the same on every run and
machine.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np

from ..encoders.audio_features import SAMPLE_RATE, trim_silence

# The window's length, uniform in seconds: the length of one spoken word to a short phrase.
CROP_SECONDS: tuple[float, float] = (0.5, 1.5)
# Silence farther under the utterance's active level than this is not speech to cut from.
SPEECH_DB = 30.0
# Whether the shipped recipe trains on them: no (bench/speech_corpora.py --short; see above).
SHORT_CROPS = False
# A crop's weight in training against a whole recording's (within its corpus-class cell); 0.5
# measured no better (CASIA whole 35.8 %: --short --short-share 0.5).
CROP_SHARE = 1.0
# Every n-th utterance cropped, per corpus (as for the speed copies, a third of nEMO's 4,481).
CROP_EVERY: dict[str, int] = {"nemo": 3}


def short_crop(wave: np.ndarray, seed: int,
               seconds: tuple[float, float] = CROP_SECONDS) -> np.ndarray:
    """A window of ``seconds`` (drawn uniformly) from inside ``wave``'s speech (leading and
    trailing silence trimmed first), at a start drawn uniformly; all of the speech when it is
    shorter than the window."""
    rng = np.random.default_rng(seed)
    speech = trim_silence(wave, SPEECH_DB, margin_s=0.0)
    n = int(round(rng.uniform(*seconds) * SAMPLE_RATE))
    if speech.size <= n:
        return speech.astype(np.float32)
    start = int(rng.integers(0, speech.size - n + 1))
    return speech[start:start + n].astype(np.float32)


def path_seed(rel_path: str) -> int:
    """A seed from a file's path relative to the data root: the same crop on every machine."""
    return int.from_bytes(hashlib.sha256(rel_path.encode()).digest()[:8], "little")


def embed_short_crops(corpus: str, encoder: Any, root: str | os.PathLike[str], every: int = 1,
                      batch: int = 8, progress: bool = True,
                      seconds: tuple[float, float] = CROP_SECONDS) -> dict[str, np.ndarray]:
    """Embeddings of one short crop (:func:`short_crop`) of every ``every``-th utterance of
    ``corpus`` (path order, the rows ``embed_speech_corpus(corpus, every=every)`` holds); cached.

    ``X`` [N, dim], ``available`` [N] bool. Labels and speakers are the originals'."""
    from .audio import embed_altered_copies

    return embed_altered_copies(corpus, encoder, root, every,
                                lambda wave, rel: short_crop(wave, path_seed(rel), seconds),
                                "crop", {"seconds": list(seconds), "speech_db": SPEECH_DB,
                                         "format": 1}, "short crops", batch, progress)
