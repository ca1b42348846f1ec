"""End to end: clips in, Prediction out, with the shipped default model and real encoders."""

import json
import subprocess
import sys

import numpy as np
import pytest

from multimodal_emotion import EmotionRecognizer, LABELS, media
from multimodal_emotion.errors import MediaError


@pytest.fixture(scope="module")
def rec():
    return EmotionRecognizer.from_pretrained()


def check_distribution(probs):
    assert set(probs) == set(LABELS)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)


def test_a_known_language_skips_language_id_and_keeps_the_transcript(rec, demo_clip):
    """What a call does after its first sure turn: the language is handed in, English is
    transcribed by tiny.en without Whisper base, and the answer reports that language."""
    clip = media.load(demo_clip)
    told = rec.analyze_segment(clip, language=("en", 0.97)).to_dict()
    text = told["modalities"]["text"]
    assert text["language"] == "en" and text["language_probability"] == pytest.approx(0.97)
    assert "happy" in text["transcript"].lower()
    assert told["timings_ms"]["language"] < 5.0  # nothing ran for it


def test_a_loaded_recognizer_keeps_numpy_blas_on_one_thread(rec):
    """OpenBLAS splits a product differently on one and on two threads, and tiny.en turned those
    last bits into other words (blas.py): a recognizer pins numpy's BLAS to one thread, so the
    answer does not depend on how many cores the machine has."""
    from threadpoolctl import threadpool_info

    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas and all(p["num_threads"] == 1 for p in blas), blas


def test_demo_clip_uses_all_three_modalities(rec, demo_clip):
    d = rec.analyze(demo_clip).to_dict()
    assert d["label"] in LABELS and d["fusion"] == rec.model.default_fusion
    assert d["fusion"] == "product"
    check_distribution(d["probabilities"])
    assert d["confidence"] == pytest.approx(d["probabilities"][d["label"]], abs=1e-4)
    ex = d["explanation"]
    assert ex["label"] == d["label"] and set(ex["contributions"]) == {"audio", "text", "face"}
    assert ex["base"] + sum(ex["contributions"].values()) == pytest.approx(
        d["probabilities"][d["label"]], abs=1e-4)
    ag = d["agreement"]
    assert sorted(ag["agree"] + ag["disagree"]) == ["audio", "face", "text"]
    assert ag["score"] == pytest.approx(len(ag["agree"]) / 3, abs=1e-3)
    for m in ("audio", "text", "face"):
        assert d["modalities"][m]["available"], d["modalities"][m]
        check_distribution(d["modalities"][m]["probabilities"])
    assert "happy" in d["modalities"]["text"]["transcript"].lower()
    face = d["modalities"]["face"]
    assert face["frames"] >= 15 and face["frames_with_face"] >= face["frames"] * 0.8
    assert d["duration_s"] == pytest.approx(5.0, abs=0.2)
    assert {"decode", "audio", "transcribe", "text", "face", "fusion", "total"} <= set(
        d["timings_ms"])
    assert "segments" not in d


@pytest.mark.parametrize("fusion", ["product", "concat", "sum", "attention", "late"])
def test_every_fusion_answers(rec, demo_clip, fusion):
    d = rec.analyze(demo_clip, fusion=fusion).to_dict()
    assert d["fusion"] == fusion and d["label"] in LABELS
    assert 0 < d["confidence"] <= 1


def test_cli_fusion_choices_are_the_registry():
    from multimodal_emotion.cli import FUSION_CHOICES
    from multimodal_emotion.fusion import FUSIONS

    assert sorted(FUSION_CHOICES) == sorted(FUSIONS)


