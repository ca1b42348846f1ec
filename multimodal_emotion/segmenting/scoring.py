"""Judging found turns against reference turns: diarization error rate and turn matching.

**DER** follows the NIST RT definition (md-eval's): time is cut into 10 ms frames; a frame
within ``collar`` seconds of any reference turn boundary (start or end) is not scored; in each
scored frame with ``R`` reference speakers and ``H`` hypothesis speakers, of whom ``C`` are
reference speakers mapped to a hypothesis speaker that is also active, the errors are
missed ``max(0, R - H)``, false alarm ``max(0, H - R)`` and confusion ``min(R, H) - C``; DER is
their sum over the sum of ``R`` (overlapped speech counts once per speaker). The mapping from
hypothesis to reference speakers is the one-to-one assignment maximising their co-active scored
time (Hungarian algorithm), so speaker names do not matter.

**Turn matching** pairs each reference turn with at most one found turn (greedy by overlap,
largest first) when their intersection over union is at least ``min_iou`` and, when
``same_speaker``, their speakers agree (after the DER mapping for diarized turns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

Segment = tuple[float, float, str]  # (start, end, speaker)
STEP = 0.01


@dataclass
class DER:
    der: float
    missed: float  # each a share of the scored reference speech
    false_alarm: float
    confusion: float
    scored_s: float  # reference speaker-seconds scored
    mapping: dict[str, str]  # hypothesis speaker -> reference speaker


def _activity(segs: Sequence[Segment], names: list[str], n: int) -> np.ndarray:
    act = np.zeros((len(names), n), bool)
    for a, b, s in segs:
        i0, i1 = int(round(a / STEP)), int(round(b / STEP))
        act[names.index(s), max(0, i0):max(0, min(n, i1))] = True
    return act


def diarization_error_rate(reference: Sequence[Segment], hypothesis: Sequence[Segment],
                           collar: float = 0.25) -> DER:
    """DER of ``hypothesis`` against ``reference`` (see the module docstring)."""
    from scipy.optimize import linear_sum_assignment

    end = max([b for _, b, _ in list(reference) + list(hypothesis)] or [0.0])
    n = int(np.ceil(end / STEP)) + 1
    rnames = sorted({s for *_, s in reference})
    hnames = sorted({s for *_, s in hypothesis})
    ref, hyp = _activity(reference, rnames, n), _activity(hypothesis, hnames, n)
    scored = np.ones(n, bool)
    c = int(round(collar / STEP))
    for a, b, _ in reference:
        for t in (a, b):
            i = int(round(t / STEP))
            scored[max(0, i - c):max(0, i + c)] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    mapping: dict[str, str] = {}
    correct = np.zeros(ref.shape[1], int)
    if rnames and hnames:
        co = ref.astype(np.int64) @ hyp.T.astype(np.int64)  # [R, H] co-active frames
        ri, hi = linear_sum_assignment(-co)
        for r, h in zip(ri, hi):
            if co[r, h] > 0:
                mapping[hnames[h]] = rnames[r]
                correct += ref[r] & hyp[h]
    R, H = ref.sum(0), hyp.sum(0)
    total = int(R.sum())
    if total == 0:
        return DER(float("nan"), 0.0, 0.0, 0.0, 0.0, mapping)
    missed = np.maximum(0, R - H).sum() / total
    fa = np.maximum(0, H - R).sum() / total
    conf = (np.minimum(R, H) - correct).sum() / total
    return DER(float(missed + fa + conf), float(missed), float(fa), float(conf),
               total * STEP, mapping)


@dataclass
class TurnMatch:
    precision: float
    recall: float
    f1: float
    start_error: float  # median absolute start error of matched turns, seconds
    end_error: float
    pairs: list[tuple[int, int]]  # (reference index, hypothesis index)


def match_turns(reference: Sequence[Segment], hypothesis: Sequence[Segment],
                min_iou: float = 0.5, same_speaker: bool = True,
                mapping: dict[str, str] | None = None) -> TurnMatch:
    """One-to-one matching of found turns to reference turns (see the module docstring);
    ``mapping`` renames hypothesis speakers first (e.g. :attr:`DER.mapping`)."""
    mapping = mapping or {}
    cands = []
    for i, (a, b, s) in enumerate(reference):
        for j, (x, y, h) in enumerate(hypothesis):
            inter = min(b, y) - max(a, x)
            if inter <= 0:
                continue
            iou = inter / (max(b, y) - min(a, x))
            if iou >= min_iou and (not same_speaker or mapping.get(h, h) == s):
                cands.append((iou, i, j))
    used_r, used_h, pairs = set(), set(), []
    for _, i, j in sorted(cands, reverse=True):
        if i not in used_r and j not in used_h:
            used_r.add(i), used_h.add(j), pairs.append((i, j))
    p = len(pairs) / len(hypothesis) if hypothesis else float("nan")
    r = len(pairs) / len(reference) if reference else float("nan")
    f1 = 2 * p * r / (p + r) if pairs else 0.0
    se = [abs(reference[i][0] - hypothesis[j][0]) for i, j in pairs]
    ee = [abs(reference[i][1] - hypothesis[j][1]) for i, j in pairs]
    return TurnMatch(p, r, f1, float(np.median(se)) if se else float("nan"),
                     float(np.median(ee)) if ee else float("nan"), sorted(pairs))


def as_segments(turns: Iterable) -> list[Segment]:
    """``(start, end, speaker)`` tuples from :class:`~multimodal_emotion.turns.Turn` objects."""
    return [(t.start, t.end, t.speaker) for t in turns]
