"""Real-time analysis (issue 17): the streaming engine with a fake analyze function (window and
hop timing, lag, video dropped before audio under a slow analyzer, bounded buffers), ``mer
stream`` replaying the demo clip, and ``/v1/stream`` through Starlette's TestClient."""

from __future__ import annotations

import json
import struct
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from multimodal_emotion import LABELS
from multimodal_emotion.errors import InputError
from multimodal_emotion.streaming import Collector, StreamEngine
from multimodal_emotion.types import Clip, ModalityView, Prediction

SR = 16_000


def fake_prediction(clip: Clip) -> Prediction:
    """'happy' when the window is loud, 'neutral' otherwise; the face view says how many frames
    the window had, so tests can see what reached the analyzer."""
    loud = clip.audio is not None and float(np.abs(clip.audio).mean()) > 0.3
    label = "happy" if loud else "neutral"
    probs = {n: (0.7 if n == label else 0.05) for n in LABELS}
    n = 0 if clip.frames is None else len(clip.frames)
    views = {"audio": ModalityView(clip.audio is not None, label, probs),
             "text": ModalityView(False, None, None, "fake"),
             "face": ModalityView(n > 0, label if n else None, probs if n else None,
                                  None if n else "no frames", {"frames": n})}
    return Prediction(label, probs, views, "product", clip.duration, confidence=0.7)


class SlowAnalyzer:
    """Takes ``seconds`` per window (``video_seconds`` more when it has frames), records what it
    was given."""

    def __init__(self, seconds: float = 0.0, video_seconds: float = 0.0) -> None:
        self.seconds, self.video_seconds = seconds, video_seconds
        self.clips: list[Clip] = []

    def __call__(self, clip: Clip) -> Prediction:
        self.clips.append(clip)
        time.sleep(self.seconds + (self.video_seconds if clip.frames is not None else 0.0))
        return fake_prediction(clip)


def frame(value: int = 128) -> np.ndarray:
    return np.full((24, 32, 3), value, np.uint8)


def feed(engine: StreamEngine, seconds: float, piece_s: float = 0.125, fps: float = 8.0,
         loud_from: float | None = None, pace: float = 0.0) -> None:
    """Push ``seconds`` of audio in ``piece_s`` pieces and frames at ``fps``, in capture order
    (``pace``: wall seconds per second of media; 0 as fast as possible)."""
    n = int(round(seconds / piece_s))
    next_frame = 0.0
    for i in range(n):
        t = i * piece_s
        while next_frame < t + piece_s - 1e-9:
            engine.push_frame(frame(), next_frame)
            next_frame += 1.0 / fps
        level = 0.5 if loud_from is not None and t >= loud_from else 0.01
        engine.push_audio(np.full(int(piece_s * SR), level, np.float32), t)
        if pace:
            time.sleep(piece_s * pace)


# -- the engine ------------------------------------------------------------------------------
def test_windows_are_cut_every_hop_with_their_media_and_a_lag():
    analyzer, got = SlowAnalyzer(), Collector()
    engine = StreamEngine(analyzer, got, window_s=2.0, hop_s=0.5, fps=4.0, block=True)
    feed(engine, 4.0, loud_from=2.0, fps=8.0)  # sampled down to 4 fps
    engine.close()
    bounds = [(r.start, r.end) for r in got.results]
    assert bounds == [(0.0, 2.0), (0.5, 2.5), (1.0, 3.0), (1.5, 3.5), (2.0, 4.0)]
    assert [r.index for r in got.results] == list(range(5))
    for clip in analyzer.clips:  # each window: 2 s of audio, frames at 4 fps, times relative
        assert clip.duration == pytest.approx(2.0) and len(clip.audio) == 2 * SR
        assert len(clip.frames) == 8
        assert clip.frame_times[0] == pytest.approx(0.0) and clip.frame_times[-1] < 2.0
    assert [r.prediction.label for r in got.results] == \
        ["neutral", "neutral", "neutral", "happy", "happy"]
    assert all(0 <= r.lag_ms < 5000 and r.dropped == {"frames": 0, "windows": 0}
               for r in got.results)
    d = got.results[-1].to_dict()
    assert d["label"] == "happy" and d["start"] == 2.0 and d["end"] == 4.0
    assert d["modalities"]["face"]["frames"] == 8 and set(d["probabilities"]) == set(LABELS)
    assert engine.stats.windows == engine.stats.analyzed == 5


