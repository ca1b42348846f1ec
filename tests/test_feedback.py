"""``POST /v1/feedback`` and the analyze hook (issue 15, part 4): off by default; when on, each
analysis keeps its expert logits (never the media) under ``MER_DATA_DIR`` with a random id, and a
person's label for that id lands in the store that ``mer adapt --feedback`` reads."""

from __future__ import annotations

import io
import json
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from multimodal_emotion.adapt import feedback_records
from multimodal_emotion.errors import InputError
from multimodal_emotion.feedback_store import FeedbackStore
from multimodal_emotion.labels import LABELS
from multimodal_emotion.model import EmotionModel
from multimodal_emotion.serving.app import create_app
from multimodal_emotion.serving.settings import Settings
from multimodal_emotion.types import ModalityView, Prediction, WindowLogits

DIMS = {"audio": 12, "text": 8, "face": 6}
TRANSCRIPT = "the parcel never arrived and nobody called me back"


def wav_bytes(seconds: float = 0.5, seed: int = 0) -> bytes:
    """A real 16 kHz mono PCM WAV of noise (the fake recognizer never needs to hear it)."""
    pcm = (np.random.default_rng(seed).normal(size=int(16000 * seconds)) * 3000).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


class LogitRecognizer:
    """Answers 'angry' with fixed expert logits per window, as the real recognizer reports
    them, and a transcript that must not be stored unless content logging is on."""

    fps, window_s, model_dir = 4.0, 10.0, "tiny"

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = EmotionModel({"dims": DIMS, "experts": {k: {"hidden": 0} for k in DIMS},
                                   "fusions": {"product": {}}}).eval()

    def analyze(self, source: Any, fusion: str | None = None) -> Prediction:
        probs = {name: (0.7 if name == "angry" else 0.05) for name in LABELS}
        views = {m: ModalityView(True, "angry", probs, None, {}) for m in DIMS}
        views["text"].extras["transcript"] = TRANSCRIPT
        pred = Prediction("angry", probs, views, fusion or "product", 0.5)
        rng = np.random.default_rng(0)
        pred.expert_logits = [WindowLogits(0.0, 0.5, {"audio": rng.normal(size=7).tolist(),
                                                      "text": rng.normal(size=7).tolist(),
                                                      "face": None})]
        return pred


def make_client(tmp_path: Path, **settings: Any) -> TestClient:
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    rec = LogitRecognizer()
    app = create_app(lambda: rec, Settings(upload_dir=str(uploads), **settings))
    client = TestClient(app)
    client.rec = rec  # type: ignore[attr-defined]
    return client


def ready(client: TestClient) -> TestClient:
    for _ in range(500):
        if client.get("/healthz").status_code == 200:
            return client
        time.sleep(0.01)
    raise AssertionError("never ready")


def analyze(client: TestClient, **headers: str) -> dict:
    r = client.post("/v1/analyze", files={"file": ("my call.wav", wav_bytes())},
                    headers=headers or None)
    assert r.status_code == 200, r.text
    return r.json()


def test_feedback_is_off_by_default_and_says_how_to_turn_it_on(tmp_path):
    with make_client(tmp_path) as c:
        ready(c)
        assert "analysis_id" not in analyze(c)
        r = c.post("/v1/feedback", json={"analysis_id": "x", "label": "angry"})
        assert r.status_code == 404 and r.json()["error"] == "feedback_disabled"
        assert "MER_FEEDBACK=1" in r.json()["message"]


def test_a_label_for_an_analysis_lands_in_the_store_adapt_reads(tmp_path):
    data = tmp_path / "data"
    with make_client(tmp_path, feedback=True, data_dir=str(data)) as c:
        ready(c)
        body = analyze(c)
        aid = body["analysis_id"]
        assert isinstance(aid, str) and len(aid) >= 16
        assert analyze(c)["analysis_id"] != aid  # a fresh random id per analysis
        r = c.post("/v1/feedback", json={"analysis_id": aid, "label": "angry"})
        assert r.status_code == 200 and r.json() == {"analysis_id": aid, "label": "angry",
                                                      "stored": True}
        r = c.post("/v1/feedback", json={"analysis_id": aid, "label": "sad"})  # a correction
        assert r.status_code == 200
        model = c.rec.model  # type: ignore[attr-defined]
    store = FeedbackStore.open(data)
    row = store.get(aid)
    assert row["label"] == "sad" and row["transcript"] is None
    assert store.counts() == {"analyses": 2, "labelled": 1}
    records, counts = feedback_records(data, model)
    assert counts["used"] == 1 and records[0].label == LABELS.index("sad")
    stored = records[0].windows[0].logits
    assert stored["face"] is None and len(stored["audio"]) == 7


