"""When a call went wrong, and whether it came back: escalation and recovery events.

Each of the customer's turns gets a *negativity* ``n`` in [0, 1]: the probability of angry plus
disgust (the two emotions of anger and frustration among the seven), or, when the rule names a
``category`` of the call's business label map (e.g. ``frustrated``), that category's
probability. Turns with no answer (no modality) are skipped: they neither escalate nor calm.

**Escalation** (:class:`EscalationRule`, every number configurable) starts at turn *i* when

* *sustained*: the customer's turns up to *i* have had ``n >= threshold`` for at least
  ``min_turns`` turns in a row, or for a run spanning at least ``min_seconds`` (one long angry
  turn is enough); or
* *rising*: ``n`` has not fallen over the last ``rise_turns`` turns, has risen by at least
  ``min_rise`` across them, and turn *i* is at or above ``rise_threshold``.

The event starts where that run (or rise) started. It lasts until **recovery**: ``recover_turns``
customer turns in a row with ``n < recover_threshold`` (below ``threshold``: hysteresis, so a
call hovering at the threshold does not flicker). The escalation then ends where the last
negative turn ended, and a ``recovery`` event covers the calm turns that proved it. An
escalation still open at the end of the call ends with the customer's last turn and says
``"recovered": false``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

from ..errors import InputError
from .analysis import TurnAnalysis

NEGATIVE_EMOTIONS = ("angry", "disgust")


@dataclass(frozen=True)
class EscalationRule:
    """The numbers of the escalation rule (see the module docstring).

    Why 0.4 and not 0.5: the fused probabilities are calibrated over seven emotions, so a turn
    the model labels angry often has P(angry) + P(disgust) under one half (0.47-0.60 for the
    angry customer turns of bench/call_scale.py), and a one-half threshold missed them."""

    threshold: float = 0.4
    min_turns: int = 2
    min_seconds: float = 15.0
    rise_turns: int = 3
    min_rise: float = 0.25
    rise_threshold: float = 0.35
    recover_threshold: float = 0.25
    recover_turns: int = 2
    emotions: tuple[str, ...] = NEGATIVE_EMOTIONS
    category: str | None = None  # a business category to use instead of ``emotions``

    def __post_init__(self) -> None:
        for name in ("threshold", "rise_threshold", "recover_threshold", "min_rise"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise InputError(f"escalation rule: {name} must be in [0, 1], not {v}")
        for name in ("min_turns", "rise_turns", "recover_turns"):
            if getattr(self, name) < 1:
                raise InputError(f"escalation rule: {name} must be at least 1")
        if self.recover_threshold > self.threshold:
            raise InputError("escalation rule: recover_threshold must not exceed threshold")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EscalationRule":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError(f"escalation rule: unknown field(s) {sorted(unknown)}; known: "
                             f"{sorted(known)}")
        data = dict(data)
        if "emotions" in data:
            data["emotions"] = tuple(data["emotions"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["emotions"] = list(self.emotions)
        return d


def negativity(turn: TurnAnalysis, rule: EscalationRule) -> float | None:
    """The turn's ``n`` under ``rule``, or ``None`` when the turn has no answer."""
    if turn.probabilities is None:
        return None
    if rule.category is not None:
        probs = (turn.business or {}).get("probabilities") or {}
        if rule.category not in probs:
            raise InputError(f"escalation rule: category {rule.category!r} is not in the "
                             f"call's label map ({sorted(probs) or 'no label map given'})")
        return float(probs[rule.category])
    return float(sum(turn.probabilities.get(e, 0.0) for e in rule.emotions))


def find_events(turns: Sequence[TurnAnalysis], speakers: Sequence[str],
                rule: EscalationRule = EscalationRule()) -> list[dict[str, Any]]:
    """Escalation and recovery events of each of ``speakers`` (the customers), in time order."""
    events: list[dict[str, Any]] = []
    for s in speakers:
        mine = [(t, negativity(t, rule)) for t in sorted(turns, key=lambda t: t.start)
                if t.speaker == s]
        events.extend(_speaker_events(s, [(t, n) for t, n in mine if n is not None], rule))
    return sorted(events, key=lambda e: (e["start"], e["type"] != "escalation"))


def _speaker_events(speaker: str, seq: list[tuple[TurnAnalysis, float]],
                    rule: EscalationRule) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    open_event: dict[str, Any] | None = None
    run_start: int | None = None  # first index of the current run at or above threshold
    calm: list[int] = []  # indices of the current run below recover_threshold
    last_negative = 0
    for i, (turn, n) in enumerate(seq):
        run_start = (i if run_start is None else run_start) if n >= rule.threshold else None
        if open_event is None:
            trigger, first = _trigger(seq, i, run_start, rule)
            if trigger:
                open_event = {"type": "escalation", "speaker": speaker,
                              "start": seq[first][0].start, "end": turn.end, "trigger": trigger,
                              "peak": max(x for _, x in seq[first:i + 1]), "turns": i - first + 1}
                last_negative, calm = i, []
            continue
        open_event["peak"] = max(open_event["peak"], n)
        if n < rule.recover_threshold:
            calm.append(i)
        else:
            calm = []
            if n >= rule.threshold:
                last_negative = i
            open_event["end"] = turn.end
        if len(calm) >= rule.recover_turns:
            open_event.update(end=seq[last_negative][0].end, recovered=True)
            events.append(_rounded(open_event))
            events.append(_rounded({"type": "recovery", "speaker": speaker,
                                    "start": seq[calm[0]][0].start, "end": turn.end,
                                    "turns": len(calm)}))
            open_event, calm, run_start = None, [], None
    if open_event is not None:
        open_event["end"] = seq[-1][0].end
        open_event["recovered"] = False
        events.append(_rounded(open_event))
    return events


def _trigger(seq: list[tuple[TurnAnalysis, float]], i: int, run_start: int | None,
             rule: EscalationRule) -> tuple[str | None, int]:
    """Whether an escalation starts at turn ``i``, how, and at which turn it began."""
    if run_start is not None:
        span = seq[i][0].end - seq[run_start][0].start
        if i - run_start + 1 >= rule.min_turns or span >= rule.min_seconds:
            return "sustained", run_start
    k = rule.rise_turns
    if i + 1 >= k:
        window = [n for _, n in seq[i + 1 - k:i + 1]]
        steady = all(b >= a for a, b in zip(window, window[1:]))
        if steady and window[-1] - window[0] >= rule.min_rise \
                and window[-1] >= rule.rise_threshold:
            return "rising", i + 1 - k
    return None, i


def _rounded(event: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in event.items()}
