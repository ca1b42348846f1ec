"""The HTTP API (issue 4) through HTTP: Starlette's TestClient for the contract, a real uvicorn
on loopback where sockets matter (concurrency, early refusal). A light fake recognizer (the real
trained heads, no encoders) covers errors and queueing; the real shipped model covers analyze."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from multimodal_emotion import LABELS, media
from multimodal_emotion.model import EmotionModel
from multimodal_emotion.serving.app import create_app, serve_cli
from multimodal_emotion.serving.live import serve_in_thread
from multimodal_emotion.serving.settings import Settings
from multimodal_emotion.serving.upload import sniff
from multimodal_emotion.types import ModalityView, Prediction

MP4_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def heads() -> EmotionModel:
    """The shipped expert heads and fusions (a few MB; loads in well under a second)."""
    return EmotionModel.from_pretrained()


class FakeRecognizer:
    """Decodes for real (so bad media fails as in production) and answers a fixed 'happy';
    ``gate`` makes it wait, ``started`` tells that a job is running."""

    fps, window_s, model_dir = 4.0, 10.0, "fake-model"

    def __init__(self, model: EmotionModel, gate: threading.Event | None = None) -> None:
        self.model, self.gate = model, gate
        self.started = threading.Event()
        self.calls = 0

    def analyze(self, source: Any, fusion: str | None = None, labels: Any = None,
                fps: float | None = None) -> Prediction:
        self.calls += 1
        self.started.set()
        clip = source if hasattr(source, "duration") else media.load(
            source, fps=fps or self.fps,
            max_duration=getattr(self, "max_duration_s", media.DEFAULT_MAX_DURATION_S))
        if self.gate is not None:
            assert self.gate.wait(30), "test gate never opened"
        probs = {name: (0.7 if name == "happy" else 0.05) for name in LABELS}
        views = {m: ModalityView(True, "happy", probs, None, {}) for m in ("audio", "text")}
        views["text"].extras["transcript"] = "I am so happy today"
        n = 0 if clip.frames is None else len(clip.frames)
        views["face"] = ModalityView(True, "happy", probs, None,
                                     {"frames_with_face": n, "frames": n})
        return Prediction("happy", probs, views, fusion or self.model.default_fusion,
                          clip.duration, {"decode": 1.0, "total": 2.0}, confidence=0.7,
                          business=labels.apply(probs) if labels is not None else None)


@pytest.fixture(scope="module")
def real_rec():
    """The real shipped recognizer, loaded once for this module."""
    from multimodal_emotion import EmotionRecognizer

    return EmotionRecognizer.from_pretrained()


@pytest.fixture
def upload_dir(tmp_path: Path):
    """Where the server streams uploads; every test must leave it empty."""
    d = tmp_path / "uploads"
    d.mkdir()
    yield d
    assert uploads_in(d) == [], "an upload was left on disk"


def uploads_in(upload_dir: Path) -> list[Path]:
    """Every file under the upload folder (uploads sit in its ``mer-uploads`` subfolder)."""
    return [p for p in upload_dir.rglob("*") if p.is_file()]


def make_client(upload_dir: Path, factory, **settings: Any) -> TestClient:
    app = create_app(factory, Settings(upload_dir=str(upload_dir), **settings))
    return TestClient(app)


def wait_ready(client: TestClient, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/healthz")
        if r.status_code == 200:
            return r.json()
        time.sleep(0.02)
    raise AssertionError(f"not ready: {r.json()}")


@pytest.fixture
def fake(heads: EmotionModel) -> FakeRecognizer:
    return FakeRecognizer(heads)


@pytest.fixture
def client(upload_dir: Path, fake: FakeRecognizer):
    with make_client(upload_dir, lambda: fake, max_upload_mb=1) as c:
        wait_ready(c)
        yield c


def post_file(client, name: str, data: bytes, **fields: str):
    return client.post("/v1/analyze", files={"file": (name, data)}, data=fields or None)


def assert_error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"], body
    return body


def check_distribution(probs: dict) -> None:
    assert list(probs) == list(LABELS)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)


# -- readiness -------------------------------------------------------------------------------
def test_healthz_is_503_until_models_load_then_200(upload_dir, heads, demo_clip):
    release = threading.Event()

    def slow_factory():
        assert release.wait(30)
        return FakeRecognizer(heads)

    with make_client(upload_dir, slow_factory) as c:
        body = assert_error(c.get("/healthz"), 503, "not_ready")
        assert body["status"] == "loading"
        assert_error(c.get("/v1/models"), 503, "not_ready")
        assert_error(c.post("/v1/fuse", json={"probabilities": {"audio": [1, 0, 0, 0, 0, 0, 0]}}),
                     503, "not_ready")
        r = post_file(c, "demo.mp4", demo_clip.read_bytes())
        assert_error(r, 503, "not_ready")
        assert r.headers["retry-after"]
        assert c.get("/").status_code == 200  # the page loads and waits by itself
        release.set()
        body = wait_ready(c)
        assert body["status"] == "ready" and body["queue"]["running"] == 0


def test_failed_model_load_is_reported_not_hidden(upload_dir):
    def broken():
        raise RuntimeError("weights are missing")

    with make_client(upload_dir, broken) as c:
        deadline = time.monotonic() + 10
        while (body := c.get("/healthz").json())["error"] == "not_ready":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert body["error"] == "model_load_failed" and "weights are missing" in body["message"]
        assert_error(c.get("/v1/models"), 503, "model_load_failed")


# -- analyze with the real shipped model -----------------------------------------------------
def test_analyze_demo_clip_with_the_real_model(upload_dir, real_rec, demo_clip):
    with make_client(upload_dir, lambda: real_rec) as c:
        wait_ready(c)
        with demo_clip.open("rb") as f:
            r = c.post("/v1/analyze", files={"file": ("my clip.mp4", f, "video/mp4")})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["path"] == "my clip.mp4"  # the client's name, never the server's temp path
    assert d["label"] in LABELS
    check_distribution(d["probabilities"])
    assert set(d["modalities"]) == {"audio", "text", "face"}
    for m in ("audio", "text", "face"):
        assert d["modalities"][m]["available"], d["modalities"][m]
        check_distribution(d["modalities"][m]["probabilities"])
    assert "happy" in d["modalities"]["text"]["transcript"].lower()
    # Same structure as `mer analyze --json` (Prediction.to_dict()).
    ref = real_rec.analyze(demo_clip).to_dict()
    assert list(d) == list(ref)
    for m in ref["modalities"]:
        assert set(d["modalities"][m]) == set(ref["modalities"][m])
    assert set(d["timings_ms"]) == set(ref["timings_ms"])
    assert d["fusion"] == ref["fusion"] and d["duration_s"] == ref["duration_s"]


def test_analyze_audio_only_wav_fusion_and_fps(upload_dir, real_rec, audio_only_wav,
                                               demo_clip):
    with make_client(upload_dir, lambda: real_rec) as c:
        wait_ready(c)
        d = post_file(c, "speech.wav", audio_only_wav.read_bytes(), fusion="sum").json()
        assert d["label"] in LABELS and d["fusion"] == "sum"
        assert d["modalities"]["audio"]["available"] and d["modalities"]["text"]["available"]
        assert not d["modalities"]["face"]["available"] and d["modalities"]["face"]["reason"]
        r = post_file(c, "demo.mp4", demo_clip.read_bytes(), fps="2", fusion="attention")
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["fusion"] == "attention"
        assert 8 <= d["modalities"]["face"]["frames"] <= 12  # 5 s at 2 fps, not the default 4
        assert d["timings_ms"]["decode"] > 0


def test_healthz_answers_while_a_long_clip_is_analyzed(upload_dir, real_rec, long_clip):
    """Inference runs off the event loop: /healthz stays fast during a 25 s clip's analysis."""
    app = create_app(lambda: real_rec, Settings(upload_dir=str(upload_dir)))
    with serve_in_thread(app) as url, ThreadPoolExecutor(1) as pool:
        with long_clip.open("rb") as f:
            data = f.read()
        job = pool.submit(httpx.post, url + "/v1/analyze",
                          files={"file": ("long.mp4", data)}, timeout=120)
        latencies, saw_running = [], False
        while not job.done():
            t = time.perf_counter()
            h = httpx.get(url + "/healthz", timeout=10)
            latencies.append(time.perf_counter() - t)
            assert h.status_code == 200
            saw_running |= h.json()["queue"]["running"] == 1
            time.sleep(0.05)
        r = job.result()
    assert r.status_code == 200, r.text
    d = r.json()
    assert len(d["segments"]) >= 2 and all(s["label"] in LABELS for s in d["segments"])
    assert saw_running, "the analysis never showed as running while /healthz was polled"
    assert max(latencies) < 1.0, f"/healthz took up to {max(latencies):.2f} s"


