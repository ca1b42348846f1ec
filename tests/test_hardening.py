"""Issue 18: bounded memory and time for any input, and no client locking others out. Each test
is a hostile case from the issue, small enough to run in a second or two."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest

from multimodal_emotion import media
from multimodal_emotion.errors import InputError, MediaError


def write_silent_flac(path: Path, seconds: float, rate: int = 16_000) -> Path:
    """A silent mono FLAC: tiny on disk, ``seconds * rate * 4`` bytes once decoded."""
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        block = rate  # one second per frame
        zeros = np.zeros((1, block), dtype=np.int16)
        for i in range(int(seconds)):
            frame = av.AudioFrame.from_ndarray(zeros, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, i * block
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def silent_flac(tmp_path_factory) -> Path:
    return write_silent_flac(tmp_path_factory.mktemp("flac") / "silence.flac", 120)


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
