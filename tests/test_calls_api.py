"""``/v1/calls`` (issue 16): a call becomes a job that is stored, analyzed by one background
worker, polled, fetched as JSON or as its HTML report, deleted with every file it had, and
failed cleanly (or resumed) when the server restarts. The turn finder and the recognizer are
the light fakes of test_calls."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from multimodal_emotion.calls.jobs import INTERRUPTED, JobStore, write_json_atomic
from multimodal_emotion.serving.app import create_app
from multimodal_emotion.serving.calls import calls_root
from multimodal_emotion.serving.settings import Settings
from test_calls import AGENT, CUSTOMER, FakeFinder, LoudnessRecognizer, stereo_turns, \
    write_stereo
from test_serving import assert_error, wait_ready


class GatedRecognizer(LoudnessRecognizer):
    """Waits at its first turn until ``gate`` opens; ``started`` says a job is running."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.started = threading.Event(), threading.Event()

    def analyze_segment(self, clip: Any, fusion: Any = None, labels: Any = None) -> Any:
        self.started.set()
        assert self.gate.wait(30), "test gate never opened"
        return super().analyze_segment(clip, fusion, labels)


@pytest.fixture(scope="module")
def call_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = write_stereo(tmp_path_factory.mktemp("api") / "call.wav", AGENT, CUSTOMER, 35.0)
    return path.read_bytes()


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(upload_dir=str(tmp_path / "uploads"), data_dir=str(tmp_path / "data"), **kw)


def client_for(tmp_path: Path, rec: Any, **kw: Any) -> TestClient:
    finder = FakeFinder(stereo_turns())
    return TestClient(create_app(lambda: rec, settings_for(tmp_path, **kw),
                                 call_turns=(finder.find, finder.roles)))


def submit(c: TestClient, data: bytes, **fields: str):
    return c.post("/v1/calls", files={"file": ("call.wav", data)}, data=fields or None)


def wait_status(c: TestClient, job_id: str, want: set[str], timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = c.get(f"/v1/calls/{job_id}").json()
        if body.get("status") in want:
            return body
        time.sleep(0.02)
    raise AssertionError(f"job still {body}")


def files_of(tmp_path: Path, job_id: str) -> list[Path]:
    return [p for p in (tmp_path / "data" / "calls" / job_id).rglob("*") if p.is_file()]


def test_submit_poll_result_report_delete(tmp_path, call_wav):
    with client_for(tmp_path, LoudnessRecognizer()) as c:
        wait_ready(c)
        r = submit(c, call_wav, agent_channel="left", keep_digits="false")
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] == "queued" and job["filename"] == "call.wav"
        assert r.headers["location"] == f"/v1/calls/{job['id']}"
        done = wait_status(c, job["id"], {"done", "failed"})
        assert done["status"] == "done", done
        assert done["progress"]["turns_done"] == done["progress"]["turns_total"] == 8
        result = done["result"]
        assert result["path"] == "call.wav" and len(result["turns"]) == 8
        assert [e["type"] for e in result["events"]] == ["escalation", "recovery"]
        assert "4111" not in json.dumps(result)  # digits redacted by default
        # the media is not kept once analyzed; state and result are
        names = sorted(p.name for p in files_of(tmp_path, job["id"]))
        assert names == ["job.json", "result.json"]
        page = c.get(f"/v1/calls/{job['id']}?format=html")
        assert page.status_code == 200 and page.text.startswith("<!doctype html>")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert c.delete(f"/v1/calls/{job['id']}").json() == {"id": job["id"], "deleted": True}
        assert files_of(tmp_path, job["id"]) == []
        assert_error(c.get(f"/v1/calls/{job['id']}"), 404, "unknown_call")
        assert_error(c.delete(f"/v1/calls/{job['id']}"), 404, "unknown_call")
    assert not list((tmp_path / "data" / "calls" / "mer-uploads").iterdir())


def test_report_waits_for_the_result_and_delete_stops_a_running_job(tmp_path, call_wav):
    rec = GatedRecognizer()
    with client_for(tmp_path, rec) as c:
        wait_ready(c)
        job_id = submit(c, call_wav).json()["id"]
        assert rec.started.wait(10)
        assert c.get(f"/v1/calls/{job_id}").json()["status"] == "running"
        assert_error(c.get(f"/v1/calls/{job_id}?format=html"), 409, "call_not_done")
        assert c.delete(f"/v1/calls/{job_id}").status_code == 200
        assert files_of(tmp_path, job_id) == []
        rec.gate.set()
        time.sleep(0.3)  # the worker notices at its next turn and writes nothing back
        assert files_of(tmp_path, job_id) == []
        assert_error(c.get(f"/v1/calls/{job_id}"), 404, "unknown_call")


def test_waiting_calls_are_bounded(tmp_path, call_wav):
    rec = GatedRecognizer()
    with client_for(tmp_path, rec, queue_size=1) as c:
        wait_ready(c)
        first = submit(c, call_wav).json()["id"]
        assert rec.started.wait(10)  # running: no longer waiting
        assert submit(c, call_wav).status_code == 202
        assert_error(submit(c, call_wav), 429, "queue_full")
        rec.gate.set()
        wait_status(c, first, {"done"})


