"""The generated demo media really are what the fixtures claim, checked with PyAV and OpenCV
directly (not with our own media loader), so loader tests can trust them."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from multimodal_emotion import demo


def _decode(path: Path) -> tuple[np.ndarray | None, list[np.ndarray], float]:
    """Mono float audio at 16 kHz (None if no audio stream), RGB frames, container duration."""
    with av.open(str(path)) as c:
        duration = (c.duration or 0) / 1e6
        audio = None
        if c.streams.audio:
            res = av.AudioResampler(format="flt", layout="mono", rate=16000)
            chunks = []
            for frame in c.decode(audio=0):
                for f in res.resample(frame):
                    chunks.append(f.to_ndarray().reshape(-1))
            audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    frames: list[np.ndarray] = []
    with av.open(str(path)) as c:
        if c.streams.video:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return audio, frames, duration


def _faces(rgb: np.ndarray) -> int:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return len(cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40)))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def test_speech_is_real_audio() -> None:
    audio, sr = demo.synthesize_speech("hello world, this is a test")
    assert sr > 8000 and audio.dtype == np.float32 and audio.ndim == 1
    assert 0.8 < audio.size / sr < 5 and _rms(audio) > 0.02
    again, sr2 = demo.synthesize_speech("hello world, this is a test")  # initialised once, reusable
    assert sr2 == sr and abs(again.size - audio.size) < sr * 0.05


def test_demo_clip(demo_clip: Path) -> None:
    audio, frames, duration = _decode(demo_clip)
    assert audio is not None and frames
    assert duration == pytest.approx(5.0, abs=0.3)
    assert audio.size / 16000 == pytest.approx(5.0, abs=0.3)
    assert len(frames) == pytest.approx(125, abs=3)
    assert _rms(audio) > 0.02
    mid = frames[len(frames) // 2]
    assert _faces(mid) >= 1
    assert not np.array_equal(frames[0], mid), "frames must move, not be one frozen image"


def test_silent_clip(silent_clip: Path) -> None:
    audio, frames, duration = _decode(silent_clip)
    assert audio is not None and audio.size > 0 and frames
    assert duration == pytest.approx(3.0, abs=0.3)
    assert _rms(audio) < 1e-4
    assert _faces(frames[len(frames) // 2]) >= 1


def test_no_face_clip(no_face_clip: Path) -> None:
    audio, frames, _ = _decode(no_face_clip)
    assert audio is not None and _rms(audio) > 0.02
    assert all(_faces(frames[i]) == 0 for i in (0, len(frames) // 2, len(frames) - 1))


def test_no_audio_clip(no_audio_clip: Path) -> None:
    audio, frames, duration = _decode(no_audio_clip)
    assert audio is None
    assert frames and duration == pytest.approx(3.0, abs=0.3)


def test_long_clip(long_clip: Path) -> None:
    audio, frames, duration = _decode(long_clip)
    assert duration == pytest.approx(25.0, abs=0.5)
    assert audio is not None and audio.size / 16000 == pytest.approx(25.0, abs=0.5)
    # speech repeats all the way through: the last 5 s are not silence
    assert _rms(audio[-5 * 16000:]) > 0.01


def test_audio_only_wav(audio_only_wav: Path) -> None:
    audio, frames, duration = _decode(audio_only_wav)
    assert not frames and audio is not None and _rms(audio) > 0.02 and duration > 1.0


def test_broken_files_do_not_decode(corrupt_file: Path, truncated_clip: Path,
                                    empty_file: Path) -> None:
    for p in (corrupt_file, truncated_clip, empty_file):
        with pytest.raises(av.error.FFmpegError):
            _decode(p)


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "m4a", "ogg"])
def test_audio_formats(tmp_path: Path, ext: str) -> None:
    p = demo.make_audio_file(tmp_path / f"a.{ext}", "good morning")
    audio, frames, _ = _decode(p)
    assert audio is not None and _rms(audio) > 0.02 and not frames


def test_writable_formats(tmp_path: Path) -> None:
    fmts = demo.writable_formats(tmp_path)
    # The minimum the package's tests rely on; the rest depend on the av wheel's ffmpeg build.
    assert fmts["mp4"] and fmts["wav"]
    for kind, ok in fmts.items():
        if ok and kind in demo._AV_FORMATS:
            path = next(tmp_path.glob(f"probe_{kind}.*"))
            audio, frames, _ = _decode(path)
            assert audio is not None and frames, kind
