"""Calls (issue 16): per-turn analysis, per-speaker numbers, escalation events, the sentiment
score, the satisfaction model, redaction, the JSON/CSV/HTML outputs and ``mer call``.

The turn finder (VAD, diarization) is another module's; here hand-made turns stand in for it,
and a light recognizer judges each turn by the loudness of the audio it was given, so the tests
see which channel and which stretch of the recording reached each turn."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from multimodal_emotion import LABELS, cli
from multimodal_emotion.calls import command
from multimodal_emotion.calls.analysis import TurnAnalysis, analyze_call, redact_digits
from multimodal_emotion.calls.events import EscalationRule, find_events
from multimodal_emotion.calls.report import csv_text, html_report
from multimodal_emotion.calls.satisfaction import (FEATURES, call_features, fit_satisfaction,
                                                   load_model, predict_satisfaction,
                                                   save_model)
from multimodal_emotion.calls.score import VALENCE, sentiment, valence
from multimodal_emotion.calls.stats import call_stats, interruptions
from multimodal_emotion.calls.summary import call_result, summarize
from multimodal_emotion.errors import InputError, MediaError, ModelError
from multimodal_emotion.turns import Turn
from multimodal_emotion.types import ModalityView, Prediction

SR = 16_000


# -- helpers ---------------------------------------------------------------------------------
def probs(**kw: float) -> dict[str, float]:
    """A distribution over LABELS: the given emotions, the rest on neutral."""
    d = {k: 0.0 for k in LABELS}
    d.update(kw)
    d["neutral"] += 1.0 - sum(d.values())
    return d


def turn(start: float, end: float, speaker: str, label: str | None = "neutral",
         text: str = "", **p: float) -> TurnAnalysis:
    pr = None if label is None else probs(**p)
    return TurnAnalysis(start, end, speaker, None, label, pr,
                        None if pr is None else max(pr.values()), text)


def customer(ns: list[float], length: float = 5.0, gap: float = 1.0) -> list[TurnAnalysis]:
    """Customer turns one after another with these P(angry)."""
    out, t = [], 0.0
    for n in ns:
        out.append(turn(t, t + length, "C", "angry" if n >= 0.5 else "neutral", angry=n))
        t += length + gap
    return out


class LoudnessRecognizer:
    """Shaped like EmotionRecognizer for calls: the mean absolute amplitude of the turn's audio
    decides (> 0.4 angry, > 0.2 happy, > 0.01 neutral, else nothing heard); the transcript
    carries the turn's number and the digits of a card."""

    fps, max_duration_s = 4.0, 3600.0

    def __init__(self) -> None:
        self.seen: list[float] = []

    def analyze_segment(self, clip: Any, fusion: str | None = None, labels: Any = None
                        ) -> Prediction:
        amp = float(np.abs(clip.audio).mean()) if clip.audio is not None else 0.0
        self.seen.append(amp)
        if amp <= 0.01:
            views = {m: ModalityView(False, None, None, "no speech", {}) for m in
                     ("audio", "text", "face")}
            return Prediction(None, None, views, "product", clip.duration, reason="no speech")
        label = "angry" if amp > 0.4 else "happy" if amp > 0.2 else "neutral"
        p = probs(**{label: 0.8}) if label != "neutral" else probs()
        if label == "neutral":
            p = probs(happy=0.1)
        views = {"audio": ModalityView(True, label, p, None, {}),
                 "text": ModalityView(True, label, p, None,
                                      {"transcript": f"turn {len(self.seen)} card 4111 1111"}),
                 "face": ModalityView(False, None, None, "no video track", {})}
        return Prediction(label, p, views, "product", clip.duration, confidence=max(p.values()),
                          business=labels.apply(p) if labels is not None else None)


def write_stereo(path: Path, left: list[tuple[float, float, float]],
                 right: list[tuple[float, float, float]], seconds: float) -> Path:
    """A 16 kHz stereo WAV: a 220 Hz tone of amplitude ``a`` over each ``(start, end, a)``."""
    import soundfile as sf

    x = np.zeros((int(seconds * SR), 2), np.float32)
    t = np.arange(len(x)) / SR
    for ch, spans in ((0, left), (1, right)):
        for a, b, amp in spans:
            keep = (t >= a) & (t < b)
            x[keep, ch] = amp * np.sin(2 * np.pi * 220 * t[keep])
    sf.write(str(path), x, SR, subtype="PCM_16")
    return path


# agent (left) speaks calmly; the customer (right) is calm, angry twice, then happy
AGENT = [(0.0, 4.0, 0.15), (9.0, 12.0, 0.15), (23.0, 26.0, 0.15)]
CUSTOMER = [(4.5, 8.5, 0.15), (12.5, 16.5, 0.8), (16.5, 22.0, 0.8), (26.5, 29.5, 0.45),
            (30.0, 33.5, 0.45)]