def test_bad_fields_ids_and_media(tmp_path, call_wav, truncated_clip):
    with client_for(tmp_path, LoudnessRecognizer(), api_key="k") as c:
        wait_ready(c)
        assert_error(submit(c, call_wav), 401, "unauthorized")
        c.headers["X-API-Key"] = "k"
        assert_error(submit(c, call_wav, speakers="0"), 422, "invalid_request")
        assert_error(submit(c, call_wav, agent_channel="middle"), 422, "invalid_request")
        assert_error(submit(c, call_wav, language="Klingon!"), 422, "invalid_request")
        assert_error(submit(c, call_wav, labels="labels: {x: [happy]}"), 422,
                     "invalid_request")
        assert_error(c.get("/v1/calls/../../etc"), 404, "not_found")
        assert_error(c.get("/v1/calls/not-an-id"), 404, "unknown_call")
        spec = c.get("/openapi.json").json()["paths"]
        assert "202" in spec["/v1/calls"]["post"]["responses"]
        assert "409" in spec["/v1/calls/{job_id}"]["get"]["responses"]
        bad = submit(c, truncated_clip.read_bytes()).json()
        failed = wait_status(c, bad["id"], {"done", "failed"})
        assert failed["status"] == "failed" and failed["error"]["error"] == "unreadable_media"
        assert str(tmp_path) not in failed["error"]["message"]
        assert sorted(p.name for p in files_of(tmp_path, bad["id"])) == ["job.json"]


def test_restart_fails_running_jobs_and_resumes_queued_ones(tmp_path, call_wav):
    root = calls_root(settings_for(tmp_path))
    root.mkdir(parents=True)
    jobs = {}
    for status, job_id in (("running", "a" * 32), ("queued", "b" * 32), ("done", "c" * 32)):
        folder = root / job_id
        folder.mkdir()
        if status != "done":
            (folder / "media").write_bytes(call_wav)
        else:
            write_json_atomic(folder / "result.json", {"turns": []})
        write_json_atomic(folder / "job.json", {"id": job_id, "status": status,
                                                "created": time.time(), "filename": "x.wav",
                                                "options": {}, "progress": {}})
        jobs[status] = job_id
    (root / ("d" * 32)).mkdir()  # a job whose state was never written: removed
    with client_for(tmp_path, LoudnessRecognizer()) as c:
        wait_ready(c)
        running = c.get(f"/v1/calls/{jobs['running']}").json()
        assert running["status"] == "failed" and running["error"]["message"] == INTERRUPTED
        assert not (root / jobs["running"] / "media").exists()
        resumed = wait_status(c, jobs["queued"], {"done", "failed"})
        assert resumed["status"] == "done" and len(resumed["result"]["turns"]) == 8
        assert c.get(f"/v1/calls/{jobs['done']}").json()["result"] == {"turns": []}
    assert not (root / ("d" * 32)).exists()


def test_job_state_is_never_half_written(tmp_path):
    """A store opened over leftovers of an interrupted atomic write ignores them."""
    folder = tmp_path / ("e" * 32)
    folder.mkdir()
    write_json_atomic(folder / "job.json", {"id": "e" * 32, "status": "done"})
    write_json_atomic(folder / "result.json", {"turns": []})
    (folder / ".job.json.1.2.tmp").write_text('{"id": "e', encoding="utf-8")
    store = JobStore(tmp_path, runner=lambda *a: {}, max_waiting=1)
    assert store.get("e" * 32)["result"] == {"turns": []}
    assert sorted(p.name for p in folder.iterdir()) == ["job.json", "result.json"]


def test_a_clean_stop_puts_the_running_job_back_in_the_queue(tmp_path):
    running = threading.Event()

    def endless(media, options, progress, should_stop):
        running.set()
        while not should_stop():
            time.sleep(0.01)
        raise InterruptedError

    store = JobStore(tmp_path, endless, max_waiting=2)
    store.start()
    media = tmp_path / "upload.part"
    media.write_bytes(b"RIFF....WAVE")
    job_id = store.submit(media, "a.wav", {})["id"]
    assert running.wait(10)
    store.stop()
    assert store.get(job_id)["status"] == "queued"
    assert (tmp_path / job_id / "media").is_file()
    again = JobStore(tmp_path, lambda *a: {"turns": []}, max_waiting=2)
    again.start()
    deadline = time.monotonic() + 10
    while again.get(job_id)["status"] != "done" and time.monotonic() < deadline:
        time.sleep(0.02)
    again.stop()
    assert again.get(job_id)["result"] == {"turns": []}
    assert not (tmp_path / job_id / "media").exists()


def test_finished_jobs_expire_after_the_keeping_time(tmp_path):
    now = time.time()
    for name, status, finished in (("a", "done", now - 7200), ("b", "failed", now - 7200),
                                   ("c", "done", now - 60), ("d", "queued", None)):
        folder = tmp_path / (name * 32)
        folder.mkdir()
        write_json_atomic(folder / "job.json", {"id": name * 32, "status": status,
                                                "created": now - 9000, "finished": finished})
        if status == "queued":
            (folder / "media").write_bytes(b"x")
    store = JobStore(tmp_path, runner=lambda *a: {}, keep_s=3600)
    assert sorted(p.name[0] for p in tmp_path.iterdir()) == ["c", "d"]
    assert store.expire(now=now + 3600) == 1  # c; the queued job is never expired
    assert [p.name[0] for p in tmp_path.iterdir()] == ["d"]
