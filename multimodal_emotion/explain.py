"""Why the model said what it said: which modality moved the answer, and which words did.

* :func:`modality_shapley`: the exact Shapley values of the available modalities for the fused
  probability of the chosen label. Masks make every subset of modalities a valid input, so the
  value of a coalition is simply the fused probability with only those modalities present
  (at most 2^3 - 1 = 7 small fusions); the empty coalition's value, ``base``, is the target
  prior's probability of the label (what the system says knowing nothing). Shapley values add
  up exactly: ``base + sum(contributions) == probabilities[label]``, and a masked modality
  contributes 0 by construction.
* :func:`word_occlusion`: how much the text expert's probability of the label drops when each
  word of the transcript is left out (positive: the word supported the label).
"""

from __future__ import annotations

from itertools import combinations
from math import factorial
from typing import Callable, Sequence

import numpy as np

from .errors import InputError


def shapley_values(players: Sequence[str], value: Callable[[frozenset[str]], float]
                   ) -> dict[str, float]:
    """Exact Shapley values by enumerating coalitions (fine for a handful of players)."""
    n = len(players)
    out = {}
    for p in players:
        others = [q for q in players if q != p]
        phi = 0.0
        for k in range(n):
            w = factorial(k) * factorial(n - k - 1) / factorial(n)
            for coalition in combinations(others, k):
                s = frozenset(coalition)
                phi += w * (value(s | {p}) - value(s))
        out[p] = phi
    return out


def modality_subsets(present: Sequence[str], subsets: list[tuple[str, ...]] | None = None
                     ) -> list[tuple[str, ...]]:
    """The non-empty subsets of the ``present`` modalities to fuse: all of them (what an exact
    Shapley explanation needs; at most 7) by default, else the given ones, which may name
    only present modalities."""
    if subsets is None:
        subsets = [tuple(m for k, m in enumerate(present) if bits >> k & 1)
                   for bits in range(1, 2 ** len(present))]
    subsets = [s for s in subsets if s]
    unknown = [s for s in subsets if not set(s) <= set(present)]
    if unknown:
        raise InputError(f"subsets {unknown} name modalities that are not available")
    return subsets


def modality_shapley(label_index: int, subset_probs: dict[tuple[str, ...], np.ndarray],
                     base: float, modalities: Sequence[str]) -> dict[str, float]:
    """Contribution of every modality in ``modalities`` (0 for those not in any subset, i.e.
    masked) to the fused probability of ``label_index``, given the fused probabilities of every
    non-empty subset of the available ones (``subset_probs``, keys in any order)."""
    by_set = {frozenset(k): float(v[label_index]) for k, v in subset_probs.items()}
    players = sorted(set().union(*by_set) if by_set else set(), key=list(modalities).index)

    def value(s: frozenset[str]) -> float:
        return base if not s else by_set[s]

    phi = shapley_values(players, value)
    return {m: float(phi.get(m, 0.0)) for m in modalities}


MAX_WORDS = 128  # one text-encoder batch per word: beyond this, only the first words are tried


def word_occlusion(transcript: str, score: Callable[[list[str]], np.ndarray], top: int = 5,
                   max_words: int = MAX_WORDS) -> list[dict[str, float | str]]:
    """The words whose removal changes ``score`` most.

    ``score`` maps a list of texts to the text expert's probability of the label for each
    (one batch: the full transcript first, then one text per left-out word). Returns up to
    ``top`` entries ``{"word", "effect"}`` sorted by the size of the effect, where ``effect`` is
    the probability with the word minus without it. Only the first ``max_words`` words are
    left out in turn (each costs one sentence encoding; a long call's transcript is explained
    per turn, not as a whole).
    """
    words = transcript.split()
    if not words:
        return []
    variants = [" ".join(words[:i] + words[i + 1:]) for i in range(min(len(words), max_words))]
    scores = np.asarray(score([transcript] + variants), np.float64)
    full, without = scores[0], scores[1:]
    effects = [(w, float(full - s)) for w, s in zip(words, without)]
    effects.sort(key=lambda t: -abs(t[1]))
    return [{"word": w, "effect": round(e, 4)} for w, e in effects[:top]]