def stereo_turns() -> list[Turn]:
    return [Turn(a, b, "agent-ch", 0) for a, b, _ in AGENT] + \
        [Turn(a, b, "customer-ch", 1) for a, b, _ in CUSTOMER]


class FakeFinder:
    """Stands in for multimodal_emotion.segmenting: fixed turns, roles by channel."""

    def __init__(self, turns: list[Turn]) -> None:
        self.turns, self.calls = turns, []

    def find(self, source: Any, speakers: int | None = None) -> SimpleNamespace:
        self.calls.append({"source": source, "speakers": speakers})
        return SimpleNamespace(turns=list(self.turns), channels=2,
                               speakers=sorted({t.speaker for t in self.turns}), overtalk=[])

    def roles(self, result: Any, agent_channel: str | None = None, agent: str | None = None
              ) -> dict[str, str]:
        self.calls.append({"agent_channel": agent_channel, "agent": agent})
        agent_ch = 1 if agent_channel == "right" else 0
        return {t.speaker: "agent" if t.channel == agent_ch else "customer" for t in self.turns}


@pytest.fixture(scope="module")
def stereo_call(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stereo(tmp_path_factory.mktemp("calls") / "call.wav", AGENT, CUSTOMER, 35.0)


# -- analysis --------------------------------------------------------------------------------
def test_each_turn_is_analyzed_on_its_own_channel_and_stretch(stereo_call):
    rec, finder = LoudnessRecognizer(), FakeFinder(stereo_turns())
    call = analyze_call(str(stereo_call), rec, find_turns=finder.find,
                        assign_roles=finder.roles, speakers=2, agent_channel="left")
    assert [(t.speaker, t.label) for t in call.turns] == [
        ("agent-ch", "neutral"), ("customer-ch", "neutral"), ("agent-ch", "neutral"),
        ("customer-ch", "angry"), ("customer-ch", "angry"), ("agent-ch", "neutral"),
        ("customer-ch", "happy"), ("customer-ch", "happy")]
    assert call.roles == {"agent-ch": "agent", "customer-ch": "customer"}
    assert call.duration == pytest.approx(35.0, abs=0.01) and call.channels == 2
    assert finder.calls[0]["speakers"] == 2
    assert finder.calls[1] == {"agent_channel": "left", "agent": None}
    # the customer's loud turns did not leak into the agent's channel
    assert max(rec.seen[i] for i in (0, 2, 5)) < 0.2


class LanguageRecognizer(LoudnessRecognizer):
    """Says which language each turn is in (sure only from the second turn on) and records
    the language it was told, if any."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[Any] = []

    def analyze_segment(self, clip: Any, fusion: str | None = None, labels: Any = None,
                        language: Any = None) -> Prediction:
        self.told.append(language)
        pred = super().analyze_segment(clip, fusion, labels)
        sure = 0.6 if len(self.seen) == 1 else 0.95
        pred.modalities["text"].extras.update(language="en", language_probability=sure)
        return pred


class BatchRecognizer(LanguageRecognizer):
    """Also takes turns in groups (``analyze_segments``), recording each group's size."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[int] = []

    def analyze_segments(self, clips: list[Any], fusion: str | None = None, labels: Any = None,
                         language: Any = None, batch_size: int = 8) -> list[Prediction]:
        self.groups.append(len(clips))
        return [self.analyze_segment(c, fusion, labels, language) for c in clips]


def test_turns_go_to_the_recognizer_in_groups_once_the_language_is_fixed(stereo_call):
    """Turn by turn until language ID fixes the language (turn 2), then groups of
    ``batch_turns``; the answers, their order and the progress are those of one at a time."""
    finder = FakeFinder(stereo_turns())
    one, many = BatchRecognizer(), BatchRecognizer()
    done: list[int] = []
    kw = dict(find_turns=finder.find, assign_roles=finder.roles)
    alone = analyze_call(str(stereo_call), one, batch_turns=1, **kw)
    # one worker: this fake numbers transcripts by call order (two workers: see below)
    grouped = analyze_call(str(stereo_call), many, batch_turns=4, workers=1,
                           progress=lambda n, total, s, d: done.append(n), **kw)
    assert one.groups == [] and many.groups == [4, 2]
    assert many.told == one.told
    assert [t.to_dict() for t in grouped.turns] == [t.to_dict() for t in alone.turns]
    assert done == list(range(len(grouped.turns) + 1))
    with pytest.raises(InputError, match="batch_turns"):
        analyze_call(str(stereo_call), many, batch_turns=0, **kw)


class OverlapRecognizer(BatchRecognizer):
    """Answers that depend on the clip only (no call-order numbering), and a record of how
    many groups were inside ``analyze_segments`` at once. With ``wait_for_second`` the first
    group waits (up to 5 s) until a second one has started, so overlap is seen, not hoped for."""

    def __init__(self, wait_for_second: bool = False) -> None:
        super().__init__()
        self.lock, self.inside, self.most = threading.Lock(), 0, 0
        self.second, self.wait = threading.Event(), wait_for_second

    def analyze_segment(self, clip: Any, fusion: str | None = None, labels: Any = None,
                        language: Any = None) -> Prediction:
        pred = LoudnessRecognizer.analyze_segment(self, clip, fusion, labels)
        if pred.modalities["text"].available:
            pred.modalities["text"].extras.update(
                transcript=f"{float(np.abs(clip.audio).mean()):.4f}", language="en",
                language_probability=0.95)
        return pred

    def analyze_segments(self, clips: list[Any], fusion: str | None = None, labels: Any = None,
                         language: Any = None, batch_size: int = 8) -> list[Prediction]:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            first = len(self.groups) == 0
            self.groups.append(len(clips))
            if not first:
                self.second.set()
        if first and self.wait:
            self.second.wait(5.0)
        try:
            return [self.analyze_segment(c, fusion, labels, language) for c in clips]
        finally:
            with self.lock:
                self.inside -= 1


def test_groups_of_turns_overlap_on_workers_and_keep_their_order(stereo_call):
    """With two workers two groups are inside the recognizer at once (never more), and the
    turns, their order, the progress and the answers are those of one worker."""
    finder = FakeFinder(stereo_turns())
    kw = dict(find_turns=finder.find, assign_roles=finder.roles, batch_turns=2, language="en")
    one = OverlapRecognizer()
    alone = analyze_call(str(stereo_call), one, workers=1, **kw)
    for workers in (2, 3):
        rec, done = OverlapRecognizer(wait_for_second=True), []
        both = analyze_call(str(stereo_call), rec, workers=workers,
                            progress=lambda n, total, s, d: done.append(n), **kw)
        assert [t.to_dict() for t in both.turns] == [t.to_dict() for t in alone.turns]
        assert done == list(range(len(alone.turns) + 1))
        assert 2 <= rec.most <= workers
        assert sorted(rec.groups) == sorted(one.groups) == [2, 2, 2, 2]
    assert one.most == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("mer-turns")]
    with pytest.raises(InputError, match="workers"):
        analyze_call(str(stereo_call), one, workers=0, **kw)