def test_a_stream_shorter_than_a_window_gives_one_window_at_close():
    analyzer, got = SlowAnalyzer(), Collector()
    engine = StreamEngine(analyzer, got, window_s=4.0, hop_s=1.0)
    feed(engine, 1.5)
    assert got.results == []
    engine.close()
    assert [(r.start, r.end) for r in got.results] == [(0.0, 1.5)]


def test_the_tail_after_the_last_full_window_is_analyzed_once():
    got = Collector()
    engine = StreamEngine(SlowAnalyzer(), got, window_s=2.0, hop_s=1.0, block=True)
    feed(engine, 3.5)
    engine.close()
    assert [(r.start, r.end) for r in got.results] == [(0.0, 2.0), (1.0, 3.0), (2.0, 3.5)]


def test_lag_is_measured_from_the_push_that_completed_the_window():
    got = Collector()
    engine = StreamEngine(SlowAnalyzer(seconds=0.2), got, window_s=1.0, hop_s=1.0)
    feed(engine, 3.0, pace=1.0)  # real time: the analyzer (0.2 s) keeps up
    engine.close()
    assert len(got.results) == 3
    for r in got.results:
        assert r.analysis_ms >= 190 and r.lag_ms >= r.analysis_ms
        assert r.lag_ms < 600, r.lag_ms  # no queueing: the lag is the analysis
        assert r.dropped == {"frames": 0, "windows": 0} and r.frames == 4


def test_an_analyzer_slow_with_video_loses_frames_but_no_window():
    """0.4 s per window with frames, 0.05 s without, a window every 0.25 s: a window that
    finds the worker busy is analyzed without its frames, which lets the worker catch up, so
    video is dropped and every window's audio is still analyzed."""
    analyzer, got = SlowAnalyzer(seconds=0.05, video_seconds=0.35), Collector()
    engine = StreamEngine(analyzer, got, window_s=1.0, hop_s=0.25, fps=8.0)
    feed(engine, 4.0, pace=1.0)
    stats = engine.close()
    assert stats.skipped_windows == 0 and stats.windows == stats.analyzed == 13
    assert got.results[0].frames == 8 and got.results[0].dropped == {"frames": 0, "windows": 0}
    stripped = [r for r in got.results if r.dropped["frames"]]
    assert len(stripped) >= 3 and all(r.dropped["frames"] == 8 and r.frames == 0
                                      for r in stripped)
    for r in stripped:  # said in the result: the face was not seen, the audio was
        d = r.to_dict()
        assert d["modalities"]["face"]["available"] is False and d["modalities"]["audio"][
            "available"] is True
    assert all(len(c.audio) == SR for c in analyzer.clips)
    assert stats.dropped_frames == sum(r.dropped["frames"] for r in got.results)


def test_an_analyzer_too_slow_even_without_video_skips_windows_and_keeps_the_lag_bounded():
    analyzer, got = SlowAnalyzer(seconds=0.6), Collector()
    engine = StreamEngine(analyzer, got, window_s=1.0, hop_s=0.25, fps=8.0)
    highest = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            highest[0] = max(highest[0], engine.pending)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    feed(engine, 4.0, pace=1.0)
    stats = engine.close()
    done.set()
    watcher.join()
    assert highest[0] <= 1  # max_pending
    assert stats.skipped_windows >= 4
    assert stats.windows == stats.analyzed + stats.skipped_windows
    assert sum(r.dropped["windows"] for r in got.results) == stats.skipped_windows
    # no result waits for more than the one being analyzed: lag under two analyses
    assert max(r.lag_ms for r in got.results) < 2 * 600 + 300
    # the frames went first: every window that waited was analyzed without them
    assert all(r.frames == 0 for r in got.results[1:])
    assert stats.dropped_frames >= sum(r.dropped["frames"] for r in got.results)


def test_buffers_stay_bounded_over_a_long_stream():
    """An hour of 16 kHz audio and 10 fps frames through a fast analyzer: the media held never
    passes what one window, a hop and the grace need."""
    got = Collector()
    engine = StreamEngine(lambda clip: fake_prediction(clip), got, window_s=4.0, hop_s=1.0,
                          fps=4.0, block=True)
    piece = np.zeros(SR, np.float32)  # 1 s pieces
    held = []
    for s in range(3600):
        for k in range(10):
            engine.push_frame(frame(), s + k / 10)
        engine.push_audio(piece, float(s))
        if s % 300 == 0:
            held.append(engine.held_bytes())
    engine.close()
    assert len(got.results) == 3597
    bound = (4 + 1 + 0.5 + 1) * SR * 4 + 30 * frame().nbytes + 2 * (4 * SR * 4 + 16 *
                                                                    frame().nbytes)
    assert len(held) == 12 and max(held) <= bound  # the same bound at minute 0 and minute 55