# -- upload errors ---------------------------------------------------------------------------
def test_garbage_text_and_images_are_415_whatever_their_name(client, corrupt_file):
    assert_error(post_file(client, "clip.mp4", b"just some text, not a video\n" * 40), 415,
                 "unsupported_media_type")
    png = b"\x89PNG\r\n\x1a\n" + bytes(600)
    assert_error(post_file(client, "clip.mp4", png), 415, "unsupported_media_type")
    assert_error(post_file(client, "clip.mp4", corrupt_file.read_bytes()), 415,
                 "unsupported_media_type")
    tiny = post_file(client, "clip.wav", b"hi")  # shorter than the sniffing window
    assert_error(tiny, 415, "unsupported_media_type")


def test_corrupt_media_with_a_valid_signature_is_400(client, truncated_clip, fake):
    body = assert_error(post_file(client, "cut.mp4", truncated_clip.read_bytes()), 400,
                        "unreadable_media")
    assert "cut.mp4" in body["message"] and "mer-upload" not in body["message"]
    assert_error(post_file(client, "x.mp4", MP4_HEAD + bytes(range(256)) * 8), 400,
                 "unreadable_media")


def test_empty_upload_is_400(client, empty_file):
    assert_error(post_file(client, "empty.mp4", empty_file.read_bytes()), 400, "empty_upload")