def test_a_call_stopped_with_groups_in_flight_leaves_nothing_running(stereo_call):
    """A job stopped (the API's DELETE) while groups are in flight: the stop reaches the
    caller, and by then every started group has finished and no worker thread is left."""
    finder = FakeFinder(stereo_turns())
    rec, asked = OverlapRecognizer(), []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 5  # after five turns: two groups of two submitted

    with pytest.raises(InterruptedError):
        analyze_call(str(stereo_call), rec, find_turns=finder.find, assign_roles=finder.roles,
                     batch_turns=2, language="en", workers=2, should_stop=stop)
    assert rec.groups and rec.inside == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("mer-turns")]


def test_the_calls_language_is_detected_once_then_kept(stereo_call):
    """Language ID runs per turn only until a long turn names a language surely; the call's
    language is then handed to every later turn (and reported); a given code holds from the
    start; per-turn never fixes it."""
    finder = FakeFinder(stereo_turns())
    rec = LanguageRecognizer()
    call = analyze_call(str(stereo_call), rec, find_turns=finder.find, assign_roles=finder.roles)
    assert rec.told[:2] == [None, None] and set(rec.told[2:]) == {("en", 0.95)}
    assert call.language == {"code": "en", "probability": 0.95, "from": "turn 2"}
    assert call_result(call)["language"] == call.language
    rec = LanguageRecognizer()
    call = analyze_call(str(stereo_call), rec, find_turns=finder.find, assign_roles=finder.roles,
                        language="de")
    assert set(rec.told) == {("de", 1.0)} and call.language["from"] == "given"
    rec = LanguageRecognizer()
    call = analyze_call(str(stereo_call), rec, find_turns=finder.find, assign_roles=finder.roles,
                        language=None)
    assert set(rec.told) == {None} and call.language is None
    with pytest.raises(InputError, match="language code"):
        analyze_call(str(stereo_call), rec, find_turns=finder.find, assign_roles=finder.roles,
                     language="english please")


