"""Customer-service calls: per-turn emotion, the call's story, and its report.

Modules, one idea each: ``analysis`` (turns -> per-turn predictions, :func:`analyze_call`),
``overlap`` (groups of turns on a few threads, answers in order),
``stats`` (talk time, silence, overtalk, interruptions, emotion shares), ``events`` (escalation
and recovery), ``score`` (the end-weighted sentiment score and trend), ``summary`` (the
``mer call --json`` object), ``satisfaction`` (fitting and applying a user's satisfaction
model), ``report`` (HTML page, CSV), ``command`` (the ``mer call`` shell), ``jobs`` (the API's
job store). Nothing here imports FastAPI or argparse except the shells.
"""

from .analysis import CallAnalysis, TurnAnalysis, analyze_call, redact_digits
from .events import EscalationRule, find_events
from .score import sentiment, valence
from .summary import call_result

__all__ = ["CallAnalysis", "TurnAnalysis", "analyze_call", "redact_digits", "EscalationRule",
           "find_events", "sentiment", "valence", "call_result"]
