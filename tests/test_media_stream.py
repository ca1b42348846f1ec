"""Chunked decoding gives the same media as decoding the whole file, cut the same way, in
pieces whose size does not depend on the file's length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from multimodal_emotion import demo, media, media_stream
from multimodal_emotion.errors import MediaError, MediaLimitError
from multimodal_emotion.recognizer import _windows


def test_chunks_hold_the_same_audio_and_frames_as_a_whole_decode(long_clip: Path) -> None:
    whole = media.load(long_clip)
    chunks = list(media_stream.iter_chunks(long_clip, chunk_s=2.0))
    audio = np.concatenate([c.audio for c in chunks])
    times = np.concatenate([c.frame_times for c in chunks if c.frame_times is not None])
    np.testing.assert_array_equal(audio, whole.audio)
    np.testing.assert_array_equal(times, whole.frame_times)
    assert chunks[-1].end == pytest.approx(whole.duration)
    # each piece is at most chunk_s long: memory does not grow with the file
    assert max(c.audio.size for c in chunks) <= 2.0 * media.SAMPLE_RATE
    assert all(np.all((c.frame_times >= c.start) & (c.frame_times < c.end))
               for c in chunks if c.frame_times is not None)


@pytest.mark.parametrize("window", [2.0, 7.0, 10.0, 30.0])
def test_windows_match_the_whole_file_cut(long_clip: Path, window: float) -> None:
    whole = media.load(long_clip)
    wins = list(media_stream.iter_windows(media_stream.iter_chunks(long_clip, chunk_s=1.5),
                                          window))
    np.testing.assert_allclose([(o, o + c.duration) for o, c in wins],
                               _windows(whole.duration, window))
    for offset, clip in wins:  # each window is the whole decode's window, relative times
        ref = whole.window(offset, offset + clip.duration)
        np.testing.assert_array_equal(clip.audio, ref.audio)
        np.testing.assert_array_equal(clip.frame_times, ref.frame_times)


def test_stereo_channels_are_kept_apart(tmp_path: Path) -> None:
    """A call recorded with one party per channel: left speech, right silence."""
    import av

    speech, sr = demo.synthesize_speech("hello, I am on the left channel")
    path = tmp_path / "stereo.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=sr, layout="stereo")
        pcm = np.stack([speech, np.zeros_like(speech)])
        frame = av.AudioFrame.from_ndarray(
            (pcm.T.reshape(1, -1) * 32767).astype(np.int16), format="s16", layout="stereo")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert media_stream.probe(path).channels == 2
    chunks = list(media_stream.iter_chunks(path, keep_channels=True))
    channels = np.concatenate([c.channels for c in chunks], axis=1)
    assert channels.shape[0] == 2
    assert np.abs(channels[0]).max() > 0.1 and np.abs(channels[1]).max() < 1e-4
    np.testing.assert_allclose(np.concatenate([c.audio for c in chunks]), channels.mean(0),
                               atol=1e-6)


def test_long_silent_file_streams_in_windows(tmp_path: Path) -> None:
    path = demo.make_silent_flac(tmp_path / "silence.flac", seconds=62.0)
    wins = list(media_stream.iter_windows(media_stream.iter_chunks(path, max_duration=None),
                                          10.0))
    assert len(wins) == 6 and wins[-1][0] == 50.0
    assert wins[-1][1].duration == pytest.approx(12.0, abs=0.05)  # the 2 s tail joined


def test_the_duration_limit_holds_while_streaming(tmp_path: Path) -> None:
    path = demo.make_silent_flac(tmp_path / "silence.flac", seconds=30.0)
    with pytest.raises(MediaLimitError, match="longer than the 10 s limit"):
        list(media_stream.iter_chunks(path, max_duration=10.0))


def test_bad_files_fail_with_a_reason(corrupt_file: Path, empty_file: Path,
                                      tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not a readable"):
        list(media_stream.iter_chunks(corrupt_file))
    with pytest.raises(MediaError, match="empty"):
        list(media_stream.iter_chunks(empty_file))
    with pytest.raises(MediaError, match="no such file"):
        list(media_stream.iter_chunks(tmp_path / "nope.mp4"))


def test_bytes_and_file_objects_stream_like_paths(demo_clip: Path) -> None:
    ref = np.concatenate([c.audio for c in media_stream.iter_chunks(demo_clip)])
    data = demo_clip.read_bytes()
    import io

    for src in (data, io.BytesIO(data)):
        got = np.concatenate([c.audio for c in media_stream.iter_chunks(src)])
        np.testing.assert_array_equal(got, ref)


def test_turn_clips_are_the_turns_of_the_whole_decode(long_clip: Path) -> None:
    from multimodal_emotion.turns import Turn, iter_turn_clips

    whole = media.load(long_clip)
    turns = [Turn(12.25, 24.9, "A"), Turn(0.5, 3.2, "A"), Turn(3.0, 9.9, "B")]  # overlapping
    got = list(iter_turn_clips(media_stream.iter_chunks(long_clip, chunk_s=2.0), turns, 4.0))
    assert [t.start for t, _ in got] == [0.5, 3.0, 12.25]  # in order of start
    for turn, clip in got:
        ref = whole.window(turn.start, turn.end)
        np.testing.assert_array_equal(clip.audio, ref.audio)
        np.testing.assert_allclose(clip.frame_times, ref.frame_times)
        assert clip.duration == pytest.approx(turn.duration)
