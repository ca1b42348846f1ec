"""Finding turns: Silero VAD streamed chunk by chunk, stereo channels as speakers with overtalk,
mono mixes diarized by clustering voices, roles, and the DER used by bench/calls.py.

Stereo and silence tests use eSpeak NG speech (always available); the diarization tests use two
real RAVDESS actors of different sex and skip where the shared data is absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from multimodal_emotion import demo
from multimodal_emotion.errors import InputError, MediaError
from multimodal_emotion.segmenting import TurnsResult, assign_roles, find_turns
from multimodal_emotion.segmenting.find import split_long
from multimodal_emotion.segmenting.scoring import (as_segments, diarization_error_rate,
                                                   match_turns)
from multimodal_emotion.segmenting.vad import FRAME, StreamingVAD
from multimodal_emotion.turns import Turn

SR = 16_000


def _speech(text: str, voice: str) -> np.ndarray:
    wav, sr = demo.synthesize_speech(text, voice=voice)
    wav = demo._resample(wav, sr, SR)
    nz = np.flatnonzero(np.abs(wav) > 0.01)  # eSpeak pads with a little silence: trim it
    return wav[nz[0]:nz[-1] + 1]


def _place(total_s: float, items: list[tuple[float, np.ndarray, int]], channels: int = 2
           ) -> tuple[np.ndarray, list[tuple[float, float, int]]]:
    """Audio ``[n, channels]`` with each waveform at its start time on its channel, and the
    true (start, end, channel) of each."""
    out = np.zeros((int(total_s * SR), channels), np.float32)
    truth = []
    for start, wav, ch in items:
        i = int(start * SR)
        out[i:i + wav.size, ch] += wav
        truth.append((start, start + wav.size / SR, ch))
    return out, truth


@pytest.fixture(scope="module")
def stereo_call(tmp_path_factory) -> tuple[Path, list[tuple[float, float, int]]]:
    """12 s: left speaks, right answers cutting in 0.5 s before left ends, left again after a
    1.2 s pause."""
    a = _speech("Thank you for calling, how can I help you today?", "en-us")
    b = _speech("My order never arrived and nobody answers my emails.", "en-us+f3")
    c = _speech("I am sorry to hear that, let me check.", "en-us")
    t_b = 0.5 + a.size / SR - 0.5
    t_c = t_b + b.size / SR + 1.2
    audio, truth = _place(t_c + c.size / SR + 1.0, [(0.5, a, 0), (t_b, b, 1), (t_c, c, 0)])
    path = tmp_path_factory.mktemp("seg") / "stereo.flac"
    sf.write(path, audio, SR)
    return path, truth


def test_streaming_vad_scores_equal_the_whole_array_call():
    from faster_whisper.vad import get_vad_model

    wav = np.concatenate([np.zeros(SR // 3, np.float32), _speech("one two three", "en-us"),
                          np.zeros(SR // 2, np.float32)])
    wav = wav[:wav.size // FRAME * FRAME]
    whole = get_vad_model()(wav.copy()).ravel()
    vad = StreamingVAD()
    for piece in np.array_split(wav, [1000, 1001, 9000, 20000]):  # odd sizes, one of 1 sample
        vad.feed(piece)
    vad.finish()
    assert vad.probs.shape == whole.shape
    np.testing.assert_allclose(vad.probs, whole, atol=1e-5)
    assert whole.max() > 0.9 and whole[:5].max() < 0.2  # speech found, leading silence not


def test_stereo_gives_one_speaker_per_channel_and_the_overtalk(stereo_call):
    path, truth = stereo_call
    seen: list[float] = []
    r = find_turns(path, progress=lambda done, total: seen.append(done))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(r.duration, abs=0.05)
    assert r.channels == 2 and r.speakers == ["left", "right"]
    assert [(t.speaker, t.channel) for t in r.turns] == [("left", 0), ("right", 1), ("left", 0)]
    for t, (a, b, ch) in zip(r.turns, truth):
        assert abs(t.start - a) < 0.3 and abs(t.end - b) < 0.3, (t, a, b)
    assert len(r.overtalk) == 1
    lo, hi = r.overtalk[0]
    assert abs(lo - truth[1][0]) < 0.3 and abs(hi - truth[0][1]) < 0.3
    assert r.centroids == {} and r.speaker_count == "channels"
    d = json.loads(json.dumps(r.to_dict()))
    assert [t["channel"] for t in d["turns"]] == [0, 1, 0] and len(d["overtalk"]) == 1
    assert r.talk_time()["right"] == pytest.approx(truth[1][1] - truth[1][0], abs=0.3)


def test_channels_scored_side_by_side_give_the_turns_of_one_channel_after_the_other(
        stereo_call):
    """The right channel is scored on a second thread while the left is scored on the caller's:
    the turns and overtalk are those of each channel's VAD fed alone, and no thread is left."""
    import threading

    from multimodal_emotion.segmenting.find import _stereo_result
    from multimodal_emotion.segmenting.vad import VadConfig

    path, _ = stereo_call
    audio, _ = sf.read(path, dtype="float32")
    alone = [StreamingVAD(), StreamingVAD()]
    for c in (0, 1):
        for piece in np.array_split(audio[:, c], 7):
            alone[c].feed(piece)
        alone[c].finish()
    want = _stereo_result(alone, VadConfig(), 30.0, [])
    got = find_turns(path, chunk_s=1.0)  # many chunks: many hand-overs between the threads
    assert got.turns == want.turns and got.overtalk == want.overtalk
    assert len(got.turns) == 3
    assert not [t for t in threading.enumerate() if t.name.startswith("mer-vad")]


