"""Decoding: every container we can produce, missing tracks, and broken files."""

import numpy as np
import pytest

from multimodal_emotion import demo, media
from multimodal_emotion.errors import MediaError


def test_demo_clip_decodes_to_16k_mono_audio_and_rgb_frames(demo_clip):
    clip = media.load(demo_clip, fps=4)
    assert clip.sample_rate == 16000 and clip.audio.dtype == np.float32 and clip.audio.ndim == 1
    assert clip.duration == pytest.approx(5.0, abs=0.2)
    assert clip.frames.ndim == 4 and clip.frames.shape[-1] == 3 and clip.frames.dtype == np.uint8
    assert len(clip.frames) == pytest.approx(20, abs=2)  # 4 fps over 5 s
    assert np.all(np.diff(clip.frame_times) > 0.2)


@pytest.mark.parametrize("kind", ["mp4", "mov", "mkv", "webm_vp8", "webm_vp9", "avi", "flv"])
def test_common_video_containers(media_dir, kind):
    ext = kind.split("_")[0]
    path = demo.make_container_clip(media_dir / f"c_{kind}.{ext}", kind)
    clip = media.load(path)
    assert clip.has_audio and clip.has_video


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "m4a"])
def test_audio_only_files_have_no_video(media_dir, fmt):
    clip = media.load(demo.make_audio_file(media_dir / f"a.{fmt}", fmt=fmt))
    assert clip.has_audio and not clip.has_video and clip.missing() == ["video track"]


def test_no_audio_track_yields_video_only(no_audio_clip):
    clip = media.load(no_audio_clip)
    assert clip.audio is None and clip.has_video


def test_bytes_and_paths_decode_the_same(demo_clip):
    a = media.load(demo_clip)
    b = media.load(demo_clip.read_bytes())
    np.testing.assert_array_equal(a.audio, b.audio)
    assert len(a.frames) == len(b.frames)


@pytest.mark.parametrize("fixture", ["corrupt_file", "truncated_clip", "empty_file"])
def test_broken_files_raise_media_error_with_the_file_name(request, fixture):
    path = request.getfixturevalue(fixture)
    with pytest.raises(MediaError, match=path.name):
        media.load(path)


def test_missing_file_is_a_media_error(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        media.load(tmp_path / "nope.mp4")


def test_window_slices_audio_and_frames(demo_clip):
    clip = media.load(demo_clip, fps=4)
    w = clip.window(1.0, 3.0)
    assert len(w.audio) == 32000 and w.duration == 2.0
    assert w.frame_times.min() >= 0 and w.frame_times.max() < 2.0
