"""Choosing among candidate speaker partitions by how a conversation takes turns.

Why: resemblyzer's d-vectors move with arousal. In a call where one party gets angry, the
voice embeddings fall into three natural groups (the agent, the calm customer, the angry
customer), and for two voices of the same sex the calm customer can lie nearer the agent
than the customer's own angry speech. A partition into two by embeddings alone then puts the
agent and the calm customer together. What the embeddings cannot tell, the order of speech
can: in a dialogue the speaker changes often between one stretch of speech and the next,
while the wrong partition makes one "speaker" talk on through what were the other party's
replies. So the clustering proposes partitions (the plain one into ``k`` groups, and every
way of merging ``k + 1`` or ``k + 2`` finer groups into ``k``), and each is scored by

    turn-change rate  +  weight * silhouette

where the turn-change rate is the share of consecutive speech pieces (speech between pauses
of 0.25 s or more) whose speakers differ, and the silhouette (cosine) keeps the embeddings'
say, so a partition that alternates well but cuts through a compact voice loses. The weight
(1.0) and the finer counts were chosen on calls of RAVDESS actors 1-12 (``bench/calls.py
--tune``). The rule assumes a conversation: a recording that is mostly one party's
monologue gives the turn-change rate little to go on, and the silhouette then decides.
"""

from __future__ import annotations

import numpy as np

# how much the embeddings' silhouette counts against the turn-change rate (tuned on actors 1-12)
SILHOUETTE_WEIGHT = 1.0
# partitions are searched only up to this many speakers: the number of ways to merge k + 2
# groups into k grows as k^4 / 8, and calls rarely have more voices
MAX_SEARCHED_SPEAKERS = 6


def merges(n: int, k: int) -> list[np.ndarray]:
    """Every way to put ``n`` groups into ``k`` non-empty ones, each once (as a map
    ``group -> merged group``, merged groups numbered by their first member)."""
    out: list[np.ndarray] = []

    def grow(prefix: list[int], used: int) -> None:
        left = n - len(prefix)
        if left == 0:
            if used == k:
                out.append(np.array(prefix, int))
            return
        if k - used > left:  # not enough groups left to fill every merged one
            return
        for g in range(min(used + 1, k)):
            grow(prefix + [g], max(used, g + 1))

    grow([], 0)
    return out


def turn_change_rate(labels: np.ndarray, piece: np.ndarray, centres: np.ndarray) -> float:
    """Share of consecutive speech pieces (in time) whose speakers differ; a piece's speaker
    is the most common label of its windows. 0 when there are fewer than two pieces."""
    if len(labels) == 0:
        return 0.0
    pieces, inv = np.unique(piece, return_inverse=True)
    if len(pieces) < 2:
        return 0.0
    k = int(labels.max()) + 1
    counts = np.zeros((len(pieces), k))
    np.add.at(counts, (inv, labels), 1)
    first = np.full(len(pieces), np.inf)
    np.minimum.at(first, inv, centres)
    lab = counts.argmax(1)[np.argsort(first, kind="stable")]
    return float((lab[1:] != lab[:-1]).mean())


def silhouette(dist: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of ``labels`` given a square distance matrix (sklearn's definition; a
    window alone in its group scores 0). -1 when there are fewer than two groups."""
    k = int(labels.max()) + 1 if len(labels) else 0
    if k < 2:
        return -1.0
    onehot = np.eye(k)[labels]
    sizes = onehot.sum(0)
    sums = dist @ onehot  # [n, k]: summed distance of each window to each group
    own = sizes[labels] - 1
    a = np.where(own > 0, sums[np.arange(len(labels)), labels] / np.maximum(own, 1), 0.0)
    other = sums / np.maximum(sizes, 1)
    other[np.arange(len(labels)), labels] = np.inf
    other[:, sizes == 0] = np.inf
    b = other.min(1)
    s = np.where(own > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def score(labels_all: np.ndarray, piece: np.ndarray, centres: np.ndarray, dist_sub: np.ndarray,
          labels_sub: np.ndarray, weight: float = SILHOUETTE_WEIGHT) -> float:
    """The partition's score: turn-change rate over all windows plus ``weight`` times the
    silhouette over the clustered ones."""
    return turn_change_rate(labels_all, piece, centres) + weight * silhouette(dist_sub, labels_sub)


__all__ = ["merges", "turn_change_rate", "silhouette", "score", "SILHOUETTE_WEIGHT",
           "MAX_SEARCHED_SPEAKERS"]