def test_mono_pass_scoring_beside_embedding_equals_one_thread(stereo_call):
    """The mono pass scores each chunk on a second thread while the last chunk's windows are
    embedded: its scores and speaker windows equal those of one thread doing both in turn."""
    import threading

    from multimodal_emotion.media_stream import iter_chunks
    from multimodal_emotion.segmenting.diarize import WindowEmbedder
    from multimodal_emotion.segmenting.find import mono_pass
    from multimodal_emotion.segmenting.vad import VadConfig

    path, _ = stereo_call
    vad, embedder = StreamingVAD(), WindowEmbedder(VadConfig())
    for chunk in iter_chunks(path, chunk_s=1.0):  # the decoder's own mix, one thread
        embedder.add(*vad.feed(chunk.audio))
    embedder.add(*vad.finish())
    want = embedder.finish()
    probs, duration, got = mono_pass(iter_chunks(path, chunk_s=1.0), VadConfig(), [])
    np.testing.assert_array_equal(probs, vad.probs)
    assert duration == pytest.approx(vad.duration) and len(got.vectors) >= 5
    np.testing.assert_array_equal(got.spans, want.spans)
    np.testing.assert_array_equal(got.piece, want.piece)
    np.testing.assert_allclose(got.vectors, want.vectors, atol=1e-6)
    assert not [t for t in threading.enumerate() if t.name.startswith("mer-vad")]


def test_long_turns_are_split_below_the_limit(stereo_call):
    path, _ = stereo_call
    r = find_turns(path, max_turn_s=1.5)
    assert max(t.duration for t in r.turns) <= 1.5 + 1e-6
    assert len(r.turns) > 3
    pieces = split_long(0.0, 70.0, np.full(int(70 / 0.032), 0.9, np.float32), 30.0)
    assert len(pieces) == 3 and pieces[0][0] == 0.0 and pieces[-1][1] == 70.0
    assert all(b - a <= 30.0 for a, b in pieces)


def test_silent_file_has_no_turns(tmp_path):
    r = find_turns(demo.make_silent_flac(tmp_path / "silence.flac", 20))
    assert r.turns == [] and r.speakers == [] and r.overtalk == []
    assert r.duration == pytest.approx(20.0, abs=0.05)
    assert assign_roles(r) == {}
    sf.write(tmp_path / "silence2.flac", np.zeros((SR * 3, 2), np.float32), SR)
    r2 = find_turns(tmp_path / "silence2.flac")
    assert r2.turns == [] and r2.channels == 2