def test_silent_clip_masks_audio_and_text_and_answers_from_the_face(rec, silent_clip):
    d = rec.analyze(silent_clip).to_dict()
    audio, text, face = (d["modalities"][m] for m in ("audio", "text", "face"))
    assert not audio["available"] and "silen" in audio["reason"]
    assert not text["available"] and text["transcript"] == ""
    assert face["available"]
    assert d["probabilities"] is not None and d["label"] in LABELS
    # one modality: the default fusion's answer is the face expert's, exactly; only the face
    # contributes, and a learned strategy is flagged
    for k in LABELS:
        assert d["probabilities"][k] == pytest.approx(face["probabilities"][k], abs=1e-3)
    assert d["explanation"]["contributions"]["audio"] == 0
    assert d["explanation"]["contributions"]["text"] == 0
    assert "warnings" not in d
    learned = rec.analyze(silent_clip, fusion="sum").to_dict()
    assert any("does not keep" in w for w in learned["warnings"])


def test_clip_without_a_face_says_so(rec, no_face_clip):
    d = rec.analyze(no_face_clip).to_dict()
    face = d["modalities"]["face"]
    assert not face["available"] and face["frames_with_face"] == 0 and face["frames"] > 0
    assert "no face" in face["reason"]
    assert d["modalities"]["audio"]["available"] and d["modalities"]["text"]["available"]
    assert d["label"] in LABELS


def test_video_without_audio_track(rec, no_audio_clip):
    d = rec.analyze(no_audio_clip).to_dict()
    assert not d["modalities"]["audio"]["available"]
    assert "no audio track" in d["modalities"]["audio"]["reason"]
    assert not d["modalities"]["text"]["available"]
    assert d["modalities"]["face"]["available"]


def test_audio_only_file(rec, audio_only_wav):
    d = rec.analyze(audio_only_wav).to_dict()
    assert not d["modalities"]["face"]["available"]
    assert d["modalities"]["face"]["reason"] == "no video track"
    assert d["modalities"]["audio"]["available"] and d["label"] in LABELS


def test_masked_modality_does_not_change_the_answer(rec, no_face_clip):
    """The fused answer for a faceless clip equals audio+text fused alone: zeros are not data."""
    from multimodal_emotion import media

    clip = media.load(no_face_clip)
    outputs, _ = rec.encode(clip)
    emb = {m: o.embedding for m, o in outputs.items()}
    avail = {m: o.available for m, o in outputs.items()}
    a, _ = rec.model.predict(emb, avail, "sum")
    emb["face"] = np.random.default_rng(0).normal(size=emb["face"].shape) * 50
    b, _ = rec.model.predict(emb, avail, "sum")
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_long_clip_is_analyzed_in_windows(rec, long_clip):
    seen = []
    d = rec.analyze(long_clip, window_s=10.0,
                    progress=lambda done, total: seen.append((done, total))).to_dict()
    # the file was streamed window by window: the same answer as the whole decode's
    whole = rec.analyze(media.load(long_clip), window_s=10.0).to_dict()
    assert d["label"] == whole["label"]
    for k in LABELS:
        assert d["probabilities"][k] == pytest.approx(whole["probabilities"][k], abs=1e-4)
    assert [round(done) for done, _ in seen] == [10, 20, 25]
    assert all(total == pytest.approx(d["duration_s"], abs=0.1) for _, total in seen)
    segs = d["segments"]
    assert [(s["start"], s["end"]) for s in segs] == [(0, 10), (10, 20), (20, pytest.approx(
        d["duration_s"], abs=0.01))]
    for s in segs:
        check_distribution(s["probabilities"])
    # The clip's probabilities are the duration-weighted mean of its segments'.
    w = np.array([s["end"] - s["start"] for s in segs])
    mean = {k: sum(wi * s["probabilities"][k] for wi, s in zip(w, segs)) / w.sum()
            for k in LABELS}
    for k in LABELS:
        assert d["probabilities"][k] == pytest.approx(mean[k], abs=1e-4)
    for s in segs:  # every segment carries its own confidence and explanation
        assert s["confidence"] == pytest.approx(s["probabilities"][s["label"]], abs=1e-4)
        assert s["explanation"]["base"] + sum(s["explanation"]["contributions"].values()) \
            == pytest.approx(s["probabilities"][s["label"]], abs=1e-4)
    assert d["explanation"]["base"] + sum(d["explanation"]["contributions"].values()) \
        == pytest.approx(d["probabilities"][d["label"]], abs=1e-4)