def test_bad_fields_are_422(client, demo_clip, fake):
    data = demo_clip.read_bytes()
    body = assert_error(post_file(client, "a.mp4", data, fusion="median"), 422,
                        "invalid_request")
    assert "median" in body["message"] and "concat" in body["message"]
    for fps in ("0.1", "100", "fast", "nan"):
        assert "fps" in assert_error(post_file(client, "a.mp4", data, fps=fps), 422,
                                     "invalid_request")["message"]
    assert_error(client.post("/v1/analyze", data={"fusion": "sum"}), 422, "invalid_request")
    assert_error(client.post("/v1/analyze", files={"other": ("a.mp4", data)}), 422,
                 "invalid_request")
    assert_error(client.post("/v1/analyze", content=b"{}",
                             headers={"content-type": "application/json"}), 422,
                 "invalid_request")
    assert fake.calls == 0


def test_too_large_from_content_length_is_413_and_nothing_is_kept(client, upload_dir):
    r = post_file(client, "big.mp4", MP4_HEAD + bytes(2 * 1024 * 1024))
    body = assert_error(r, 413, "upload_too_large")
    assert "MER_MAX_UPLOAD_MB" in body["message"]


def _asgi_post(app, chunks: list[bytes], boundary: bytes = b"B0UND") -> tuple[int, dict, int]:
    """Drive the ASGI app directly with a chunked body; return status, JSON, chunks read."""
    calls = 0

    async def receive():
        nonlocal calls
        calls += 1
        if calls <= len(chunks):
            return {"type": "http.request", "body": chunks[calls - 1],
                    "more_body": calls < len(chunks)}
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/analyze", "raw_path": b"/v1/analyze",
             "root_path": "", "query_string": b"", "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 1),
             "headers": [(b"content-type", b"multipart/form-data; boundary=" + boundary)]}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), calls