def test_progress_is_reported_after_every_turn_and_stop_is_honoured(stereo_call):
    finder, seen = FakeFinder(stereo_turns()), []
    analyze_call(str(stereo_call), LoudnessRecognizer(), find_turns=finder.find,
                 assign_roles=finder.roles, progress=lambda *a: seen.append(a))
    assert [s[0] for s in seen] == list(range(9)) and all(s[1] == 8 for s in seen)
    assert seen[-1][2] == pytest.approx(33.5)
    finding = []

    def find_with_progress(source, speakers=None, progress=None):
        progress(17.5, 35.0)
        return finder.find(source, speakers)

    analyze_call(str(stereo_call), LoudnessRecognizer(), find_turns=find_with_progress,
                 assign_roles=finder.roles, progress=lambda *a: finding.append(a))
    assert finding[0] == (0, 0, 17.5, 35.0) and finding[1][:2] == (0, 8)
    with pytest.raises(InterruptedError):
        analyze_call(str(stereo_call), LoudnessRecognizer(), find_turns=finder.find,
                     assign_roles=finder.roles, should_stop=lambda: True)


def test_unreadable_media_fails_before_the_turn_finder_runs(tmp_path, corrupt_file):
    finder = FakeFinder([])
    for bad in (corrupt_file, tmp_path / "missing.wav"):
        with pytest.raises(MediaError):
            analyze_call(str(bad), LoudnessRecognizer(), find_turns=finder.find,
                         assign_roles=finder.roles)
    assert finder.calls == []
    with pytest.raises(InputError, match="agent channel"):
        analyze_call(str(corrupt_file), LoudnessRecognizer(), find_turns=finder.find,
                     assign_roles=finder.roles, agent_channel="middle")


def test_digits_are_redacted_by_default_kept_on_request_and_words_dropped_on_request(
        stereo_call):
    finder = FakeFinder(stereo_turns()[:1])
    kw = dict(find_turns=finder.find, assign_roles=finder.roles)
    default = analyze_call(str(stereo_call), LoudnessRecognizer(), **kw)
    assert default.turns[0].transcript == "turn # card #### ####"
    kept = analyze_call(str(stereo_call), LoudnessRecognizer(), keep_digits=True, **kw)
    assert kept.turns[0].transcript == "turn 1 card 4111 1111"
    none = analyze_call(str(stereo_call), LoudnessRecognizer(), transcripts=False, **kw)
    assert none.turns[0].transcript is None
    assert "4111" not in json.dumps(call_result(default))


def test_redaction_covers_spoken_numbers_but_not_ordinary_words():
    assert redact_digits("my card is four one one one, thanks") == "my card is ###, thanks"
    assert redact_digits("I paid $42.50 on 3/4") == "I paid $##.## on #/#"
    assert redact_digits("one moment, I have two questions") == \
        "one moment, I have two questions"


# -- per-speaker numbers ---------------------------------------------------------------------
def test_talk_time_silence_overtalk_and_shares():
    turns = [turn(0, 10, "A", "happy", happy=0.8), turn(8, 12, "B", "angry", angry=0.9),
             turn(15, 20, "A", "neutral"), turn(16, 17, "A", None)]
    st = call_stats(turns, 25.0, {"A": "agent", "B": "customer"})
    a, b = st.speakers["A"], st.speakers["B"]
    assert a.talk_s == pytest.approx(15.0) and b.talk_s == pytest.approx(4.0)
    assert a.overtalk_s == pytest.approx(2.0) == b.overtalk_s == st.overtalk_s
    assert st.silence_s == pytest.approx(3.0 + 5.0) and st.longest_silence_s == 5.0
    assert a.silent_s == pytest.approx(10.0)
    assert a.shares == pytest.approx({"happy": 10 / 16, "neutral": 5 / 16, "none": 1 / 16})
    assert sum(b.shares.values()) == pytest.approx(1.0)
    assert [x[2] for x in a.timeline] == ["happy", "neutral", None]


def test_interruption_needs_the_other_to_start_inside_and_the_first_to_yield_soon():
    taken = [turn(0, 10, "A"), turn(9, 15, "B")]          # A stops 1 s after B starts
    talked_on = [turn(0, 10, "A"), turn(5, 15, "B")]      # A goes on 5 s: overtalk only
    backchannel = [turn(0, 10, "A"), turn(4, 4.5, "B")]   # "mhm" inside A's turn
    after = [turn(0, 10, "A"), turn(10.5, 15, "B")]       # a normal change of turn
    assert [(a.speaker, b.speaker) for a, b in interruptions(taken)] == [("A", "B")]
    assert interruptions(talked_on) == [] and interruptions(backchannel) == []
    assert interruptions(after) == []
    assert interruptions(talked_on, yield_s=6.0) != []
    st = call_stats(taken, 15, {})
    assert (st.speakers["B"].interruptions, st.speakers["A"].interrupted) == (1, 1)
    assert (st.speakers["A"].interruptions, st.speakers["B"].interrupted) == (0, 0)


