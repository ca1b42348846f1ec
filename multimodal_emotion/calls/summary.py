"""A call's story in one JSON object: ``mer call --json``'s output, the API's result, and what
the HTML/CSV reports and the satisfaction model read.

The object is built from the turns alone (plus duration and roles), so a stored result can be
summarized again under another escalation rule without touching the media.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import InputError
from .analysis import CallAnalysis, TurnAnalysis
from .events import EscalationRule, find_events
from .score import sentiment
from .stats import DEFAULT_YIELD_S, call_stats

SCHEMA = "mer-call/1"


def customers(roles: Mapping[str, str], speakers: Sequence[str]) -> list[str]:
    """Whose feelings the events and the score follow: speakers whose role is ``customer``;
    when none is, every speaker who is not the agent; when all are agents, everyone."""
    named = [s for s in speakers if roles.get(s) == "customer"]
    return named or [s for s in speakers if roles.get(s) != "agent"] or list(speakers)


def summarize(turns: Sequence[TurnAnalysis], duration: float, roles: Mapping[str, str],
              speakers: Sequence[str], rule: EscalationRule = EscalationRule(),
              yield_s: float = DEFAULT_YIELD_S) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(events, summary)`` of a call."""
    stats = call_stats(turns, duration, dict(roles), speakers, yield_s)
    cust = customers(roles, speakers)
    events = find_events(turns, cust, rule)
    escalations = [e for e in events if e["type"] == "escalation"]
    summary = {
        "customers": cust,
        "sentiment": sentiment([t for t in turns if t.speaker in cust], duration).to_dict(),
        "escalations": len(escalations),
        "unrecovered_escalation": any(not e.get("recovered", True) for e in escalations),
        **stats.to_dict(),
    }
    return events, summary


def call_result(call: CallAnalysis, rule: EscalationRule = EscalationRule(),
                yield_s: float = DEFAULT_YIELD_S, path: str | None = None) -> dict[str, Any]:
    """The ``mer call --json`` object (no satisfaction: see :func:`add_satisfaction`)."""
    speakers = call.speakers
    events, summary = summarize(call.turns, call.duration, call.roles, speakers, rule, yield_s)
    return {
        "schema": SCHEMA,
        "path": path,
        "duration": round(call.duration, 3),
        "channels": call.channels,
        "speakers": [{"id": s, "role": call.roles.get(s, "unknown"),
                      "channel": summary["speakers"].get(s, {}).get("channel"),
                      "talk_time": summary["speakers"].get(s, {}).get("talk_s", 0.0)}
                     for s in speakers],
        "turns": [t.to_dict() for t in call.turns],
        "events": events,
        "summary": summary,
        "rule": {"escalation": rule.to_dict(), "interruption_yield_s": yield_s},
        "labels": None if call.label_map is None else call.label_map.to_dict(),
        "language": getattr(call, "language", None),
        "timings_s": dict(call.timings_s),
        "warnings": list(call.warnings),
        # only when not float32 throughout (mer call --fast)
        **({"precision": call.precision} if getattr(call, "precision", None) else {}),
    }


def turns_of(result: Mapping[str, Any]) -> list[TurnAnalysis]:
    """The turns of a stored ``mer call --json`` object."""
    if not isinstance(result, Mapping) or not isinstance(result.get("turns"), list):
        raise InputError("not a `mer call --json` result: it has no 'turns' list")
    return [TurnAnalysis.from_dict(t) for t in result["turns"]]


def roles_of(result: Mapping[str, Any]) -> dict[str, str]:
    return {str(s["id"]): str(s.get("role", "unknown")) for s in result.get("speakers") or []}