def multipart_chunks(first: bytes, n: int, chunk: bytes, boundary: bytes = b"B0UND") -> list:
    head = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"file\"; "
            b"filename=\"x.mp4\"\r\nContent-Type: video/mp4\r\n\r\n")
    return [head, first] + [chunk] * n + [b"\r\n--" + boundary + b"--\r\n"]


def test_streamed_upload_stops_being_read_at_the_limit(upload_dir, fake):
    """No Content-Length (chunked): the server counts while it reads and stops at the limit."""
    app = create_app(lambda: fake, Settings(upload_dir=str(upload_dir), max_upload_mb=0.5))
    app.state.mer.load(lambda: fake)
    chunks = multipart_chunks(MP4_HEAD, 200, bytes(64 * 1024))  # 12.5 MB offered
    status, body, read = _asgi_post(app, chunks)
    assert status == 413 and body["error"] == "upload_too_large"
    assert read <= 12, f"read {read} of {len(chunks)} chunks before refusing"
    status, body, read = _asgi_post(app, multipart_chunks(b"plain text " * 60, 200, b"x" * 4096))
    assert status == 415 and read <= 3, (status, read)


def test_too_large_is_refused_before_the_body_over_a_real_socket(upload_dir, fake):
    """A client announcing 10 GB gets 413 at once, without sending a byte of body."""
    app = create_app(lambda: fake, Settings(upload_dir=str(upload_dir), max_upload_mb=1))
    with serve_in_thread(app) as url:
        host, port = url.rsplit("//", 1)[1].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n"
                      b"Content-Type: multipart/form-data; boundary=B0UND\r\n\r\n")
            t = time.perf_counter()
            reply = b""
            while chunk := s.recv(65536):  # the server closes after answering
                reply += chunk
            assert time.perf_counter() - t < 5
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert b"upload_too_large" in reply


# -- queue -----------------------------------------------------------------------------------
def test_full_queue_is_429_and_every_file_is_deleted(upload_dir, heads, demo_clip):
    gate = threading.Event()
    fake = FakeRecognizer(heads, gate)
    app = create_app(lambda: fake, Settings(upload_dir=str(upload_dir), workers=1,
                                            queue_size=1))
    data = demo_clip.read_bytes()
    with serve_in_thread(app) as url, ThreadPoolExecutor(2) as pool:
        def post():
            return httpx.post(url + "/v1/analyze", files={"file": ("a.mp4", data)}, timeout=60)

        first = pool.submit(post)
        assert fake.started.wait(20)
        second = pool.submit(post)
        deadline = time.monotonic() + 20
        while len(uploads_in(upload_dir)) < 2:  # the running and the waiting upload
            assert time.monotonic() < deadline, "second request never queued"
            time.sleep(0.02)
        assert httpx.get(url + "/healthz").json()["queue"]["waiting"] == 1
        third = post()
        assert_error(third, 429, "queue_full")
        assert third.headers["retry-after"]
        gate.set()
        assert first.result().status_code == 200 and second.result().status_code == 200
        deadline = time.monotonic() + 5
        while uploads_in(upload_dir):  # deleted by the pool's done-callback
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert httpx.get(url + "/healthz").json()["queue"] == {
            "running": 0, "waiting": 0, "workers": 1, "queue_size": 1}


