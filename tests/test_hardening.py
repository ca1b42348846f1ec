"""Issue 18: bounded memory and time for any input, and no client locking others out. Each test
is a hostile case from the issue, small enough to run in a second or two."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_serving import FakeRecognizer, multipart_chunks, wait_ready

from multimodal_emotion import media
from multimodal_emotion.demo import make_silent_flac
from multimodal_emotion.errors import InputError, MediaError
from multimodal_emotion.model import EmotionModel
from multimodal_emotion.serving.app import create_app
from multimodal_emotion.serving.live import serve_in_thread
from multimodal_emotion.serving.settings import Settings


@pytest.fixture(scope="module")
def silent_flac(tmp_path_factory) -> Path:
    return make_silent_flac(tmp_path_factory.mktemp("flac") / "silence.flac", 120)


# -- item 2: duration and frame size are capped ---------------------------------------------
def test_a_file_longer_than_the_limit_is_refused_from_its_header(silent_flac):
    with pytest.raises(MediaError, match=r"longer than the 30 s limit.*header says 120 s"):
        media.load(silent_flac, max_duration=30)
    assert media.load(silent_flac, max_duration=200).duration == pytest.approx(120, abs=0.1)


def test_a_lying_header_is_caught_while_decoding_in_bounded_memory(silent_flac, monkeypatch):
    monkeypatch.setattr(media, "_declared_duration", lambda container: None)
    tracemalloc.start()
    try:
        with pytest.raises(MediaError, match="more than 10 s of audio decoded"):
            media.load(silent_flac, max_duration=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 120 s would be 7.7 MB of float32; the limit (10 s + slack) is 0.7 MB.
    assert peak < 3_000_000, peak


def test_the_default_limit_applies_without_asking():
    assert media.DEFAULT_MAX_DURATION_S == 3600.0
    import inspect

    assert inspect.signature(media.load).parameters["max_duration"].default == 3600.0


def test_frames_over_the_pixel_limit_are_refused_before_decoding(demo_clip, monkeypatch):
    monkeypatch.setattr(media, "MAX_FRAME_PIXELS", 100 * 100)
    with pytest.raises(MediaError, match="larger than the .* megapixel limit"):
        media.load(demo_clip)


def test_bad_numbers_are_input_errors_not_hangs(demo_clip):
    for fps in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InputError):
            media.load(demo_clip, fps=fps)
    with pytest.raises(InputError):
        media.load(demo_clip, max_duration=float("nan"))


# -- item 10: duration at low fps, truncation is reported --------------------------------------
def test_duration_does_not_depend_on_the_sampling_rate(no_audio_clip):
    full = media.load(no_audio_clip, fps=4.0).duration
    assert media.load(no_audio_clip, fps=0.5).duration == pytest.approx(full, abs=0.05)
    assert full == pytest.approx(3.0, abs=0.1)


def test_a_truncated_file_decodes_with_a_warning(silent_flac, tmp_path):
    data = silent_flac.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])  # STREAMINFO still claims all 120 s
    clip = media.load(cut)
    assert clip.duration < 100
    assert clip.warnings and "says it lasts 120.00 s" in clip.warnings[0]
    assert media.load(silent_flac).warnings == []


# -- item 5: every numeric CLI option is validated -------------------------------------------
@pytest.mark.parametrize("args", [["--fps", "-1"], ["--fps", "0"], ["--fps", "nan"],
                                  ["--fps", "1e9"], ["--window", "0"], ["--window", "nan"],
                                  ["--window", "-5"], ["--max-duration", "inf"],
                                  ["--fps", "abc"]])
def test_bad_numeric_options_exit_2_with_one_line(args, capsys):
    from multimodal_emotion.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["analyze", "clip.mp4", *args])  # refused before any file or model is opened
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and args[0] in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("argv", [["evaluate", "--dataset", "ravdess", "--limit", "0"],
                                  ["train", "heads", "--epochs", "-3"],
                                  ["adapt", "--out", "x", "--holdout", "1.5"],
                                  ["serve", "--port", "70000"]])
def test_other_numeric_options_are_checked_too(argv, capsys):
    from multimodal_emotion.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_max_duration_reaches_the_decoder(silent_flac, capsys, monkeypatch):
    import multimodal_emotion.recognizer as recognizer

    seen = {}

    class Rec:  # the CLI's contract with the recognizer, without loading models
        @classmethod
        def from_pretrained(cls, path, **kwargs):
            seen.update(kwargs)
            raise InputError("stop here")

    monkeypatch.setattr(recognizer, "EmotionRecognizer", Rec)
    from multimodal_emotion.cli import main

    assert main(["analyze", str(silent_flac), "--max-duration", "30"]) == 2
    assert seen["max_duration_s"] == 30.0


# -- the server ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def heads() -> EmotionModel:
    return EmotionModel.from_pretrained()


@pytest.fixture
def uploads(tmp_path: Path):
    d = tmp_path / "uploads"
    d.mkdir()
    yield d
    assert [p for p in d.rglob("*") if p.is_file()] == [], "an upload was left on disk"


def slow_request(url: str, first: bytes) -> socket.socket:
    """Open a connection, send headers and the first bytes of a big multipart body, and stall."""
    host, port = url.rsplit("//", 1)[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n"
              b"Content-Type: multipart/form-data; boundary=B0UND\r\n\r\n" + first)
    return s


def read_reply(s: socket.socket) -> bytes:
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
    return reply


def test_slow_uploads_hold_no_queue_slot_and_are_dropped(uploads, heads, demo_clip):
    """Item 1: one worker, no waiting room. Before, a stalled upload took the only slot and
    every other client got 429 for as long as it went on."""
    fake = FakeRecognizer(heads)
    app = create_app(lambda: fake, Settings(upload_dir=str(uploads), workers=1, queue_size=0,
                                            read_timeout_s=1.0))
    with serve_in_thread(app) as url:
        slow = [slow_request(url, multipart_chunks(b"", 0, b"")[0] + bytes(100))
                for _ in range(3)]
        time.sleep(0.2)  # the slow bodies are being received now
        r = httpx.post(url + "/v1/analyze", files={"file": ("a.mp4", demo_clip.read_bytes())},
                       timeout=30)
        assert r.status_code == 200, r.text
        t = time.monotonic()
        for s in slow:
            with s:
                reply = read_reply(s)
            assert reply.startswith(b"HTTP/1.1 408") and b"upload_timeout" in reply, reply[:200]
        assert time.monotonic() - t < 5  # dropped after the 1 s read timeout, not left hanging


def test_trickled_headers_are_cut_off_and_others_are_served(uploads, heads):
    """A client sending its request line and headers a byte every 0.2 s held its socket for
    as long as it liked (the body deadline starts after the headers): now the connection is
    closed at the header deadline, a keep-alive client trickling its second request too, and a
    normal client is served meanwhile."""
    fake = FakeRecognizer(heads)
    app = create_app(lambda: fake, Settings(upload_dir=str(uploads)))
    with serve_in_thread(app, header_timeout_s=1.0) as url:
        host, port = url.rsplit("//", 1)[1].split(":")
        first = socket.create_connection((host, int(port)), timeout=5)
        second = socket.create_connection((host, int(port)), timeout=5)
        second.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # one fast request
        assert second.recv(65536).startswith(b"HTTP/1.1 200")
        t = time.monotonic()
        closed = {}
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
        for i in range(len(head)):
            for name, s in (("first", first), ("second", second)):
                if name in closed:
                    continue
                try:
                    s.sendall(head[i:i + 1])
                except OSError:
                    closed[name] = time.monotonic() - t
            if len(closed) == 2:
                break
            if i % 3 == 0:  # the server keeps answering others meanwhile
                assert httpx.get(url + "/healthz", timeout=5).status_code == 200
            time.sleep(0.2)
        for name, s in (("first", first), ("second", second)):
            if name not in closed:  # the server closed it: reading gives EOF
                s.settimeout(0.5)
                try:
                    assert s.recv(65536) == b""
                    closed[name] = time.monotonic() - t
                except (socket.timeout, OSError):
                    pass
            s.close()
        assert set(closed) == {"first", "second"}, closed
        assert max(closed.values()) < 4.0, closed  # cut at ~1 s (2 s at most), not 20 s
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200


def test_a_trickling_body_is_dropped_by_the_minimum_rate(uploads, heads):
    fake = FakeRecognizer(heads)
    app = create_app(lambda: fake, Settings(upload_dir=str(uploads), read_timeout_s=0.5,
                                            min_upload_kbps=64))
    with serve_in_thread(app) as url:
        with slow_request(url, multipart_chunks(b"", 0, b"")[0] + MP4_HEAD_BYTES) as s:
            t = time.monotonic()
            reply = b""
            s.settimeout(0.2)
            while time.monotonic() - t < 10:  # one byte every 0.2 s: never silent for 0.5 s
                try:
                    s.sendall(b"x")
                    reply += s.recv(65536)
                    if reply:
                        s.settimeout(5)
                        reply += read_reply(s)
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
            assert b"408" in reply.split(b"\r\n", 1)[0] and b"too slowly" in reply, reply[:300]
            assert time.monotonic() - t < 5


MP4_HEAD_BYTES = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(600)


def test_fuse_body_is_capped_and_queued(uploads, heads):
    """Item 3: /v1/fuse had no body limit (40 MB -> 1.8 GB) and ran beside the queue."""
    fake = FakeRecognizer(heads, gate=__import__("threading").Event())
    app = create_app(lambda: fake, Settings(upload_dir=str(uploads), max_json_kb=64,
                                            workers=1, queue_size=0))
    with TestClient(app) as c:
        wait_ready(c)
        big = json.dumps({"probabilities": {"audio": [0.1] * 20000}})
        r = c.post("/v1/fuse", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "body_too_large"
        ok = {"probabilities": {"audio": [1 / 7] * 7, "face": [1 / 7] * 7}}
        assert c.post("/v1/fuse", json=ok).status_code == 200
        # the only slot taken by an analysis: fuse waits its turn like everyone else
        import threading
        done = threading.Thread(target=lambda: c.post(
            "/v1/analyze", files={"file": ("a.wav", _WAV)}))
        done.start()
        assert fake.started.wait(10)
        r = c.post("/v1/fuse", json=ok)
        assert r.status_code == 429 and r.json()["error"] == "queue_full"
        fake.gate.set()
        done.join(10)


def _wav_bytes() -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.sin(np.arange(8000) / 5) * 8000).astype(np.int16).tobytes())
    return buf.getvalue()


_WAV = _wav_bytes()


def test_booleans_are_not_embedding_numbers(uploads, heads):
    fake = FakeRecognizer(heads)
    app = create_app(lambda: fake, Settings(upload_dir=str(uploads)))
    with TestClient(app) as c:
        wait_ready(c)
        dim = int(heads.dims["audio"])
        r = c.post("/v1/fuse", json={"embeddings": {"audio": [True] * dim}})
        assert r.status_code == 422 and r.json()["error"] == "invalid_request"


def test_validation_errors_are_capped_and_summarised(uploads, heads):
    """Item 4: a 5 MB invalid body produced a 236 MB 422 (every error twice, with its input)."""
    fake = FakeRecognizer(heads)
    app = create_app(lambda: fake, Settings(upload_dir=str(uploads)))
    with TestClient(app) as c:
        wait_ready(c)
        body = json.dumps({"embeddings": {"audio": ["x" * 50] * 15000}})  # ~800 KB
        t = time.perf_counter()
        r = c.post("/v1/fuse", content=body, headers={"content-type": "application/json"})
        assert time.perf_counter() - t < 1.0  # one error found, not 30,000 built
        assert r.status_code == 422 and len(r.content) < 2000, len(r.content)
        assert "embeddings.audio[0] is 'xxxx" in r.json()["message"]
        # many independent errors are listed up to 10, and counted
        many = {f"k{i}": i for i in range(40)}
        r = c.post("/v1/fuse", json={"embeddings": {"audio": [0.0]}, **many})
        out = r.json()
        assert r.status_code == 422 and len(out["details"]) == 10 and out["error_count"] == 40
        assert "and 30 more error(s)" in out["message"]


def test_an_aborted_upload_is_one_log_line_not_a_500(uploads, heads, caplog):
    """Item 6: the client hung up mid-body; before, status 500 and two tracebacks."""
    fake = FakeRecognizer(heads)
    app = create_app(lambda: fake, Settings(upload_dir=str(uploads)))
    app.state.mer.load(lambda: fake)
    caplog.set_level(logging.INFO, logger="multimodal_emotion.serving")
    chunks = multipart_chunks(MP4_HEAD_BYTES, 3, bytes(1000))[:-1]  # then http.disconnect
    status, _, _ = _asgi_post_any(app, chunks)
    assert status == 499
    lines = [r for r in caplog.records if r.name == "multimodal_emotion.serving"]
    assert len(lines) == 1 and "client closed" in lines[0].getMessage()
    assert lines[0].levelno == logging.INFO and lines[0].exc_info is None


def _asgi_post_any(app, chunks):
    """``_asgi_post`` for answers that may have an empty body."""
    import asyncio

    calls = 0

    async def receive():
        nonlocal calls
        calls += 1
        if calls <= len(chunks):
            return {"type": "http.request", "body": chunks[calls - 1], "more_body": True}
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/analyze", "raw_path": b"/v1/analyze",
             "root_path": "", "query_string": b"", "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 1),
             "headers": [(b"content-type", b"multipart/form-data; boundary=B0UND")]}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, sent, calls


# -- item 7: bad settings refuse to start ----------------------------------------------------
@pytest.mark.parametrize("env", [{"MER_WINDOW_S": "0"}, {"MER_WINDOW_S": "nan"},
                                 {"MER_MAX_UPLOAD_MB": "inf"}, {"MER_MAX_UPLOAD_MB": "nan"},
                                 {"MER_API_KEY": "  "}, {"MER_MAX_DURATION_S": "-1"},
                                 {"MER_READ_TIMEOUT_S": "0"}, {"MER_MAX_JSON_KB": "inf"},
                                 {"MER_MAX_RECEIVING": "0"}])
def test_bad_settings_are_refused(env):
    with pytest.raises(InputError, match=next(iter(env))):
        Settings.from_env(env)


def test_mer_serve_with_a_bad_setting_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "MER_WINDOW_S": "0", "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-m", "multimodal_emotion.cli", "serve",
                           "--port", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: MER_WINDOW_S=0.0 is out of range: give a number > 0 and <= 3600"]


# -- item 9: leftovers of a killed server are removed at start ---------------------------------
def test_uploads_of_a_dead_server_are_swept_and_nothing_else(tmp_path):
    from multimodal_emotion.serving.upload import UPLOAD_SUBDIR, sweep_stale_uploads

    folder = tmp_path / UPLOAD_SUBDIR
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = folder / f"mer-upload-{dead.pid}-abc123.part"
    live = folder / f"mer-upload-{os.getpid()}-def456.part"
    other = folder / "notes.txt"
    lookalike = tmp_path / f"mer-upload-{dead.pid}-xyz.part"  # outside our subfolder
    for p in (stale, live, other, lookalike):
        p.write_bytes(b"x")
    create_app(lambda: None, Settings(upload_dir=str(tmp_path)))
    assert not stale.exists()
    assert live.exists() and other.exists() and lookalike.exists()
    assert sweep_stale_uploads(tmp_path) == 0


# -- item 10 ---------------------------------------------------------------------------------
def test_models_hides_the_server_path_and_openapi_declares_errors(uploads, heads):
    fake = FakeRecognizer(heads)
    fake.model_dir = "/srv/secret/place/my-model"
    app = create_app(lambda: fake, Settings(upload_dir=str(uploads)))
    with TestClient(app) as c:
        wait_ready(c)
        assert c.get("/v1/models").json()["model"]["dir"] == "my-model"
        spec = c.get("/openapi.json").json()
        analyze = spec["paths"]["/v1/analyze"]["post"]["responses"]
        assert {"400", "408", "413", "415", "422", "429", "503"} <= set(analyze)
        assert "media_too_long" in analyze["413"]["content"]["application/json"]["schema"][
            "properties"]["error"]["enum"]
        fuse_body = spec["paths"]["/v1/fuse"]["post"]["requestBody"]["content"][
            "application/json"]["schema"]
        assert "exactly one" in json.dumps(fuse_body)


def test_media_over_a_limit_is_413(uploads, heads, silent_flac):
    fake = FakeRecognizer(heads)

    def analyze(source, fusion=None, labels=None):
        return FakeRecognizer.analyze(fake, media.load(source, max_duration=30), fusion, labels)

    fake.analyze = analyze
    app = create_app(lambda: fake, Settings(upload_dir=str(uploads)))
    with TestClient(app) as c:
        wait_ready(c)
        r = c.post("/v1/analyze", files={"file": ("long.flac", silent_flac.read_bytes())})
        assert r.status_code == 413 and r.json()["error"] == "media_too_long"
        assert "long.flac" in r.json()["message"] and "mer-upload" not in r.json()["message"]


# -- item 8: same input, same output at any concurrency ----------------------------------------
def test_a_serialized_encoder_never_runs_two_calls_at_once():
    import threading

    from multimodal_emotion.serialized import serialized

    class Fragile:  # like OpenCV's cascade: shared scratch state, wrong results if re-entered
        dim = 3

        def __init__(self) -> None:
            self.inside = 0
            self.overlaps = 0

        def encode(self, x: int) -> int:
            self.inside += 1
            if self.inside > 1:
                self.overlaps += 1
            time.sleep(0.002)
            self.inside -= 1
            return x * 2

    raw = Fragile()
    enc = serialized(raw)
    threads = [threading.Thread(target=lambda: [enc.encode(i) for i in range(20)])
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert raw.overlaps == 0 and enc.dim == 3 and enc.encode(4) == 8
    assert serialized(enc) is enc


@pytest.fixture(scope="module")
def real_rec():
    from multimodal_emotion import EmotionRecognizer

    return EmotionRecognizer.from_pretrained()


def test_concurrent_analyses_equal_sequential_ones_exactly(demo_clip, real_rec):
    """Before: face probabilities up to 0.048 apart (measured here: 0.005) between concurrent
    and sequential runs of the same clip, from a shared face detector."""
    from concurrent.futures import ThreadPoolExecutor

    rec = real_rec

    def run(_: int = 0) -> dict:
        d = rec.analyze(str(demo_clip)).to_dict()
        return {"fused": d["probabilities"],
                **{m: v.get("probabilities") for m, v in d["modalities"].items()}}

    sequential = run()
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(run, range(4)))
    assert all(c == sequential for c in concurrent)


def test_serve_help_names_every_setting(capsys):
    import re

    import multimodal_emotion.serving.settings as settings_module
    from multimodal_emotion.cli import main

    read = set(re.findall(r'\("(MER_[A-Z_]+)", ', Path(settings_module.__file__).read_text()))
    assert len(read) >= 15
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert all(var in out for var in read), read - set(re.findall(r"MER_[A-Z_]+", out))


def test_docs_load_nothing_from_the_internet(uploads, heads):
    import re

    app = create_app(lambda: FakeRecognizer(heads), Settings(upload_dir=str(uploads)))
    with TestClient(app) as c:
        page = c.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
        assert urls and not [u for u in urls if "//" in u], urls  # no CDN, no other host
        for u in urls:
            assert c.get(u).status_code == 200, u
        assert c.get("/redoc").status_code == 404


@pytest.mark.parametrize("container", ["mp4", "mpegts", "flv"])
@pytest.mark.parametrize("decoder", ["media.load", "media_stream.iter_chunks"])
def test_a_huge_frame_is_refused_without_decoding_one(tmp_path, container, decoder):
    """An 8000x8000 H.264 frame (64 megapixels, over the 8K limit): refused from the header in
    a fresh process that never grows past ~50 MB. Before, FFmpeg's stream probe decoded the
    frame first (281 MB), and the decode loop then took it (and every other) whole. MPEG-TS
    streams appear only during the probe; they too must not be decoded. FLV's demuxer decodes
    a frame whatever the options (322 MB): its SPS is read first, even when the metadata tag
    claims 160x160."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    try:
        from abuse import huge_flv, huge_frames, remux
    finally:
        sys.path.pop(0)
    path = huge_frames(tmp_path / "huge.mp4", side=8000, frames=1)
    if container == "flv":
        path = huge_flv(tmp_path / "huge.flv", path, claim=160)
    if container == "mpegts":
        path = remux(path, tmp_path / "huge.ts", "mpegts")
    code = ("import re, sys; from pathlib import Path\n"
            "from multimodal_emotion import media, media_stream\n"
            f"try:\n    list({decoder}(sys.argv[1]))\nexcept Exception as exc:\n"
            "    print(type(exc).__name__)\n"
            "print(int(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text())[1]))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).parents[1],
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    kind, peak_kb = out.stdout.split()
    assert kind == "MediaLimitError" and int(peak_kb) < 150_000, out.stdout


def test_the_answer_for_a_truncated_file_carries_the_warning(real_rec, silent_flac, tmp_path):
    """Item 10: a truncated file answered 200 with a shorter duration and no word about it."""
    data = silent_flac.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    out = real_rec.analyze(str(cut)).to_dict()
    assert any("says it lasts 120.00 s" in w for w in out["warnings"]), out.get("warnings")


def test_the_recognizer_refuses_clips_over_its_limit(real_rec, silent_flac, monkeypatch):
    monkeypatch.setattr(real_rec, "max_duration_s", 30.0)
    with pytest.raises(MediaError, match="longer than the 30 s limit"):
        real_rec.analyze(str(silent_flac))


def test_frame_memory_does_not_grow_with_duration(long_clip, monkeypatch):
    """An hour at 4 fps is 10 GB of 640x360 frames. Past the budget the sampling rate halves,
    so the frames held stay under it, evenly spaced over the whole clip, and the answer says so."""
    full = media.load(long_clip, fps=4.0)  # 25 s, 100 frames
    budget = 12 * full.frames[0].nbytes
    monkeypatch.setattr(media, "MAX_FRAME_BYTES", budget)
    clip = media.load(long_clip, fps=4.0)
    assert clip.frames.nbytes <= budget and len(clip.frames) >= 6
    gaps = np.diff(clip.frame_times)
    assert np.allclose(gaps, gaps[0], atol=0.11) and clip.frame_times[-1] > 20
    assert clip.duration == pytest.approx(full.duration)
    assert any(re.search(r"sampled at 0\.25 fps instead of 4 .* under 0\.\d+ MB", w)
               for w in clip.warnings), clip.warnings


def test_a_request_fps_decode_keeps_the_servers_duration_limit(uploads, heads, silent_flac):
    from multimodal_emotion.serving.app import analyze_file

    fake = FakeRecognizer(heads)
    fake.max_duration_s = 30.0
    with pytest.raises(MediaError, match="longer than the 30 s limit"):
        analyze_file(fake, silent_flac, None, 2.0)


def test_the_readme_lists_every_error_code_and_setting():
    from multimodal_emotion.serving.errors import ERRORS
    from multimodal_emotion.serving.settings import ENV_HELP

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert [c for c in ERRORS if f"`{c}`" not in readme] == []
    assert [v for v in ENV_HELP if f"| `{v}` |" not in readme] == []