def test_bad_input_gets_a_clear_error(tmp_path, stereo_call):
    with pytest.raises(InputError, match="speakers"):
        find_turns(stereo_call[0], speakers=0)
    with pytest.raises(InputError, match="max_turn_s"):
        find_turns(stereo_call[0], max_turn_s=0.1)
    with pytest.raises(InputError, match="mode"):
        find_turns(stereo_call[0], mode="quad")
    mono = tmp_path / "mono.flac"
    sf.write(mono, np.zeros(SR, np.float32), SR)
    with pytest.raises(InputError, match="two audio channels"):
        find_turns(mono, mode="stereo")
    with pytest.raises(MediaError, match="no such file"):
        find_turns(tmp_path / "missing.wav")
    video = demo.make_demo_clip(tmp_path / "mute.mp4", seconds=1.0, audio=False, fps=5,
                                size=(64, 48))
    with pytest.raises(MediaError, match="no audio track"):
        find_turns(video)


# -- mono: clustering voices (real speech) ---------------------------------------------------
def _ravdess(root: Path, actor: int, emotion: str, n: int) -> list[np.ndarray]:
    import librosa

    files = sorted((root / "ravdess_speech" / f"Actor_{actor:02d}").glob(f"03-01-{emotion}-*"))
    out = []
    for f in files[:n]:
        wav, _ = sf.read(f, dtype="float32")
        out.append(librosa.effects.trim(wav, top_db=30)[0])
    return out