# -- events ----------------------------------------------------------------------------------
def test_sustained_anger_escalates_and_calm_turns_recover():
    ev = find_events(customer([0.1, 0.7, 0.8, 0.9, 0.2, 0.1, 0.1]), ["C"])
    assert [e["type"] for e in ev] == ["escalation", "recovery"]
    esc, rec = ev
    assert (esc["start"], esc["end"], esc["trigger"]) == (6.0, 23.0, "sustained")
    assert esc["peak"] == pytest.approx(0.9) and esc["recovered"] is True
    assert (rec["start"], rec["end"]) == (24.0, 35.0)


def test_one_angry_turn_is_not_an_escalation_unless_it_is_long():
    assert find_events(customer([0.1, 0.8, 0.1, 0.1]), ["C"]) == []
    long = [turn(0, 20, "C", "angry", angry=0.8), turn(21, 25, "C", angry=0.05)]
    ev = find_events(long, ["C"])
    assert ev[0]["trigger"] == "sustained" and ev[0]["recovered"] is False
    strict = EscalationRule(min_seconds=30.0)
    assert find_events(long, ["C"], strict) == []


def test_rising_anger_escalates_before_it_crosses_the_threshold_for_long():
    ev = find_events(customer([0.05, 0.15, 0.3, 0.45, 0.1, 0.1]), ["C"])
    assert ev[0]["trigger"] == "rising" and ev[0]["start"] == 6.0
    assert [e["type"] for e in ev] == ["escalation", "recovery"]
    # the same rise with no dip below the recovery threshold stays open to the end
    ev = find_events(customer([0.05, 0.15, 0.3, 0.45, 0.35]), ["C"])
    assert ev[-1]["type"] == "escalation" and ev[-1]["recovered"] is False
    assert ev[-1]["end"] == 29.0


def test_hysteresis_one_calm_turn_does_not_end_an_escalation():
    ev = find_events(customer([0.8, 0.8, 0.1, 0.8, 0.1, 0.1]), ["C"])
    assert [e["type"] for e in ev] == ["escalation", "recovery"]
    assert ev[0]["end"] == 23.0  # the last angry turn, after the single calm one


def test_only_customers_are_watched_and_the_rule_can_use_a_business_category():
    agent_angry = [turn(0, 5, "A", "angry", angry=0.9), turn(6, 10, "A", "angry", angry=0.9)]
    events, summary = summarize(agent_angry + customer([0.1, 0.1]), 20, {"A": "agent",
                                                                         "C": "customer"},
                                ["A", "C"])
    assert events == [] and summary["customers"] == ["C"]
    turns = customer([0.1, 0.1, 0.1])
    for t, f in zip(turns, (0.2, 0.7, 0.8)):
        t.business = {"scheme": "s", "label": "x", "probabilities": {"frustrated": f,
                                                                     "fine": 1 - f}}
    rule = EscalationRule(category="frustrated")
    assert [e["type"] for e in find_events(turns, ["C"], rule)] == ["escalation"]
    with pytest.raises(InputError, match="category"):
        find_events(turns, ["C"], EscalationRule(category="angry-ish"))


def test_rule_checks_its_numbers():
    with pytest.raises(InputError):
        EscalationRule(threshold=1.5)
    with pytest.raises(InputError):
        EscalationRule(recover_threshold=0.9)
    with pytest.raises(InputError, match="unknown"):
        EscalationRule.from_dict({"treshold": 0.4})
    assert EscalationRule.from_dict(EscalationRule().to_dict()) == EscalationRule()


# -- score -----------------------------------------------------------------------------------
def test_valence_is_the_documented_weighted_sum():
    assert valence(probs(happy=1.0)) == 1.0 and valence(probs(angry=1.0)) == -1.0
    assert valence(probs()) == 0.0
    assert valence(probs(sad=0.5, happy=0.5)) == pytest.approx(0.5 * VALENCE["sad"] + 0.5)


def test_score_weights_the_end_and_the_trend_follows_the_direction():
    bad_then_good = [turn(0, 10, "C", angry=1.0), turn(10, 20, "C", happy=1.0)]
    good_then_bad = [turn(0, 10, "C", happy=1.0), turn(10, 20, "C", angry=1.0)]
    up, down = sentiment(bad_then_good, 20.0), sentiment(good_then_bad, 20.0)
    # by hand: w = 10 * 4 ** (midpoint / 20); score = (w2 - w1) / (w1 + w2)
    w1, w2 = 10 * 4 ** 0.25, 10 * 4 ** 0.75
    assert up.score == pytest.approx((w2 - w1) / (w1 + w2)) == pytest.approx(1 / 3)
    assert down.score == pytest.approx(-up.score)
    assert up.trend == pytest.approx(4.0) and down.trend == pytest.approx(-4.0)
    assert (up.start, up.end) == (-1.0, 1.0)
    flat = sentiment(bad_then_good, 20.0, end_weight=1.0)
    assert flat.score == pytest.approx(0.0)
    assert sentiment([], 20.0).score is None


