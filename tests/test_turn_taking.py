"""Choosing the speaker partition by turn-taking (segmenting/turn_taking.py and
diarize.cluster_speakers): hand-made embeddings stand in for voices, so the clustering logic
is tested without audio."""

from __future__ import annotations

import numpy as np
import pytest

from multimodal_emotion.segmenting import turn_taking
from multimodal_emotion.segmenting.diarize import SpeakerWindows, cluster_speakers


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _call(voices: list[np.ndarray], who: list[int], per_piece: int = 3, noise: float = 0.04,
          seed: int = 0) -> tuple[SpeakerWindows, np.ndarray]:
    """Windows of a call: piece ``i`` is spoken in voice ``who[i]`` (``per_piece`` windows of
    1.6 s every 0.8 s, pieces 1 s apart); each window is its voice plus a little noise.
    Returns the windows and each window's voice."""
    rng = np.random.default_rng(seed)
    spans, piece, vecs, truth, t = [], [], [], [], 0.0
    for p, v in enumerate(who):
        for _ in range(per_piece):
            spans.append((t, t + 1.6))
            piece.append(p)
            vecs.append(_unit(voices[v] + noise * rng.standard_normal(voices[v].size)))
            truth.append(v)
            t += 0.8
        t += 1.8
    return (SpeakerWindows(np.array(spans), np.array(piece), np.array(vecs, np.float32)),
            np.array(truth))


def _voices(cos_agent_calm: float, cos_calm_angry: float, dim: int = 256) -> list[np.ndarray]:
    """Agent, calm customer, angry customer as unit vectors with the given cosines (the angry
    voice is turned away from the calm one, away from the agent too)."""
    e = np.eye(dim)
    agent = e[0]
    calm = cos_agent_calm * e[0] + np.sqrt(1 - cos_agent_calm ** 2) * e[1]
    angry = cos_calm_angry * calm + np.sqrt(1 - cos_calm_angry ** 2) * e[2]
    return [agent, calm, _unit(angry)]


def _agreement(labels: np.ndarray, truth_speaker: np.ndarray) -> float:
    """Share of windows whose label matches the true speaker under the better of the two
    label maps."""
    same = float(np.mean(labels == truth_speaker))
    return max(same, 1 - same)


def test_merges_lists_every_grouping_once():
    for n, k, count in [(3, 2, 3), (4, 2, 7), (4, 3, 6), (5, 3, 25), (3, 3, 1)]:
        maps = turn_taking.merges(n, k)
        assert len(maps) == count  # Stirling numbers of the second kind
        canon = {tuple(m) for m in maps}
        assert len(canon) == count
        for m in maps:
            assert sorted(set(m.tolist())) == list(range(k))
            assert m[0] == 0  # numbered by first member: no relabelled duplicates
    assert turn_taking.merges(2, 3) == []


def test_turn_change_rate_counts_speaker_changes_between_pieces():
    piece = np.array([0, 0, 1, 1, 2, 3, 3])
    centres = np.array([0.0, 1, 2, 3, 4, 5, 6])
    assert turn_taking.turn_change_rate(np.array([0, 0, 1, 1, 0, 1, 1]), piece, centres) == 1.0
    assert turn_taking.turn_change_rate(np.array([0, 0, 0, 0, 1, 1, 1]), piece, centres) == \
        pytest.approx(1 / 3)
    # a piece's speaker is its windows' majority, and pieces are ordered by time, not number
    assert turn_taking.turn_change_rate(np.array([0, 0, 0, 1, 1, 1, 1]),
                                        np.array([1, 1, 0, 0, 0, 2, 2]), centres) == 0.5
    assert turn_taking.turn_change_rate(np.array([0, 0]), np.array([4, 4]), centres[:2]) == 0.0


def test_silhouette_matches_sklearn():
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 5))
    labels = rng.integers(0, 3, 40)
    labels[0] = 2
    labels[1:4] = [0, 1, 2]
    labels[39] = 3  # a group of one
    dist = np.linalg.norm(X[:, None] - X[None], axis=2)
    assert turn_taking.silhouette(dist, labels) == pytest.approx(
        silhouette_score(dist, labels, metric="precomputed"), abs=1e-9)
    assert turn_taking.silhouette(dist, np.zeros(40, int)) == -1.0


# agent and calm customer close (same sex), the customer's angry speech far from both: the
# shape resemblyzer gives two men or two women when one gets angry
HARD = _voices(cos_agent_calm=0.90, cos_calm_angry=0.60)
# customer: calm for ten turns, angry for ten, calm for ten; the agent answers each
WHO = [v for c in [1] * 10 + [2] * 10 + [1] * 10 for v in (0, c)]


def test_embeddings_alone_put_the_agent_with_the_calm_customer():
    """The failure the turn-taking rule is for: the plain spectral partition of these windows
    groups the agent with the calm customer."""
    windows, truth = _call(HARD, WHO)
    labels, _ = cluster_speakers(windows, 2, finer=(), centre=False)
    speaker = (truth > 0).astype(int)
    assert _agreement(labels, speaker) < 0.75
    assert len(set(labels[truth == 0]) & set(labels[truth == 1])) == 1  # agent + calm together


def test_turn_taking_keeps_the_customer_together_when_angry():
    windows, truth = _call(HARD, WHO)
    speaker = (truth > 0).astype(int)
    for speakers in (2, None):
        labels, cents = cluster_speakers(windows, speakers)
        assert _agreement(labels, speaker) == 1.0, speakers
        assert labels[0] == 0 and cents.shape == (2, 256)
        # centroids are the voices' own (the call's mean is removed only to partition)
        for j in (0, 1):
            own = windows.vectors[labels == j].mean(0)
            assert np.allclose(cents[j], own / np.linalg.norm(own), atol=1e-5)


def test_two_distinct_voices_are_unchanged_and_one_voice_stays_one():
    far = _voices(cos_agent_calm=0.2, cos_calm_angry=0.9)
    windows, truth = _call(far, WHO, seed=3)
    plain, _ = cluster_speakers(windows, 2, finer=(), centre=False)
    chosen, _ = cluster_speakers(windows, 2)
    assert _agreement(chosen, (truth > 0).astype(int)) == 1.0
    assert np.array_equal(plain, chosen)
    # one person throughout: the estimated count stays one, whatever the turn-taking
    lone, _ = cluster_speakers(_call([far[0]], [0] * 40, seed=4)[0], None)
    assert set(lone.tolist()) == {0}


def test_monologue_falls_back_on_the_embeddings():
    """No alternation to go on (the agent speaks first for a long stretch, then the customer):
    the silhouette decides, and the two voices are still told apart."""
    far = _voices(cos_agent_calm=0.3, cos_calm_angry=0.9)
    who = [0] * 15 + [1] * 15
    windows, truth = _call(far, who, seed=5)
    labels, _ = cluster_speakers(windows, 2)
    assert _agreement(labels, truth) == 1.0