def test_unknown_ids_labels_and_bodies_are_clear_errors(tmp_path):
    with make_client(tmp_path, feedback=True, data_dir=str(tmp_path / "d")) as c:
        ready(c)
        aid = analyze(c)["analysis_id"]
        r = c.post("/v1/feedback", json={"analysis_id": "no-such-id", "label": "angry"})
        assert r.status_code == 404 and r.json()["error"] == "unknown_analysis"
        r = c.post("/v1/feedback", json={"analysis_id": aid, "label": "grumpy"})
        assert r.status_code == 422 and "angry" in r.json()["message"]
        r = c.post("/v1/feedback", json={"analysis_id": aid, "label": "anger"})
        assert r.status_code == 422  # canonical names only
        r = c.post("/v1/feedback", content=b"not json")
        assert r.status_code == 422 and r.json()["error"] == "invalid_request"
        r = c.post("/v1/feedback", json={"analysis_id": aid, "label": "angry",
                                         "note": "x" * 5000})
        assert r.status_code == 413 and r.json()["error"] == "body_too_large"
    assert FeedbackStore.open(tmp_path / "d").get(aid)["label"] is None


def test_feedback_needs_the_api_key_like_every_v1_route(tmp_path):
    with make_client(tmp_path, feedback=True, data_dir=str(tmp_path / "d"),
                     api_key="s3cret") as c:
        ready(c)
        aid = analyze(c, **{"X-API-Key": "s3cret"})["analysis_id"]
        r = c.post("/v1/feedback", json={"analysis_id": aid, "label": "angry"})
        assert r.status_code == 401
        r = c.post("/v1/feedback", json={"analysis_id": aid, "label": "angry"},
                   headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200


def test_nothing_of_the_media_name_or_words_is_kept(tmp_path):
    data = tmp_path / "data"
    media = wav_bytes()
    with make_client(tmp_path, feedback=True, data_dir=str(data)) as c:
        ready(c)
        aid = analyze(c)["analysis_id"]
        c.post("/v1/feedback", json={"analysis_id": aid, "label": "angry"})
    files = [p for p in data.rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["feedback.sqlite3"]
    kept = files[0].read_bytes()
    pcm = media[44:]  # the samples after the WAV header
    assert all(pcm[i:i + 64] not in kept for i in range(0, len(pcm) - 64, 997))
    assert b"my call" not in kept and TRANSCRIPT.encode() not in kept
    assert [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()] == []


def test_the_transcript_is_kept_only_with_content_logging_on(tmp_path):
    with make_client(tmp_path, feedback=True, data_dir=str(tmp_path / "d"),
                     log_content=True) as c:
        ready(c)
        aid = analyze(c)["analysis_id"]
    assert FeedbackStore.open(tmp_path / "d").get(aid)["transcript"] == TRANSCRIPT


def test_settings_read_feedback_and_data_dir_and_refuse_feedback_without_a_folder(tmp_path):
    s = Settings.from_env({"MER_FEEDBACK": "1", "MER_DATA_DIR": str(tmp_path)})
    assert s.feedback and s.data_dir == str(tmp_path)
    assert not Settings.from_env({}).feedback
    with pytest.raises(InputError, match="MER_DATA_DIR"):
        Settings.from_env({"MER_FEEDBACK": "yes"})


def test_the_store_refuses_labels_outside_the_set(tmp_path):
    store = FeedbackStore.open(tmp_path)
    aid = store.record([WindowLogits(0, 1, {"audio": [0.0] * 7})], "abc")
    with pytest.raises(InputError):
        store.set_label(aid, "contempt")
    assert not store.set_label("missing", "angry")
    assert json.loads(json.dumps(store.get(aid)))["label"] is None


def test_a_store_that_cannot_be_written_costs_the_id_not_the_analysis(tmp_path):
    data = tmp_path / "d"
    with make_client(tmp_path, feedback=True, data_dir=str(data)) as c:
        ready(c)
        (data / "feedback.sqlite3").unlink()
        (data / "feedback.sqlite3").mkdir()  # sqlite cannot open a folder
        body = analyze(c)
        assert body["label"] == "angry" and "analysis_id" not in body