# -- the JSON, CSV and HTML ------------------------------------------------------------------
def analyzed_call(stereo_call: Path, **kw: Any) -> dict[str, Any]:
    finder = FakeFinder(stereo_turns())
    call = analyze_call(str(stereo_call), LoudnessRecognizer(), find_turns=finder.find,
                        assign_roles=finder.roles, **kw)
    return call_result(call, path="call.wav")


def test_call_json_has_the_documented_shape(stereo_call):
    r = json.loads(json.dumps(analyzed_call(stereo_call)))
    assert {"duration", "speakers", "turns", "events", "summary"} <= set(r)
    assert r["speakers"] == [
        {"id": "agent-ch", "role": "agent", "channel": 0, "talk_time": 10.0},
        {"id": "customer-ch", "role": "customer", "channel": 1, "talk_time": 20.0}]
    t = r["turns"][3]
    assert {"speaker", "channel", "start", "end", "label", "probabilities", "confidence",
            "transcript"} <= set(t)
    assert (t["speaker"], t["channel"], t["start"], t["label"]) == ("customer-ch", 1, 12.5,
                                                                    "angry")
    assert [(e["type"], e["speaker"], e["start"]) for e in r["events"]] == [
        ("escalation", "customer-ch", 12.5), ("recovery", "customer-ch", 26.5)]
    s = r["summary"]
    assert s["sentiment"]["trend"] > 0 and s["escalations"] == 1
    assert "satisfaction" not in s  # never without a fitted model
    assert s["speakers"]["customer-ch"]["shares"]["angry"] == pytest.approx(9.5 / 20, abs=1e-3)


def test_csv_has_one_row_per_turn_and_no_formula_cells(stereo_call):
    r = analyzed_call(stereo_call)
    r["turns"][0]["transcript"] = "=HYPERLINK(\"x\")"
    rows = list(csv.DictReader(io.StringIO(csv_text(r))))
    assert len(rows) == len(r["turns"]) == 8
    assert rows[3]["label"] == "angry" and rows[3]["role"] == "customer"
    assert float(rows[3]["p_angry"]) == pytest.approx(0.8)
    assert rows[0]["transcript"].startswith("'=")


def test_html_report_is_self_contained_and_escapes_what_was_said(stereo_call):
    r = analyzed_call(stereo_call, labels={"labels": {"fine": ["neutral", "happy", "surprised"],
                                                      "upset": ["angry", "sad", "fearful",
                                                                "disgust"]}})
    assert r["turns"][3]["business"]["label"] == "upset"
    r["turns"][1]["transcript"] = "<script>alert(1)</script>"
    page = html_report(r)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<svg" in page and page.count("<rect") >= len(r["turns"])
    assert not re.search(r"(src|href)=\"?(https?:)?//", page)  # nothing loaded from outside
    assert "escalation" in page and "agent-ch" in page and "Satisfaction" not in page
    assert "(upset)" in page and "(fine)" in page


