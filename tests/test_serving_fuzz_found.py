"""Answers that ``bench/fuzz.py`` found to be 500s, each now a clear 4xx.

* a label map nested a few hundred levels deep (500 bytes of ``[``: fits the 1 KB form-field
  cap) made PyYAML exceed Python's recursion limit; ``/v1/analyze`` and ``/v1/calls`` answered
  500 ``RecursionError``;
* a multipart boundary over 256 characters made python-multipart refuse to build its parser,
  outside the code that turned its errors into 400: 500 ``FormParserError``;
* ``/v1/feedback`` (4 KB body) and the ``/v1/stream`` control messages (4 KB) parse JSON with
  ``json.loads``, which raises ``RecursionError`` past ~1000 levels: 2,000 bytes of ``[``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from multimodal_emotion.errors import InputError
from multimodal_emotion.label_maps import LabelMap
from multimodal_emotion.model import EmotionModel
from multimodal_emotion.serving.app import create_app
from multimodal_emotion.serving.settings import Settings
from multimodal_emotion.serving.stream import StreamClosed, _parse_json

MP4_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
DEEP_YAML = "labels: " + "[" * 500 + "]" * 500  # 1,008 bytes: under the 1 KB field cap
DEEP_JSON = "[" * 2000 + "]" * 2000  # 4,000 bytes: under the 4 KB feedback/stream caps


@pytest.fixture(scope="module")
def heads() -> EmotionModel:
    return EmotionModel.from_pretrained()


@pytest.fixture
def client(tmp_path: Path, heads: EmotionModel):
    """A server whose recognizer is never reached by these requests (they fail before)."""
    rec = SimpleNamespace(model=heads, fps=4.0, window_s=10.0, model_dir="fake")
    settings = Settings(upload_dir=str(tmp_path / "up"), feedback=True,
                        data_dir=str(tmp_path / "data"))
    with TestClient(create_app(lambda: rec, settings)) as c:
        for _ in range(500):
            if c.get("/healthz").status_code == 200:
                break
        yield c
    left = [p for p in (tmp_path / "up").rglob("*") if p.is_file()]
    assert left == [], "an upload was left on disk"


def error(r, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"] == code
    return r.json()["message"]


def test_a_deeply_nested_label_map_is_an_input_error():
    with pytest.raises(InputError, match="nested"):
        LabelMap.parse(DEEP_YAML, source="labels")


@pytest.mark.parametrize("route", ["/v1/analyze", "/v1/calls"])
def test_a_deeply_nested_label_map_field_is_422(client, route):
    r = client.post(route, files={"file": ("a.mp4", MP4_HEAD + bytes(600))},
                    data={"labels": DEEP_YAML})
    assert "nested" in error(r, 422, "invalid_request")


@pytest.mark.parametrize("route", ["/v1/analyze", "/v1/calls"])
def test_a_boundary_over_256_characters_is_400(client, route):
    boundary = "b" * 300
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\""
            f"\r\n\r\n").encode() + MP4_HEAD + f"\r\n--{boundary}--\r\n".encode()
    r = client.post(route, content=body,
                    headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert "boundary" in error(r, 400, "malformed_request").lower()


def test_deeply_nested_feedback_json_is_422(client):
    r = client.post("/v1/feedback", content=DEEP_JSON,
                    headers={"content-type": "application/json"})
    error(r, 422, "invalid_request")


def test_deeply_nested_stream_control_message_closes_as_a_bad_message():
    with pytest.raises(StreamClosed) as info:
        _parse_json(DEEP_JSON)
    assert info.value.code == "bad_message"


def test_a_feedback_client_that_hangs_up_is_one_log_line_not_a_500(tmp_path, heads, caplog):
    """The fuzzer's cut-short bodies: ``/v1/feedback`` logged 'unexpected error' and a
    traceback (status 500) when its client closed mid-body, as uploads once did (issue 18.6)."""
    import asyncio
    import logging

    rec = SimpleNamespace(model=heads, fps=4.0, window_s=10.0, model_dir="fake")
    app = create_app(lambda: rec, Settings(upload_dir=str(tmp_path / "up"), feedback=True,
                                           data_dir=str(tmp_path / "data")))
    caplog.set_level(logging.INFO, logger="multimodal_emotion.serving")
    messages = iter([{"type": "http.request", "body": b'{"analysis_id": "', "more_body": True}])

    async def receive():
        return next(messages, {"type": "http.disconnect"})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/feedback",
             "raw_path": b"/v1/feedback", "root_path": "", "query_string": b"",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "headers": [(b"content-type", b"application/json")]}
    asyncio.run(app(scope, receive, send))
    assert next(m["status"] for m in sent if m["type"] == "http.response.start") == 499
    lines = [r for r in caplog.records if r.name == "multimodal_emotion.serving"]
    assert len(lines) == 1 and "client closed" in lines[0].getMessage()
    assert lines[0].levelno == logging.INFO and lines[0].exc_info is None


@pytest.mark.parametrize("analysis_id", ["\ud800", "a\x00b", "é" * 10])
def test_a_feedback_id_that_no_analysis_could_have_is_404(client, analysis_id):
    """``{"analysis_id": "\\ud800"}`` (a lone surrogate: valid JSON, not UTF-8) reached SQLite,
    which could not encode it: 500 ``UnicodeEncodeError``. Ids are ``secrets.token_urlsafe``."""
    body = '{"analysis_id": %s, "label": "happy"}' % json.dumps(analysis_id)
    r = client.post("/v1/feedback", content=body, headers={"content-type": "application/json"})
    error(r, 404, "unknown_analysis")