def test_capture_gaps_and_overlaps():
    analyzer, got = SlowAnalyzer(), Collector()
    engine = StreamEngine(analyzer, got, window_s=1.0, hop_s=1.0, block=True)
    engine.push_audio(np.full(SR, 0.01, np.float32), 0.0)
    engine.push_audio(np.full(SR // 2, 0.5, np.float32), 0.75)  # overlaps: 0.25 s are new
    engine.push_audio(np.full(SR // 2, 0.5, np.float32), 1.5)   # a 0.25 s gap: silence
    engine.push_audio(np.full(SR * 2, 0.5, np.float32), 10.0)   # capture stopped 8 s: restart
    engine.close()
    assert [(r.start, r.end) for r in got.results] == [(0.0, 1.0), (1.0, 2.0), (10.0, 11.0),
                                                       (11.0, 12.0)]
    second = analyzer.clips[1].audio
    assert len(second) == SR and second[:SR // 4].min() == 0.5  # the overlap's new part
    assert np.all(second[SR // 4:SR // 2] == 0.0)  # the gap
    assert engine.stats.windows == 4


def test_int16_audio_and_bad_input():
    analyzer, got = SlowAnalyzer(), Collector()
    engine = StreamEngine(analyzer, got, window_s=1.0, hop_s=1.0, block=True)
    engine.push_audio(np.full(SR, 16384, np.int16), 0.0)
    engine.close()
    assert analyzer.clips[0].audio.dtype == np.float32
    assert analyzer.clips[0].audio.max() == pytest.approx(0.5)
    engine = StreamEngine(analyzer, got)
    with pytest.raises(InputError, match="mono"):
        engine.push_audio(np.zeros((2, 100), np.float32), 0.0)
    with pytest.raises(InputError, match="uint8 RGB"):
        engine.push_frame(np.zeros((4, 4), np.uint8), 0.0)
    with pytest.raises(InputError, match="finite"):
        engine.push_frame(frame(), float("nan"))
    engine.close()
    with pytest.raises(InputError, match="closed"):
        engine.push_audio(np.zeros(10, np.float32), 5.0)
    with pytest.raises(InputError, match="hop"):
        StreamEngine(analyzer, window_s=1.0, hop_s=2.0)


def test_an_analyzer_error_is_reported_and_the_stream_goes_on():
    calls = [0]

    def flaky(clip: Clip) -> Prediction:
        calls[0] += 1
        if calls[0] == 2:
            raise InputError("this window is bad")
        return fake_prediction(clip)

    got = Collector()
    engine = StreamEngine(flaky, got, window_s=1.0, hop_s=1.0, block=True)
    feed(engine, 3.0)
    engine.close()
    assert [r.error for r in got.results] == [None, "this window is bad", None]
    assert got.results[1].to_dict()["label"] is None and engine.stats.errors == 1


# -- /v1/stream ------------------------------------------------------------------------------
class StreamFake:
    """Shaped like the recognizer as far as the server needs: ``analyze_segment`` answers
    :func:`fake_prediction` (loud windows 'happy'), ``model`` names the fusions."""

    fps, window_s, model_dir = 2.0, 10.0, "fake-model"

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.model = SimpleNamespace(default_fusion="product", fusions={"product": None,
                                                                         "late": None})
        self.clips: list[Clip] = []

    def analyze_segment(self, clip: Clip, fusion: str | None = None) -> Prediction:
        self.clips.append(clip)
        return fake_prediction(clip)


def stream_client(tmp_path: Path, fake: StreamFake, **settings: Any):
    from fastapi.testclient import TestClient

    from multimodal_emotion.serving.app import create_app
    from multimodal_emotion.serving.settings import Settings

    app = create_app(lambda: fake, Settings(upload_dir=str(tmp_path), **settings))
    client = TestClient(app)
    client.__enter__()
    deadline = time.monotonic() + 30
    while client.get("/healthz").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return client


def audio_msg(t: float, seconds: float, level: int) -> bytes:
    return struct.pack("<Bd", 1, t) + np.full(int(seconds * SR), level, "<i2").tobytes()


def jpeg_msg(t: float) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    assert ok
    return struct.pack("<Bd", 2, t) + data.tobytes()


def close_info(ws) -> tuple[dict, int, str]:
    """The error message the server sent, then its close code and reason."""
    from starlette.websockets import WebSocketDisconnect

    err = ws.receive_json()
    with pytest.raises(WebSocketDisconnect) as info:
        ws.receive_json()
    return err, info.value.code, info.value.reason


def end_stream(ws) -> dict:
    """Stop an open stream and read up to its "end": the handler then finishes on its own
    before the test client leaves the block (leaving an open stream makes the test client
    cancel the handler while it still cleans up, a race of the test harness, not the server)."""
    ws.send_text(json.dumps({"type": "stop"}))
    while True:
        m = ws.receive_json()
        if m["type"] == "end":
            return m


def test_websocket_streams_results_per_window(tmp_path):
    fake = StreamFake()
    client = stream_client(tmp_path, fake)
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start", "window_s": 2, "hop_s": 1}))
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["window_s"] == 2 and ready["hop_s"] == 1
        assert ready["labels"] == list(LABELS)
        t0 = 1000.0  # any origin: results come back in the client's clock
        msgs = []
        for i in range(8):  # 4 s: quiet then loud, and a frame every half second
            ws.send_bytes(jpeg_msg(t0 + i * 0.5))
            ws.send_bytes(audio_msg(t0 + i * 0.5, 0.5, 200 if i < 4 else 16000))
            if i in (3, 5):  # a window is complete: wait for it, as a real-time sender would
                msgs.append(ws.receive_json())
        ws.send_text(json.dumps({"type": "stop"}))
        while True:
            m = ws.receive_json()
            msgs.append(m)
            if m["type"] == "end":
                break
    results = [m for m in msgs if m["type"] == "result"]
    assert [(r["start"], r["end"]) for r in results] == [(1000.0, 1002.0), (1001.0, 1003.0),
                                                         (1002.0, 1004.0)]
    assert [r["label"] for r in results] == ["neutral", "neutral", "happy"]
    assert all(r["lag_ms"] >= 0 and r["dropped"] == {"frames": 0, "windows": 0}
               for r in results)
    assert results[0]["modalities"]["face"]["frames"] == 4  # JPEGs decoded, sampled at 2 fps
    assert fake.clips[0].frames.shape[1:] == (120, 160, 3)
    assert msgs[-1]["stats"]["analyzed"] == 3


def test_websocket_needs_the_key_before_media(tmp_path):
    fake = StreamFake()
    client = stream_client(tmp_path, fake, api_key="s3cret")
    with client.websocket_connect("/v1/stream") as ws:  # media first, no key
        ws.send_bytes(audio_msg(0.0, 0.1, 0))
        err, code, reason = close_info(ws)
    assert err["error"] == "unauthorized" and code == 4401 and reason.startswith("unauthorized")
    with client.websocket_connect("/v1/stream?key=wrong") as ws:
        assert close_info(ws)[1] == 4401
    with client.websocket_connect("/v1/stream?key=s3cret") as ws:  # "ready" answers the
        ws.send_bytes(audio_msg(0.0, 0.1, 0))                        # first message
        assert ws.receive_json()["type"] == "ready"
        end_stream(ws)
    with client.websocket_connect("/v1/stream") as ws:  # the key in the start message
        ws.send_text(json.dumps({"type": "start", "key": "s3cret"}))
        assert ws.receive_json()["type"] == "ready"
        end_stream(ws)


def test_websocket_limits_concurrent_streams(tmp_path):
    client = stream_client(tmp_path, StreamFake(), max_streams=1)
    with client.websocket_connect("/v1/stream") as first:
        first.send_text(json.dumps({"type": "start"}))
        assert first.receive_json()["type"] == "ready"
        with client.websocket_connect("/v1/stream") as second:
            err, code, _ = close_info(second)
        assert err["error"] == "too_many_streams" and code == 4429
        assert "MER_MAX_STREAMS" in err["message"]
        end_stream(first)
    with client.websocket_connect("/v1/stream") as third:  # the slot was given back
        third.send_text(json.dumps({"type": "start"}))
        assert third.receive_json()["type"] == "ready"
        end_stream(third)


@pytest.mark.parametrize("message, code, words", [
    (b"\x01\x00", 4400, "9-byte header"),
    (struct.pack("<Bd", 7, 0.0) + b"xx", 4400, "unknown media kind 7"),
    (struct.pack("<Bd", 1, 0.0) + b"abc", 4400, "even number of bytes"),
    (struct.pack("<Bd", 1, float("inf")) + b"ab", 4400, "finite"),
    (struct.pack("<Bd", 2, 0.0) + b"GIF89a not a jpeg", 4400, "JPEG"),
    (struct.pack("<Bd", 2, 0.0) + b"\xff\xd8\xff\xe0 broken", 4400, "could not be decoded"),
    (struct.pack("<Bd", 1, 0.0) + bytes(70_000), 4413, "at most 64000 bytes"),
    ('{"type": "start", "hop_s": -1}', 4400, "hop_s must be a number"),
    ('{"type": "start", "fusion": "magic"}', 4400, "fusion 'magic'"),
    ('{"type": "begin"}', 4400, "first text message"),
    ("not json", 4400, "JSON object"),
])
def test_websocket_closes_bad_messages_with_a_reason(tmp_path, message, code, words):
    client = stream_client(tmp_path, StreamFake())
    with client.websocket_connect("/v1/stream") as ws:
        if isinstance(message, str):
            ws.send_text(message)
        else:
            ws.send_text(json.dumps({"type": "start"}))
            assert ws.receive_json()["type"] == "ready"
            ws.send_bytes(message)
        err, got_code, reason = close_info(ws)
    assert got_code == code and words in err["message"], (err, got_code)
    assert reason.split(":")[0] == err["error"]


def test_websocket_handler_leaves_no_task_behind_however_the_stream_ends(tmp_path, monkeypatch,
                                                                         caplog):
    """The results sender is ended (drained after a stop, else cancelled) and awaited before
    the handler returns: when the client goes away mid-stream, when the server closes it for a
    bad message, and after a stop. A task left pending would outlive its connection (and be
    'destroyed but pending' when the loop closes). The test client's own tasks (anyio's portal)
    share the loop, so only the server's tasks are counted."""
    import asyncio
    import gc

    from multimodal_emotion.serving import stream

    left: list[list[str]] = []
    serve = stream._serve

    async def watched(ws, state, settings) -> None:
        before = asyncio.all_tasks()
        try:
            await serve(ws, state, settings)
        finally:
            left.append([repr(t) for t in asyncio.all_tasks() - before if not t.done()
                         and "multimodal_emotion" in t.get_coro().cr_code.co_filename])

    monkeypatch.setattr(stream, "_serve", watched)
    client = stream_client(tmp_path, StreamFake())
    start = json.dumps({"type": "start", "window_s": 2, "hop_s": 1})
    with client.websocket_connect("/v1/stream") as ws:  # the client leaves mid-stream
        ws.send_text(start)
        assert ws.receive_json()["type"] == "ready"
        for i in range(5):
            ws.send_bytes(audio_msg(i * 0.5, 0.5, 16000))
        assert ws.receive_json()["type"] == "result"  # the sender is running
    with client.websocket_connect("/v1/stream") as ws:  # the server closes it: bad message
        ws.send_text(start)
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(b"\x07")
        assert close_info(ws)[1] == 4400
    with client.websocket_connect("/v1/stream") as ws:  # a stop: results, end, close 1000
        ws.send_text(start)
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(audio_msg(0.0, 2.0, 16000))
        ws.send_text(json.dumps({"type": "stop"}))
        types = []
        while not types or types[-1] != "end":
            types.append(ws.receive_json()["type"])
        assert types == ["result", "end"]
    deadline = time.monotonic() + 10
    while len(left) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert left == [[], [], []]
    client.__exit__(None, None, None)
    gc.collect()
    assert not [r.getMessage() for r in caplog.records if r.name == "asyncio"]


def test_ending_the_sender_keeps_the_handlers_own_cancellation():
    """The handler's cancellation (a cancel scope's, with its own message) must be the one
    that leaves _end_task, even when it lands in the same loop turn as the sender's own
    cancel; and the sender is over by then. Awaited through gather, the sender's bare
    CancelledError came out instead, which anyio's scope does not swallow as its own: the
    once-seen CancelledError from the test client's exit above."""
    import asyncio

    from multimodal_emotion.serving.stream import _end_task

    async def main() -> None:
        never = asyncio.Event()
        sender = asyncio.create_task(never.wait())
        await asyncio.sleep(0)  # the sender waits on its event
        handler = asyncio.create_task(_end_task(sender))
        await asyncio.sleep(0)  # the handler has cancelled the sender and waits for it...
        handler.cancel("the scope's own")  # ...and is cancelled before the sender wakes
        with pytest.raises(asyncio.CancelledError) as caught:
            await handler
        assert caught.value.args == ("the scope's own",)
        assert sender.cancelled()

    asyncio.run(main())


# -- mer stream ------------------------------------------------------------------------------
def test_mer_stream_replays_the_demo_clip_as_json_lines(demo_clip, monkeypatch, capsys):
    from multimodal_emotion import cli
    from multimodal_emotion.recognizer import EmotionRecognizer

    fake = StreamFake()
    monkeypatch.setattr(EmotionRecognizer, "from_pretrained",
                        classmethod(lambda cls, *a, **k: fake))
    t = time.monotonic()
    rc = cli.main(["stream", str(demo_clip), "--json", "--speed", "0", "--window", "2",
                   "--hop", "1"])
    assert rc == 0 and time.monotonic() - t < 4  # --speed 0: no waiting for the clock
    out = capsys.readouterr()
    lines = [json.loads(x) for x in out.out.splitlines()]
    assert [(d["start"], d["end"]) for d in lines] == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0),
                                                       (3.0, 5.0)]
    for d in lines:
        assert d["label"] in LABELS and set(d["probabilities"]) == set(LABELS)
        assert d["dropped"] == {"frames": 0, "windows": 0} and d["lag_ms"] >= 0
        assert d["modalities"]["face"]["frames"] == 4  # 2 s at the default 2 fps
    assert "windows 4, analyzed 4" in out.err
    assert len(fake.clips) == 5  # the warm-up, then one clip per window
    assert all(len(c.audio) == 2 * SR for c in fake.clips[1:])


def test_mer_stream_at_real_time_pace_takes_the_clip_length(demo_clip, monkeypatch, capsys):
    from multimodal_emotion import cli
    from multimodal_emotion.recognizer import EmotionRecognizer

    monkeypatch.setattr(EmotionRecognizer, "from_pretrained",
                        classmethod(lambda cls, *a, **k: StreamFake()))
    t = time.monotonic()
    assert cli.main(["stream", str(demo_clip), "--speed", "4", "--window", "2",
                     "--hop", "2"]) == 0
    assert 1.0 < time.monotonic() - t < 4.0  # 5 s of media at 4x: about 1.25 s
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 2 and "[    0.0-    2.0]" in lines[0] and "lag" in lines[0]


def test_mer_stream_without_devices_or_with_a_bad_file(tmp_path, capsys):
    from multimodal_emotion import cli

    rc = cli.main(["stream", "--mic", "--camera", "7"])
    err = capsys.readouterr().err
    if rc == 0:  # pragma: no cover -- a machine with a microphone
        pytest.skip("this machine has a capture device")
    assert rc == 5 and "no microphone or camera" in err and "mer stream FILE" in err
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    assert cli.main(["stream", str(bad)]) == 3
    assert cli.main(["stream", str(bad), "--window", "2", "--hop", "3"]) == 2


def test_websocket_closes_an_idle_stream_and_refuses_while_models_load(tmp_path):
    client = stream_client(tmp_path, StreamFake(), read_timeout_s=0.3)
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"type": "start"}))
        assert ws.receive_json()["type"] == "ready"
        err, code, _ = close_info(ws)  # then nothing is sent
    assert err["error"] == "idle" and code == 4408 and "MER_READ_TIMEOUT_S" in err["message"]

    from fastapi.testclient import TestClient

    from multimodal_emotion.serving.app import create_app
    from multimodal_emotion.serving.settings import Settings

    gate = threading.Event()

    def slow_factory() -> StreamFake:
        gate.wait(10)
        return StreamFake()

    with TestClient(create_app(slow_factory, Settings(upload_dir=str(tmp_path)))) as c:
        with c.websocket_connect("/v1/stream") as ws:
            err, code, _ = close_info(ws)
        gate.set()
    assert err["error"] == "not_ready" and code == 4503