# -- satisfaction ----------------------------------------------------------------------------
def synthetic_calls(n: int, seed: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Calls whose customer ends happy (satisfied) or angry (not), with noise: the features
    carry the label, as the test means them to."""
    rng = np.random.default_rng(seed)
    results, labels = [], []
    for i in range(n):
        sat = i % 2 == 0
        turns = []
        for k in range(8):
            late = k >= 4
            angry = float(np.clip(rng.normal(0.2 if sat or not late else 0.7, 0.15), 0, 0.95))
            happy = float(np.clip(rng.normal(0.5 if sat and late else 0.1, 0.1), 0,
                                  0.95 - angry))
            spk = "C" if k % 2 else "A"
            turns.append(turn(k * 10, k * 10 + 9, spk, "neutral", angry=angry, happy=happy))
        results.append(call_result(SimpleNamespace(
            duration=80.0, turns=turns, roles={"A": "agent", "C": "customer"}, channels=None,
            label_map=None, timings_s={}, warnings=[], speakers=["A", "C"])))
        labels.append("yes" if sat else "no")
    return results, labels


def test_features_are_the_documented_list():
    results, _ = synthetic_calls(2, 0)
    feats = call_features(results[0])
    assert list(feats) == list(FEATURES) and all(np.isfinite(list(feats.values())))


def test_fit_cross_validates_saves_and_applies(tmp_path):
    results, labels = synthetic_calls(40, 0)
    model = fit_satisfaction(results, labels, folds=5)
    cv = model["cv"]
    assert model["positive"] == "yes" and cv["folds"] == 5 and len(cv["per_fold"]) == 5
    assert cv["auc_mean"] > 0.9 and cv["accuracy_mean"] > cv["majority_accuracy"]
    save_model(model, tmp_path / "m.json")
    loaded = load_model(tmp_path / "m.json")
    test, test_labels = synthetic_calls(10, 1)
    preds = [predict_satisfaction(loaded, r) for r in test]
    assert all(0 <= p["probability"] <= 1 for p in preds)
    assert sum(p["label"] == y for p, y in zip(preds, test_labels)) >= 9


def test_fit_refuses_what_cannot_be_cross_validated(tmp_path):
    results, labels = synthetic_calls(6, 0)
    with pytest.raises(InputError, match="two values"):
        fit_satisfaction(results, ["yes"] * 6)
    with pytest.raises(InputError, match="at least two"):
        fit_satisfaction(results, ["yes"] * 5 + ["no"])
    with pytest.raises(InputError, match="--positive"):
        fit_satisfaction(results, ["gold", "lead"] * 3)
    assert fit_satisfaction(results, ["gold", "lead"] * 3, positive="gold")["cv"]["folds"] == 3
    (tmp_path / "bad.json").write_text('{"kind": "something else"}')
    with pytest.raises(InputError, match="not a satisfaction model"):
        load_model(tmp_path / "bad.json")


# -- mer call --------------------------------------------------------------------------------
@pytest.fixture
def fake_cli(monkeypatch):
    finder = FakeFinder(stereo_turns())
    monkeypatch.setattr(command, "load_recognizer", lambda args: LoudnessRecognizer())
    monkeypatch.setattr(command, "turn_finder", lambda: (finder.find, finder.roles))
    return finder


def test_mer_call_json_report_and_csv(fake_cli, stereo_call, tmp_path, capsys):
    rc = cli.main(["call", str(stereo_call), "--json", "--report", str(tmp_path / "c.html"),
                   "--csv", str(tmp_path / "c.csv"), "--agent-channel", "right"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    r = json.loads(out.out)
    assert [s["role"] for s in r["speakers"]] == ["customer", "agent"]  # channel 1 is agent
    assert r["path"] == str(stereo_call) and len(r["turns"]) == 8
    assert (tmp_path / "c.html").read_text().startswith("<!doctype html>")
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 9
    assert "\r" not in out.err  # no progress bar when stderr is not a terminal
    assert "precision" not in r  # float32, the default, is not marked


def test_mer_call_fast_asks_for_int8_and_marks_the_result(monkeypatch, stereo_call, capsys):
    finder = FakeFinder(stereo_turns())
    asked = []

    def load(args):  # the recognizer --fast asks for says so, as EmotionRecognizer does
        asked.append(args.fast)
        rec = LoudnessRecognizer()
        rec.audio_int8 = args.fast
        return rec

    monkeypatch.setattr(command, "load_recognizer", load)
    monkeypatch.setattr(command, "turn_finder", lambda: (finder.find, finder.roles))
    assert cli.main(["call", str(stereo_call), "--json", "--fast"]) == 0
    assert asked == [True]
    assert json.loads(capsys.readouterr().out)["precision"] == {"audio": "int8 (mer call --fast)"}


def test_mer_call_text_output_and_privacy_flags(fake_cli, stereo_call, capsys):
    assert cli.main(["call", str(stereo_call)]) == 0
    text = capsys.readouterr().out
    assert "customer sentiment" in text and "escalation" in text
    assert cli.main(["call", str(stereo_call), "--json", "--no-transcript"]) == 0
    assert all(t["transcript"] is None for t in json.loads(capsys.readouterr().out)["turns"])
    assert cli.main(["call", str(stereo_call), "--json", "--keep-digits"]) == 0
    assert "4111" in capsys.readouterr().out


def test_mer_call_without_a_turn_finder_says_so_before_loading_models(monkeypatch, stereo_call,
                                                                      capsys):
    import sys

    import multimodal_emotion

    monkeypatch.setitem(sys.modules, "multimodal_emotion.segmenting", None)  # import fails
    monkeypatch.delattr(multimodal_emotion, "segmenting", raising=False)
    loaded = []
    monkeypatch.setattr(command, "load_recognizer", lambda args: loaded.append(1))
    assert cli.main(["call", str(stereo_call)]) == 4
    assert "turn finder" in capsys.readouterr().err and loaded == []


def test_mer_call_bad_input_gets_mer_analyzes_errors(fake_cli, corrupt_file, tmp_path, capsys):
    assert cli.main(["call", str(corrupt_file), "--json"]) == 3
    out = capsys.readouterr()
    assert json.loads(out.out)["error"] == "unreadable_media" and out.err.startswith("error: ")
    assert cli.main(["call", str(tmp_path / "nope.wav")]) == 3
    assert "no such file" in capsys.readouterr().err
    for bad in (["--agent-channel", "middle"], ["--agent-channel", "left", "--agent", "first"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(["call", str(corrupt_file), *bad])
        assert exc.value.code == 2
    (tmp_path / "rule.yaml").write_text("threshold: 7\n")
    assert cli.main(["call", str(corrupt_file), "--rule", str(tmp_path / "rule.yaml")]) == 2
    assert "threshold" in capsys.readouterr().err


def test_fit_satisfaction_command_then_apply(fake_cli, stereo_call, tmp_path, capsys):
    results, labels = synthetic_calls(12, 0)
    rows = ["path,satisfaction"]
    for i, (r, y) in enumerate(zip(results, labels)):
        (tmp_path / f"c{i}.json").write_text(json.dumps(r))
        rows.append(f"c{i}.json,{y}")
    rows.append(f"{stereo_call},yes")  # media: analyzed with the same options
    (tmp_path / "labelled.csv").write_text("\n".join(rows) + "\n")
    model = tmp_path / "model.json"
    assert cli.main(["call", "fit-satisfaction", "--calls", str(tmp_path / "labelled.csv"),
                     "--out", str(model), "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "3-fold" in out and "mean AUC" in out and model.is_file()
    assert "13 calls (7 yes)" in out
    assert cli.main(["call", str(stereo_call), "--json", "--satisfaction", str(model)]) == 0
    sat = json.loads(capsys.readouterr().out)["summary"]["satisfaction"]
    assert 0 <= sat["probability"] <= 1 and sat["label"] in ("yes", "no")
    assert sat["model"]["n_calls"] == 13


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen(text: str) -> list[str]:
    """What a terminal shows of ``text``: each ``\\r`` writes over its line from the start."""
    lines = []
    for raw in text.split("\n"):
        line = ""
        for part in raw.split("\r"):
            line = part + line[len(part):]
        lines.append(line.rstrip())
    return lines


def test_progress_bar_draws_only_on_a_terminal():
    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = command.ProgressBar(stream, width=10)
        bar(0, 0, 300.0, 600.0)
        bar(3, 6, 75.0, 600.0)
        bar.close()
        bar.close()  # once is enough
    assert tty.getvalue().startswith("\r[#####-----] finding turns 5:00 / 10:00")
    assert "\r[#####-----] 3/6 turns 1:15 / 10:00" in tty.getvalue()
    assert tty.getvalue().endswith("\n") and tty.getvalue().count("\n") == 1
    assert pipe.getvalue() == ""
    # one bar on screen: the shorter turns line leaves nothing of the finder's line behind
    last = tty.getvalue().split("\r")[-1].rstrip()
    assert last.startswith("[#####-----] 3/6 turns 1:15 / 10:00  ") and last.endswith(" s")
    assert screen(tty.getvalue()) == [last, ""]


def test_mer_call_ends_its_bar_before_an_error_message(fake_cli, stereo_call, monkeypatch):
    class FailingRecognizer(LoudnessRecognizer):
        def analyze_segment(self, clip: Any, fusion: str | None = None, labels: Any = None
                            ) -> Prediction:
            if len(self.seen) == 3:
                raise ModelError("the text expert stopped answering")
            return super().analyze_segment(clip, fusion, labels)

    monkeypatch.setattr(command, "load_recognizer", lambda args: FailingRecognizer())
    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert cli.main(["call", str(stereo_call)]) == 4
    shown = screen(tty.getvalue())
    assert shown[0].startswith("[") and "3/8 turns" in shown[0]  # the bar, then on a new line:
    assert shown[1:] == ["error: the text expert stopped answering", ""]


def test_a_damaged_tail_is_reported_and_turns_past_it_have_no_answer(stereo_call, tmp_path):
    flac = write_stereo(tmp_path / "call.flac", AGENT, CUSTOMER, 35.0)
    cut = tmp_path / "cut.flac"
    data = flac.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # STREAMINFO still says 35 s
    finder = FakeFinder(stereo_turns())
    call = analyze_call(str(cut), LoudnessRecognizer(), find_turns=finder.find,
                        assign_roles=finder.roles)
    assert any("could be decoded" in w for w in call.warnings)
    assert call.turns[3].label == "angry"  # 12.5-16.5 s: decoded
    assert call.turns[-1].label is None and call.turns[-1].reason  # 30-33.5 s: gone
    assert call_result(call)["warnings"] == call.warnings