@pytest.fixture(scope="module")
def mono_call(tmp_path_factory, data_root) -> tuple[Path, list[tuple[float, float, str]]]:
    """Two RAVDESS actors (13 male, 14 female) taking eight turns, 0.6-0.9 s apart: the mono
    mix and the true (start, end, speaker)."""
    voices = {"A": _ravdess(data_root, 13, "02", 4), "B": _ravdess(data_root, 14, "05", 4)}
    items, t = [], 0.4
    for i in range(8):
        who = "AB"[i % 2]
        wav = voices[who][i // 2]
        items.append((t, wav, 0, who))
        t += wav.size / SR + (0.6 if i % 3 else 0.9)
    audio, spans = _place(t + 0.5, [(s, w, c) for s, w, c, _ in items], channels=1)
    truth = [(a, b, who) for (a, b, _), (*_, who) in zip(spans, items)]
    path = tmp_path_factory.mktemp("seg") / "mono.flac"
    sf.write(path, audio[:, 0], SR)
    return path, truth


@pytest.mark.data
@pytest.mark.parametrize("speakers", [2, None])
def test_mono_mix_is_diarized_into_two_speakers(mono_call, speakers):
    path, truth = mono_call
    r = find_turns(path, speakers=speakers)
    assert r.channels == 1 and r.speakers == ["S1", "S2"]
    assert r.speaker_count == ("given" if speakers else "estimated")
    assert r.turns[0].speaker == "S1" and all(t.channel is None for t in r.turns)
    der = diarization_error_rate(truth, as_segments(r.turns), collar=0.25)
    assert der.der < 0.10, der
    assert der.mapping == {"S1": "A", "S2": "B"}
    m = match_turns(truth, as_segments(r.turns), mapping=der.mapping)
    assert m.recall >= 7 / 8 and m.start_error < 0.3 and m.end_error < 0.3, m
    assert set(r.centroids) == {"S1", "S2"}
    a, b = r.centroids["S1"], r.centroids["S2"]
    assert np.isclose(np.linalg.norm(a), 1, atol=1e-4) and float(a @ b) < 0.9


@pytest.mark.data
def test_dual_mono_stereo_is_diarized(mono_call, tmp_path):
    path, truth = mono_call
    wav, _ = sf.read(path, dtype="float32")
    dual = tmp_path / "dual.flac"
    sf.write(dual, np.stack([wav, wav], 1), SR)
    r = find_turns(dual, speakers=2)
    assert r.channels == 1 and r.speakers == ["S1", "S2"]
    assert "dual mono" in r.warnings[0]
    forced = find_turns(dual, mode="stereo")  # the caller insists: both channels speak at once
    assert forced.channels == 2 and len(forced.overtalk) >= 7


@pytest.mark.data
def test_our_speaker_encoder_matches_resemblyzer(data_root):
    torch = pytest.importorskip("torch")
    rz = pytest.importorskip("resemblyzer")  # needs webrtcvad (webrtcvad-wheels)
    from multimodal_emotion.segmenting.diarize import _mel, embed_windows

    wav = _ravdess(data_root, 1, "05", 1)[0][:25600]
    ref_mel = rz.audio.wav_to_mel_spectrogram(rz.audio.normalize_volume(wav, -30, True))
    np.testing.assert_allclose(_mel(wav), ref_mel, rtol=1e-4, atol=1e-6 * ref_mel.max())
    with torch.no_grad():
        ref = rz.VoiceEncoder("cpu", verbose=False)(torch.from_numpy(ref_mel[None])).numpy()
    np.testing.assert_allclose(embed_windows([wav]), ref, atol=1e-5)


# -- roles -----------------------------------------------------------------------------------
def _result(turns: list[Turn], channels: int) -> TurnsResult:
    names = []
    for t in turns:
        if t.speaker not in names:
            names.append(t.speaker)
    return TurnsResult(turns, 60.0, channels, names)


def test_roles_follow_the_documented_rules():
    stereo = _result([Turn(0, 2, "right", 1), Turn(2, 9, "left", 0)], 2)
    assert assign_roles(stereo) == {"right": "customer", "left": "agent"}  # left by default
    assert assign_roles(stereo, agent_channel="right") == {"right": "agent", "left": "customer"}
    assert assign_roles(stereo, agent_channel=1) == {"right": "agent", "left": "customer"}
    assert assign_roles(stereo, agent="first") == {"right": "agent", "left": "customer"}
    mono = _result([Turn(0, 2, "S1"), Turn(2, 10, "S2"), Turn(10, 11, "S1")], 1)
    assert assign_roles(mono) == {"S1": "agent", "S2": "customer"}  # the first to talk
    assert assign_roles(mono, agent="most") == {"S1": "customer", "S2": "agent"}
    assert assign_roles(mono, agent="S2") == {"S1": "customer", "S2": "agent"}
    with pytest.raises(InputError, match="stereo"):
        assign_roles(mono, agent_channel="left")
    with pytest.raises(InputError, match="S1, S2"):
        assign_roles(mono, agent="S3")
    with pytest.raises(InputError, match="left' or 'right"):
        assign_roles(stereo, agent_channel="middle")


# -- scoring ---------------------------------------------------------------------------------
def test_der_counts_confusion_miss_and_false_alarm_outside_the_collar():
    ref = [(0.0, 10.0, "A"), (10.0, 20.0, "B")]
    hyp = [(0.0, 12.0, "x"), (12.0, 20.0, "y")]
    d = diarization_error_rate(ref, hyp, collar=0.0)
    assert d.der == pytest.approx(2 / 20, abs=1e-3) and d.mapping == {"x": "A", "y": "B"}
    d = diarization_error_rate(ref, hyp, collar=0.25)  # 1 s of boundaries not scored
    assert d.confusion == pytest.approx(1.75 / 19, abs=1e-3) and d.missed == 0
    d = diarization_error_rate(ref, [(0.0, 10.0, "x"), (15.0, 25.0, "y")], collar=0.0)
    assert d.missed == pytest.approx(5 / 20, abs=1e-3)
    assert d.false_alarm == pytest.approx(5 / 20, abs=1e-3) and d.confusion == 0
    # overlapped reference speech counts once per speaker
    d = diarization_error_rate([(0, 10, "A"), (5, 10, "B")], [(0, 10, "x")], collar=0.0)
    assert d.scored_s == pytest.approx(15.0) and d.missed == pytest.approx(5 / 15, abs=1e-3)


def test_turn_matching_is_one_to_one_and_speaker_aware():
    ref = [(0.0, 2.0, "A"), (3.0, 5.0, "B")]
    m = match_turns(ref, [(0.1, 2.1, "x"), (0.0, 1.9, "x"), (3.2, 5.0, "B")],
                    mapping={"x": "A"})
    assert m.pairs == [(0, 1), (1, 2)] and m.recall == 1.0 and m.precision == pytest.approx(2 / 3)
    assert match_turns(ref, [(0.0, 2.0, "B")]).pairs == []
