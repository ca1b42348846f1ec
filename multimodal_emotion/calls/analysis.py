"""A call, turn by turn: find who spoke when, then give each turn its own emotion.

:func:`analyze_call` is the one library call behind ``mer call`` and ``POST /v1/calls``. It asks
a *turn finder* for the turns (voice activity, channels, speaker clustering: not this package's
business, see ``multimodal_emotion.segmenting``), streams the recording once more through
:func:`~multimodal_emotion.turns.iter_turn_clips` so each turn gets its own voice, words and the
frames shown while it was spoken (on a video call the face on screen is given to whoever is
talking), and runs :meth:`EmotionRecognizer.analyze_segment` on it (once the call's language
is fixed, ``analyze_segments`` on groups of ``batch_turns``: the encoders batch, the answers
are the same; ``workers`` groups at a time, see ``overlap``). Memory is bounded by those groups
of turns, not by the call.

The turn finder is a parameter (``find_turns``, ``assign_roles``) so tests and other segmenters
can stand in for the real one, which is imported only when none is given.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..errors import InputError, ModelError
from ..label_maps import LabelMap, load_label_map
from ..turns import Turn
from .overlap import InOrder

# progress(turns_done, turns_total, seconds_done, call_duration); turns_total 0 while the turn
# finder is still reading the call (when it reports progress)
Progress = Callable[[int, int, float, float], None]
FindTurns = Callable[..., Any]
AssignRoles = Callable[..., Mapping[str, str]]

ROLES = ("agent", "customer")
# Turns analyzed together once the call's language is known (``analyze_call``): measured on
# the 10-minute bench call (bench/call_scale.py), 8 takes most of the gain of batching
BATCH_TURNS = 8
# Groups of turns in flight at once (overlap.py): on 2 cores, 2 took 10 % off the wall time of
# 64 turns of the same call (float32 and --fast alike) and 9 % off the 60-minute call; 3 gave
# no more (bench/call_batching.py --workers, bench/call_scale.py --workers)
TURN_WORKERS = 2


@dataclass
class TurnAnalysis:
    """One turn and what the recognizer made of it (``label`` is ``None`` when no modality was
    there, with the ``reason``). ``transcript`` is ``None`` when transcripts are not kept."""

    start: float
    end: float
    speaker: str
    channel: int | None
    label: str | None
    probabilities: dict[str, float] | None
    confidence: float | None
    transcript: str | None = None
    business: dict[str, Any] | None = None
    modalities: list[str] = field(default_factory=list)  # the modalities the turn had
    reason: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"speaker": self.speaker, "channel": self.channel,
                             "start": round(self.start, 3), "end": round(self.end, 3),
                             "label": self.label, "probabilities": self.probabilities,
                             "confidence": None if self.confidence is None
                             else round(self.confidence, 5),
                             "transcript": self.transcript, "modalities": list(self.modalities)}
        if self.business is not None:
            d["business"] = self.business
        if self.reason:
            d["reason"] = self.reason
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TurnAnalysis":
        try:
            return cls(float(d["start"]), float(d["end"]), str(d["speaker"]),
                       None if d.get("channel") is None else int(d["channel"]),
                       d.get("label"), d.get("probabilities"), d.get("confidence"),
                       d.get("transcript"), d.get("business"), list(d.get("modalities") or []),
                       d.get("reason"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"a call turn needs start, end and speaker ({exc})") from exc


@dataclass
class CallAnalysis:
    """Every turn of a call, its speakers' roles, and the call's length."""

    duration: float
    turns: list[TurnAnalysis]
    roles: dict[str, str]
    channels: int | None = None  # audio channels of the recording (2: one party per channel)
    label_map: LabelMap | None = None
    # the call's language once fixed: {"code", "probability", "from"} (``analyze_call``)
    language: dict[str, Any] | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # None: float32 throughout; {"audio": ...}: the recognizer's voice expert ran in int8
    precision: dict[str, str] | None = None

    @property
    def speakers(self) -> list[str]:
        """Speakers in order of first appearance, then any the roles name but never spoke."""
        seen: list[str] = []
        for t in sorted(self.turns, key=lambda t: t.start):
            if t.speaker not in seen:
                seen.append(t.speaker)
        return seen + [s for s in self.roles if s not in seen]


# -- privacy ---------------------------------------------------------------------------------
_DIGIT_WORDS = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
_SPOKEN_NUMBER = re.compile(rf"\b{_DIGIT_WORDS}(?:[\s,-]+{_DIGIT_WORDS}){{2,}}\b", re.I)


def redact_digits(text: str) -> str:
    """Each digit becomes ``#``, and three or more digit words in a row (a card or phone number
    read out: "four one one one") become ``###``: call recordings carry account numbers, and a
    stored transcript should not. Amounts keep their shape (``$##.##``) so the words still read.
    """
    text = _SPOKEN_NUMBER.sub("###", text)
    return re.sub(r"\d", "#", text)


# -- the run ---------------------------------------------------------------------------------
def default_turn_finder() -> tuple[FindTurns, AssignRoles]:
    """The real turn finder (VAD, channels, speaker clustering), imported only when used."""
    try:
        from .. import segmenting
    except ImportError as exc:
        raise ModelError("the turn finder (multimodal_emotion.segmenting: voice activity and "
                         f"speaker clustering) is not available here ({exc})") from exc
    return segmenting.find_turns, segmenting.assign_roles


def analyze_call(source: Any, recognizer: Any, *, find_turns: FindTurns | None = None,
                 assign_roles: AssignRoles | None = None, speakers: int | None = None,
                 agent_channel: str | None = None, agent: str | None = None,
                 fusion: str | None = None, labels: LabelMap | str | None = None,
                 transcripts: bool = True, keep_digits: bool = False,
                 progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 language: str | None = "auto", batch_turns: int = BATCH_TURNS,
                 workers: int = TURN_WORKERS) -> CallAnalysis:
    """Find the turns of ``source`` (a path) and analyze each one with ``recognizer`` (shaped
    like :class:`~multimodal_emotion.recognizer.EmotionRecognizer`: ``analyze_segment``,
    ``fps``, ``max_duration_s``).

    ``speakers``: how many voices a mono recording holds (``None``: estimated by the finder).
    ``agent_channel`` (``"left"``/``"right"``) and ``agent`` (e.g. ``"first"``) are handed to the
    finder's role rule, only when given. ``transcripts=False`` keeps no words; otherwise digits
    are redacted unless ``keep_digits``. ``progress`` is called after each turn;
    ``should_stop()`` returning true stops between turns (a deleted API job).

    ``language``: ``"auto"`` (default) runs language ID on each turn only until one turn of
    at least :data:`LOCK_MIN_S` seconds names a language with probability
    :data:`LOCK_PROBABILITY` or more; that language then holds for the rest of the call (a
    call is held in one language, and language ID is a fixed cost on every turn). A code
    (``"en"``, ``"de"``) holds from the first turn; ``"per-turn"`` (or ``None``) detects on
    every turn.

    ``batch_turns``: once the language is fixed, this many turns at a time go to the
    recognizer's ``analyze_segments`` (when it has one): its encoders run on batches, which
    is the same answer per turn for less CPU. ``1`` analyzes turn by turn.

    ``workers``: how many groups are in flight at once (:class:`~.overlap.InOrder`: one group
    can use an engine another is not using); the answers and their order are the same for any
    number. ``1`` runs the groups one after another on this thread.
    """
    from .. import media_stream
    from ..turns import iter_turn_clips

    if find_turns is None or assign_roles is None:
        real_find, real_roles = default_turn_finder()
        find_turns, assign_roles = find_turns or real_find, assign_roles or real_roles
    if agent_channel is not None and agent_channel not in ("left", "right"):
        raise InputError(f"agent channel must be 'left' or 'right', not {agent_channel!r}")
    if not isinstance(batch_turns, int) or batch_turns < 1:
        raise InputError(f"batch_turns must be a whole number of at least 1, not "
                         f"{batch_turns!r}")
    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a whole number of at least 1, not {workers!r}")
    if speakers is not None and not 1 <= int(speakers) <= 32:
        raise InputError(f"speakers must be between 1 and 32, not {speakers}")
    label_map = load_label_map(labels)
    language = check_language(language)
    locked = _given_language(language)
    t0 = time.perf_counter()
    # unreadable or missing media fails here, with mer analyze's messages, whatever the finder
    info = media_stream.probe(source)
    limit = getattr(recognizer, "max_duration_s", media_stream.DEFAULT_MAX_DURATION_S)
    if limit and info.declared_duration and info.declared_duration > limit + 1.0:
        # refused before the turn finder reads an hour of it
        from ..media import _too_long

        raise _too_long(info.name, limit, f"its header says {info.declared_duration:.0f} s")
    find_args: dict[str, Any] = {"speakers": speakers}
    if progress is not None and _accepts(find_turns, "progress"):
        # the finder's own pass: reported as 0 turns of an unknown number, at this second
        find_args["progress"] = lambda done_s, total_s: progress(
            0, 0, float(done_s), float(total_s or info.declared_duration or 0.0))
    found = find_turns(source, **find_args)
    turns: list[Turn] = sorted(found.turns, key=lambda t: (t.start, t.end))
    role_args = {k: v for k, v in (("agent_channel", agent_channel), ("agent", agent))
                 if v is not None}
    roles = {str(s): str(r) for s, r in dict(assign_roles(found, **role_args)).items()}
    channels = getattr(found, "channels", None)
    channels = channels if isinstance(channels, int) else info.channels or None
    duration = _duration(found, info.declared_duration, turns)
    t_found = time.perf_counter()
    fps = float(getattr(recognizer, "fps", 4.0))
    results: list[TurnAnalysis] = []
    if progress is not None:
        progress(0, len(turns), 0.0, duration)
    warnings: list[str] = [str(w) for w in getattr(found, "warnings", None) or []]
    if turns:
        chunks = _noting_warnings(media_stream.iter_chunks(
            source, fps=fps, keep_channels=True, max_duration=limit), warnings)
        # once the language is fixed, turns go to the recognizer in groups (its encoders run
        # on batches); memory then holds ``workers`` groups of turns, not the call
        group = batch_turns if hasattr(recognizer, "analyze_segments") else 1
        pending: list[tuple[Turn, Any]] = []

        def analyze_group(turn_clips: list[tuple[Turn, Any]]) -> list[Any]:
            assert locked is not None
            return recognizer.analyze_segments(
                [c for _, c in turn_clips], fusion=fusion, labels=label_map,
                language=(locked["code"], locked["probability"]), batch_size=group)

        def take(done: Turn, pred: Any) -> None:
            results.append(_turn_result(done, pred, transcripts, keep_digits))
            if progress is not None:
                progress(len(results), len(turns), done.end, duration)

        def take_group(turn_clips: list[tuple[Turn, Any]], preds: list[Any]) -> None:
            for (done, _), pred in zip(turn_clips, preds):
                take(done, pred)

        # groups overlap on ``workers`` threads (see overlap.py); answers are taken in order
        with InOrder(analyze_group, take_group, workers if group > 1 else 1) as groups:
            for turn, clip in iter_turn_clips(chunks, turns, fps, name=str(source)):
                if should_stop is not None and should_stop():
                    raise InterruptedError("the call analysis was stopped")
                if locked is not None and group > 1:
                    pending.append((turn, clip))
                    if len(pending) >= group:
                        groups.submit(pending)
                        pending = []
                    continue
                known = {} if locked is None else {"language": (locked["code"],
                                                                 locked["probability"])}
                pred = recognizer.analyze_segment(clip, fusion=fusion, labels=label_map, **known)
                if locked is None and language == "auto":
                    locked = _lock_language(pred, turn, len(results) + 1)
                take(turn, pred)
            if pending:
                groups.submit(pending)
            groups.drain()
        for _ in chunks:  # the tail after the last turn: what the decoder says about it
            pass
    warnings = list(dict.fromkeys(warnings))  # the finder's pass and this one see one tail
    for s in {t.speaker for t in results} - set(roles):
        roles[s] = "unknown"  # the role rule named no role for this voice
    return CallAnalysis(duration, results, roles, channels, label_map, locked,
                        {"turns": round(t_found - t0, 3),
                         "emotion": round(time.perf_counter() - t_found, 3)}, warnings,
                        {"audio": "int8 (mer call --fast)"}
                        if getattr(recognizer, "audio_int8", False) else None)


def _noting_warnings(chunks: Iterator[Any], into: list[str]) -> Iterator[Any]:
    """``chunks`` unchanged, their decoder warnings (a damaged tail) added to ``into``."""
    for chunk in chunks:
        into.extend(chunk.warnings)
        yield chunk


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _duration(found: Any, declared: float | None, turns: Sequence[Turn]) -> float:
    """The finder's duration, else the file header's, else the end of the last turn."""
    value = getattr(found, "duration", None)
    if value is None:
        value = declared
    last = max((t.end for t in turns), default=0.0)
    return float(max(value or 0.0, last))


LOCK_PROBABILITY = 0.8  # language ID this sure, on one turn, fixes the call's language
LOCK_MIN_S = 2.0  # ... on a turn at least this long (short turns are where it errs)
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
LANGUAGE_MODES = ("auto", "per-turn")


def check_language(language: str | None) -> str:
    """``language`` as :func:`analyze_call` reads it (``None`` is ``"per-turn"``); anything but
    a mode or a 2-3 letter code is an :class:`InputError`."""
    if language is None:
        return "per-turn"
    if not isinstance(language, str) or not (language in LANGUAGE_MODES
                                             or _LANGUAGE_CODE.match(language)):
        raise InputError(f"language must be auto, per-turn or a language code such as 'en', "
                         f"not {language!r}")
    return language


def _given_language(language: str) -> dict[str, Any] | None:
    """The lock for a language the caller names; ``None`` for a mode."""
    if language in LANGUAGE_MODES:
        return None
    return {"code": language, "probability": 1.0, "from": "given"}


def _lock_language(pred: Any, turn: Turn, n: int) -> dict[str, Any] | None:
    """The call's language from this turn's language ID, when it is long and sure enough."""
    view = pred.modalities.get("text") if hasattr(pred, "modalities") else None
    extras = getattr(view, "extras", None) or {}
    code, prob = extras.get("language"), extras.get("language_probability")
    if not code or prob is None or float(prob) < LOCK_PROBABILITY \
            or turn.end - turn.start < LOCK_MIN_S:
        return None
    return {"code": str(code), "probability": round(float(prob), 3), "from": f"turn {n}"}


def _turn_result(turn: Turn, pred: Any, transcripts: bool, keep_digits: bool) -> TurnAnalysis:
    text = None
    if transcripts:
        view = pred.modalities.get("text")
        text = (view.extras.get("transcript") or "") if view is not None else ""
        text = text if keep_digits else redact_digits(text)
    present = [m for m, v in pred.modalities.items() if v.available]
    return TurnAnalysis(turn.start, turn.end, str(turn.speaker), turn.channel, pred.label,
                        pred.probabilities, pred.confidence, text, pred.business, present,
                        pred.reason)