def test_corrupt_file_raises_media_error(rec, corrupt_file):
    with pytest.raises(MediaError):
        rec.analyze(corrupt_file)


def test_cli_json_lines_keep_going_after_a_bad_file(demo_clip, corrupt_file, silent_clip):
    proc = subprocess.run([sys.executable, "-m", "multimodal_emotion.cli", "analyze", "--json",
                           str(demo_clip), str(corrupt_file), str(silent_clip)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["path"] for x in lines] == [str(demo_clip), str(corrupt_file), str(silent_clip)]
    ok, bad, silent = lines
    assert bad["error"] == "unreadable_media" and corrupt_file.name in bad["message"]
    for key in ("label", "probabilities", "modalities", "fusion", "duration_s", "timings_ms"):
        assert key in ok and key in silent
    assert "transcript" in ok["modalities"]["text"]
    assert {"frames_with_face", "frames"} <= set(ok["modalities"]["face"])
    assert corrupt_file.name in proc.stderr


def test_cli_table_output(demo_clip):
    proc = subprocess.run([sys.executable, "-m", "multimodal_emotion.cli", "analyze",
                           "--fusion", "sum", str(demo_clip)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "FUSED" in proc.stdout and "faces in" in proc.stdout and "fusion=sum" in proc.stdout
    assert "confidence" in proc.stdout and "(Shapley)" in proc.stdout
    assert "XNNPACK" not in proc.stderr and "absl::InitializeLog" not in proc.stderr


def test_cli_table_gives_no_face_count_without_frames() -> None:
    """An audio-only file's face line gives the reason, not a meaningless "faces in 0/0"."""
    from multimodal_emotion.cli import format_prediction

    face = {"available": False, "reason": "no video track", "frames": 0, "frames_with_face": 0}
    out = format_prediction({"label": None, "reason": "x", "duration_s": 2.0, "fusion": "sum",
                             "modalities": {"face": face}})
    assert "(no video track)" in out and "faces in" not in out
    face = {"available": False, "reason": "no face found", "frames": 8, "frames_with_face": 0}
    out = format_prediction({"label": None, "reason": "x", "duration_s": 2.0, "fusion": "sum",
                             "modalities": {"face": face}})
    assert "faces in 0/8 frames" in out


def test_cli_labels_and_explain(demo_clip, tmp_path):
    from pathlib import Path

    label_map = Path(__file__).resolve().parents[1] / "docs" / "label_map.yaml"
    proc = subprocess.run([sys.executable, "-m", "multimodal_emotion.cli", "analyze", "--json",
                           "--labels", str(label_map), "--explain", str(demo_clip)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["business"]["scheme"] == "satisfaction"
    assert set(d["business"]["probabilities"]) == {"satisfied", "neutral", "frustrated"}
    assert sum(d["business"]["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    words = d["explanation"]["words"]
    assert words and all(w["word"] in d["modalities"]["text"]["transcript"] for w in words)
    bad = tmp_path / "bad.yaml"
    bad.write_text("labels: {good: [happy]}")
    proc = subprocess.run([sys.executable, "-m", "multimodal_emotion.cli", "analyze",
                           "--labels", str(bad), str(demo_clip)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "belong to no category" in proc.stderr


def test_cli_bad_model_folder_exit_code(tmp_path, demo_clip):
    proc = subprocess.run([sys.executable, "-m", "multimodal_emotion.cli", "analyze",
                           "--model", str(tmp_path), str(demo_clip)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4 and "not a model folder" in proc.stderr


@pytest.mark.data
def test_crema_d_clips_use_every_modality(rec, data_root):
    clips = sorted((data_root / "crema_d_clips").glob("*.flv"))
    assert len(clips) == 6
    for path in clips:
        d = rec.analyze(path).to_dict()
        for m in ("audio", "text", "face"):
            assert d["modalities"][m]["available"], (path.name, m, d["modalities"][m])
        assert "forget" in d["modalities"]["text"]["transcript"].lower()


@pytest.mark.data
def test_evaluate_manifest_mixing_text_and_video(tmp_path, data_root):
    clips = sorted((data_root / "crema_d_clips").glob("*.flv"))[:2]
    rows = ["label,path,text"] + [f"anger,{clips[0]}," , f"disgust,{clips[1]},",
                                  "joy,,I am so happy today", "anger,,I am furious with you"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    png = tmp_path / "cm.png"
    proc = subprocess.run([sys.executable, "-m", "multimodal_emotion.cli", "evaluate",
                           "--manifest", str(manifest), "--json", "--plot", str(png)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["n"] == 4 and sorted(r["kinds"]) == ["text", "video"]
    assert 0.0 <= r["uar"] <= 1.0 and len(r["confusion_matrix"]) == len(LABELS)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_evaluate_text_rows_choose_the_text_head(tmp_path):
    """Text rows go through the spoken-dialogue head (what clip transcripts use) unless
    --text-domain written asks for the written-text head; the report says which."""
    rows = ["label,text", "joy,I am so happy today", "anger,I am furious with you",
            "sadness,I miss her so much", "neutral,The meeting is at ten"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    reports = {}
    for domain in (None, "written"):
        extra = ["--text-domain", domain] if domain else []
        proc = subprocess.run([sys.executable, "-m", "multimodal_emotion.cli", "evaluate",
                               "--manifest", str(manifest), "--json", *extra],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        reports[domain] = json.loads(proc.stdout)
    assert reports[None]["text_domain"] == "spoken" and reports[None]["n"] == 4
    assert reports["written"]["text_domain"] == "written" and reports["written"]["n"] == 4
    proc = subprocess.run([sys.executable, "-m", "multimodal_emotion.cli", "evaluate",
                           "--manifest", str(manifest), "--text-domain", "sung"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "sung" in proc.stderr


def test_arrays_in_memory(rec, demo_clip):
    """The Python API takes raw arrays too: audio at any rate, RGB frames, or just one."""
    from multimodal_emotion import media

    clip = media.load(demo_clip, fps=4)
    import librosa

    wave_44k = librosa.resample(clip.audio, orig_sr=16000, target_sr=44100)
    d = rec.analyze(audio=wave_44k, sample_rate=44100, frames=clip.frames, fps=4).to_dict()
    assert all(d["modalities"][m]["available"] for m in ("audio", "text", "face"))
    assert "path" not in d and d["duration_s"] == pytest.approx(clip.duration, abs=0.3)
    face_only = rec.analyze(frames=clip.frames[:4], fps=4).to_dict()
    assert face_only["modalities"]["face"]["available"]
    assert not face_only["modalities"]["audio"]["available"]
    assert face_only["modalities"]["audio"]["reason"] == "no audio track"


def test_text_view_reports_language_and_never_invents_english(rec, demo_clip):
    """``modalities.text`` says which language was heard and whether the transcript is a
    translation; German speech gives a marked translation or masked text, not tiny.en's
    invented English."""
    from multimodal_emotion.demo import _resample, synthesize_speech

    text = rec.analyze(demo_clip).to_dict()["modalities"]["text"]
    assert text["language"] == "en" and text["language_probability"] > 0.9
    assert text["translated"] is False and text["transcript"] == text["transcript_original"]
    assert "language" in rec.analyze(demo_clip).timings_ms
    from multimodal_emotion.demo import GERMAN_TEXT

    audio, sr = synthesize_speech(GERMAN_TEXT, "de")
    german = rec.analyze(audio=_resample(audio, sr, 16000).astype(np.float32)).to_dict()
    text = german["modalities"]["text"]
    assert text["language"] == "de" and "ich bin" in text["transcript_original"].lower()
    if text["available"]:
        assert text["translated"] is True and text["transcript"]
    else:
        assert text["transcript"] == "" and text["reason"]