# -- API key ---------------------------------------------------------------------------------
def test_api_key_guards_v1_but_not_healthz_or_the_page(upload_dir, fake, demo_clip):
    with make_client(upload_dir, lambda: fake, api_key="s3cret") as c:
        health = wait_ready(c)
        assert health["auth_required"] is True
        assert c.get("/").status_code == 200
        assert_error(c.get("/v1/models"), 401, "unauthorized")
        assert_error(c.get("/v1/models", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
        assert_error(post_file(c, "a.mp4", demo_clip.read_bytes()), 401, "unauthorized")
        assert_error(c.post("/v1/fuse", json={}), 401, "unauthorized")
        assert c.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        r = c.post("/v1/analyze", headers={"X-API-Key": "s3cret"},
                   files={"file": ("a.mp4", demo_clip.read_bytes())})
        assert r.status_code == 200, r.text


# -- fuse ------------------------------------------------------------------------------------
def test_fuse_embeddings_matches_the_model(client, heads):
    rng = np.random.default_rng(0)
    emb = {m: rng.normal(size=d).astype(np.float32) for m, d in heads.dims.items()}
    for fusion in ("concat", "sum", "attention", "late"):
        r = client.post("/v1/fuse", json={"embeddings": {m: v.tolist() for m, v in emb.items()},
                                          "mask": ["audio", "face"], "fusion": fusion})
        assert r.status_code == 200, r.text
        d = r.json()
        fused, experts = heads.predict(emb, {"audio": True, "text": False, "face": True}, fusion)
        assert d["fusion"] == fusion and d["input"] == "embeddings"
        assert d["modalities_used"] == ["audio", "face"]
        check_distribution(d["probabilities"])
        assert list(d["probabilities"].values()) == pytest.approx(fused.tolist(), abs=1e-4)
        assert d["label"] == LABELS[int(fused.argmax())]
        assert d["modalities"]["text"] is None
        check_distribution(d["modalities"]["audio"]["probabilities"])
    default = client.post("/v1/fuse", json={"embeddings": {"face": emb["face"].tolist()}}).json()
    assert default["fusion"] == heads.default_fusion and default["modalities_used"] == ["face"]


def test_fuse_embedding_errors_are_422(client, heads):
    body = assert_error(client.post("/v1/fuse", json={"embeddings": {"audio": [0.0] * 10}}),
                        422, "invalid_request")
    assert str(heads.dims["audio"]) in body["message"] and "10" in body["message"]
    ok = {"face": [0.0] * 256}
    for payload, word in [
        ({"embeddings": ok, "fusion": "median"}, "median"),
        ({"embeddings": ok, "fusion": "mean"}, "probabilities"),
        ({"embeddings": {"smell": [0.0]}}, "smell"),
        ({"embeddings": ok, "mask": ["audio"]}, "audio"),
        ({"embeddings": ok, "mask": {"face": False}}, "no modality"),
        ({"embeddings": ok, "probabilities": {"face": [1, 0, 0, 0, 0, 0, 0]}}, "exactly one"),
        ({}, "exactly one"),
    ]:
        msg = assert_error(client.post("/v1/fuse", json=payload), 422,
                           "invalid_request")["message"]
        assert word in msg, (payload, msg)
    # FastAPI's own validation errors leave in the same shape.
    body = assert_error(client.post("/v1/fuse", json={"embeddings": {"face": "zeros"}}), 422,
                        "invalid_request")
    assert "embeddings.face" in body["message"] and body["details"]
    assert_error(client.post("/v1/fuse", content=b"not json",
                             headers={"content-type": "application/json"}), 422,
                 "invalid_request")


def test_fuse_probabilities_with_mean_and_product(client):
    audio = [0.1, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1]
    text = dict(zip(LABELS, [0.5, 0.3, 0.2, 0, 0, 0, 0]))
    d = client.post("/v1/fuse", json={"probabilities": {"audio": audio, "text": text}}).json()
    assert d["fusion"] == "mean" and "mean" in d["rule"] and d["input"] == "probabilities"
    expect = (np.array(audio) + np.array(list(text.values()))) / 2
    assert list(d["probabilities"].values()) == pytest.approx(expect.tolist(), abs=1e-5)
    assert d["label"] == "happy"
    d = client.post("/v1/fuse", json={"probabilities": {"audio": audio, "text": text},
                                      "fusion": "product"}).json()
    prod = np.array(audio) * np.maximum(np.array(list(text.values())), 1e-6)
    assert list(d["probabilities"].values()) == pytest.approx((prod / prod.sum()).tolist(),
                                                              abs=1e-5)
    assert d["label"] == "happy" and d["fusion"] == "product"
    d = client.post("/v1/fuse", json={"probabilities": {"audio": audio, "text": text},
                                      "mask": {"audio": False, "text": True}}).json()
    assert d["modalities_used"] == ["text"] and d["label"] == "neutral"
    for payload, word in [
        ({"probabilities": {"audio": audio[:6]}}, "7"),
        ({"probabilities": {"audio": [0.5] * 7}}, "sums to"),
        ({"probabilities": {"audio": [-1, 2, 0, 0, 0, 0, 0]}}, ">= 0"),
        ({"probabilities": {"audio": {"joy": 1.0}}}, "joy"),
        ({"probabilities": {"audio": audio}, "fusion": "concat"}, "embeddings"),
        ({"probabilities": {"audio": audio}, "fusion": "vote"}, "vote"),
    ]:
        msg = assert_error(client.post("/v1/fuse", json=payload), 422,
                           "invalid_request")["message"]
        assert word in msg, (payload, msg)


# -- models, page, misc ----------------------------------------------------------------------
def test_models_describes_what_is_loaded(client, heads):
    d = client.get("/v1/models").json()
    assert d["labels"] == list(LABELS)
    assert {m: e["dim"] for m, e in d["encoders"].items()} == heads.dims
    assert d["encoders"]["audio"]["name"] == "whisper" and d["encoders"]["face"]["name"]
    assert d["fusions"] == list(heads.fusions) and d["default_fusion"] == heads.default_fusion
    assert set(d["late_fusion_rules"]) == {"mean", "product"}
    props = d["fusion_properties"]
    assert props["product"] == {"keeps_single_modality": True, "decision_level": True}
    assert not any(p["keeps_single_modality"] for n, p in props.items() if n != "product")
    assert set(d["calibration"]["temperature"]) <= set(heads.dims)
    import torch

    import multimodal_emotion

    assert d["versions"]["torch"] == torch.__version__
    assert d["versions"]["multimodal_emotion"] == multimodal_emotion.__version__
    assert d["model"]["provenance"] and d["model"]["format"]


def test_page_and_static_files_are_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/static/app.js" in r.text and "/static/style.css" in r.text
    assert "http://" not in r.text and "https://" not in r.text  # no CDN: works offline
    assert "XMLHttpRequest" in client.get("/static/app.js").text
    assert client.get("/static/style.css").status_code == 200
    # both pages load the one shared script before their own, and share one head
    heads = {}
    for url, own in (("/", "app.js"), ("/live", "live.js")):
        page = client.get(url)
        assert page.status_code == 200 and "http://" not in page.text
        assert page.text.index("/static/common.js") < page.text.index(f"/static/{own}")
        head = page.text.split("<head>")[1].split("</head>")[0].splitlines()
        heads[url] = [ln for ln in head if "<title>" not in ln and "live.css" not in ln]
    assert heads["/"] == heads["/live"]
    common = client.get("/static/common.js")
    assert common.status_code == 200 and "javascript" in common.headers["content-type"]
    assert "async function watchHealth(" in common.text
    for own in ("app.js", "live.js"):  # the shared code is not copied back into a page
        assert "function watchHealth(" not in client.get(f"/static/{own}").text
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/v1/analyze"), 405, "method_not_allowed")


def test_logs_carry_no_content_unless_asked(upload_dir, heads, demo_clip, caplog):
    data = demo_clip.read_bytes()
    for log_content in (False, True):
        caplog.clear()
        fake = FakeRecognizer(heads)
        with caplog.at_level(logging.INFO, logger="multimodal_emotion.serving"), \
                make_client(upload_dir, lambda: fake, log_content=log_content) as c:
            wait_ready(c)
            assert post_file(c, "secret-name.mp4", data).status_code == 200
        text = caplog.text
        assert "status=200" in text and f"bytes={len(data)}" in text
        assert ("secret-name" in text) is log_content
        assert ("so happy today" in text) is log_content


# -- units -----------------------------------------------------------------------------------
@pytest.mark.parametrize("head,kind", [
    (MP4_HEAD, "mp4"), (b"\x00\x00\x00\x14ftypqt  ", "mp4"), (b"\x00\x00\x00\x08wide", "mov"),
    (b"\x1a\x45\xdf\xa3\x01", "matroska"), (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
    (b"RIFF\x24\x00\x00\x00AVI LIST", "avi"), (b"FLV\x01\x05", "flv"), (b"ID3\x04\x00", "mp3"),
    (b"\xff\xfb\x90\x64", "mp3"), (b"\xff\xf1\x50\x80", "aac"), (b"fLaC\x00", "flac"),
    (b"OggS\x00\x02", "ogg"), (b"RIFF\x24\x00\x00\x00WEBPVP8 ", None),
    (b"\x89PNG\r\n\x1a\n", None), (b"\xff\xd8\xff\xe0", None), (b"%PDF-1.7", None),
    (b"hello", None), (b"", None), (b"\xff\xff\xff\xff", None),
])
def test_sniff_reads_magic_numbers(head, kind):
    assert sniff(head) == kind


def test_settings_come_from_the_environment(tmp_path):
    s = Settings.from_env({"MER_MAX_UPLOAD_MB": "5", "MER_QUEUE_SIZE": "3", "MER_WORKERS": "2",
                           "MER_API_KEY": "k", "MER_LOG_CONTENT": "1",
                           "MER_UPLOAD_DIR": str(tmp_path)}, model_dir=None)
    assert (s.max_upload_bytes, s.queue_size, s.workers, s.api_key, s.log_content) == (
        5 * 1024 * 1024, 3, 2, "k", True)
    assert s.upload_dir == str(tmp_path) and s.model_dir is None
    d = Settings.from_env({"MER_API_KEY": ""})
    assert d.api_key is None and not d.log_content and d.workers == 1
    from multimodal_emotion.errors import InputError

    with pytest.raises(InputError, match="MER_MAX_UPLOAD_MB"):
        Settings.from_env({"MER_MAX_UPLOAD_MB": "lots"})
    with pytest.raises(InputError, match="MER_WORKERS"):
        Settings.from_env({"MER_WORKERS": "0"})


def test_serve_cli_hands_the_app_to_uvicorn(monkeypatch, tmp_path):
    import argparse

    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    monkeypatch.setenv("MER_UPLOAD_DIR", str(tmp_path))
    monkeypatch.setenv("MER_MAX_UPLOAD_MB", "7")
    rc = serve_cli(argparse.Namespace(host="127.0.0.1", port=8123, model="some/dir"))
    assert rc == 0 and seen["host"] == "127.0.0.1" and seen["port"] == 8123
    settings = seen["app"].state.mer.settings
    assert settings.model_dir == "some/dir" and settings.max_upload_mb == 7


def test_analyze_applies_a_label_map_sent_with_the_request(client, demo_clip):
    lm = json.dumps({"name": "csat", "labels": {
        "satisfied": ["happy", "surprised"], "neutral": ["neutral"],
        "frustrated": ["angry", "sad", "disgust", "fearful"]}})
    d = post_file(client, "demo.mp4", demo_clip.read_bytes(), labels=lm).json()
    assert d["business"]["scheme"] == "csat" and d["business"]["label"] == "satisfied"
    assert d["business"]["probabilities"]["satisfied"] == pytest.approx(0.75)
    bad = post_file(client, "demo.mp4", demo_clip.read_bytes(),
                    labels='{"labels": {"good": ["happy"]}}')
    assert "belong to no category" in assert_error(bad, 422, "invalid_request")["message"]
