"""FLV frame sizes from the file's own tags, read before FFmpeg's probe can decode a frame."""

import io
import struct

import numpy as np
import pytest

from multimodal_emotion import media, media_headers
from multimodal_emotion.errors import MediaLimitError
from multimodal_emotion.media_headers import flv_frame_size, read_flv, sps_size


def _flv(path, codec: str, size: tuple[int, int], frames: int = 3):
    import av

    with av.open(str(path), "w", format="flv") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "threads": "1"}
        rng = np.random.default_rng(0)
        for i in range(frames):
            img = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _claim(data: bytes, side: int) -> bytes:
    """``data`` with its onMetaData width and height set to ``side``."""
    out = bytearray(data)
    for key in (b"\x00\x05width\x00", b"\x00\x06height\x00"):
        at = out.index(key) + len(key)
        out[at:at + 8] = struct.pack(">d", float(side))
    return bytes(out)


def _tag(kind: int, payload: bytes, last: int | None = None) -> bytes:
    """One FLV tag; ``last``: the PreviousTagSize written after it (default: the right one)."""
    return (bytes([kind]) + len(payload).to_bytes(3, "big") + bytes(7) + payload
            + struct.pack(">I", 11 + len(payload) if last is None else last))


def _video_tag(payload: bytes) -> bytes:
    return _tag(9, payload)


_HEADER = b"FLV\x01\x01\x00\x00\x00\x09" + bytes(4)  # video only, then PreviousTagSize0


@pytest.fixture(scope="module")
def h264_flv(tmp_path_factory):
    # 170x90 is coded as 176x96 macroblocks: the SPS carries a cropping window.
    return _flv(tmp_path_factory.mktemp("flv") / "h264.flv", "libx264", (170, 90))


def test_the_sps_gives_the_cropped_size_from_a_path_bytes_or_a_file(h264_flv):
    data = h264_flv.read_bytes()
    assert flv_frame_size(h264_flv) == (170, 90)
    assert flv_frame_size(data) == (170, 90)
    f = io.BytesIO(b"xx" + data)
    f.seek(2)
    assert flv_frame_size(f) == (170, 90) and f.tell() == 2  # put back where it was


def test_a_small_metadata_claim_does_not_hide_the_sps(h264_flv):
    assert flv_frame_size(_claim(h264_flv.read_bytes(), 16)) == (170, 90)


def test_a_large_metadata_claim_is_believed_and_refused_before_decoding(h264_flv):
    data = _claim(h264_flv.read_bytes(), 9000)
    assert flv_frame_size(data) == (9000, 9000)
    with pytest.raises(MediaLimitError, match="9000x9000"):
        media.load(data)


def test_a_normal_h264_flv_still_decodes_from_a_file_object(h264_flv):
    clip = media.load(io.BytesIO(h264_flv.read_bytes()), fps=10)
    assert clip.frames.shape[1:] == (90, 170, 3) and len(clip.frames) == 3


def test_sorenson_h263_picture_headers_are_read(tmp_path):
    path = _flv(tmp_path / "h263.flv", "flv", (200, 100))
    assert flv_frame_size(_claim(path.read_bytes(), 16)) == (200, 100)
    assert media.load(path, fps=10).frames.shape[1:] == (100, 200, 3)


def test_a_16_bit_h263_size_is_refused_without_ffmpeg(tmp_path):
    bits = "0" * 16 + "1" + "00000" + "0" * 8 + "001" + f"{20000:016b}" * 2 + "0" * 7
    picture = int(bits, 2).to_bytes(len(bits) // 8, "big")
    path = tmp_path / "h263_huge.flv"
    path.write_bytes(_HEADER + _video_tag(b"\x12" + picture + bytes(64)))
    assert flv_frame_size(path) == (20000, 20000)
    with pytest.raises(MediaLimitError, match="20000x20000"):
        media.load(path)


def test_vp9_key_frames_in_enhanced_flv_are_read(tmp_path):
    path = _flv(tmp_path / "vp9.flv", "libvpx-vp9", (200, 100), frames=2)
    assert flv_frame_size(_claim(path.read_bytes(), 16)) == (200, 100)
    assert media.load(path, fps=10).frames.shape[1:] == (100, 200, 3)


def _huge_vp9_tag() -> bytes:
    """An enhanced-FLV VP9 key frame header: profile 0, shown; sync code; BT.601; 20000x20000."""
    bits = "10" "00" "0" "0" "1" "0" + f"{0x498342:024b}" + "001" "0" + f"{19999:016b}" * 2
    bits += "0" * (-len(bits) % 8)
    return _video_tag(b"\x91vp09" + int(bits, 2).to_bytes(len(bits) // 8, "big") + bytes(64))


def test_a_huge_vp9_key_frame_is_refused_without_ffmpeg(tmp_path):
    path = tmp_path / "vp9_huge.flv"
    path.write_bytes(_HEADER + _huge_vp9_tag())
    assert flv_frame_size(path) == (20000, 20000)
    with pytest.raises(MediaLimitError, match="20000x20000"):
        media.load(path)


def _ue(value: int) -> str:
    code = f"{value + 1:b}"
    return "0" * (len(code) - 1) + code


def _high_sps() -> bytes:
    """A hand-made High-profile SPS: 500x250 macroblocks (8000x4000), cropped by 2 chroma
    columns on the right and 4 chroma rows at the bottom -> 7996x3992."""
    bits = "".join([
        f"{100:08b}", "0" * 16, _ue(0),  # profile_idc, constraints + level, sps id
        _ue(1), _ue(0), _ue(0), "0", "0",  # 4:2:0, 8-bit luma/chroma, no bypass, no matrices
        _ue(0), _ue(0), _ue(0),  # log2_max_frame_num, poc type 0, log2_max_poc_lsb
        _ue(1), "0",  # max_num_ref_frames, gaps
        _ue(499), _ue(249), "1", "1",  # width/height in macroblocks, frame_mbs_only, 8x8
        "1", _ue(0), _ue(2), _ue(0), _ue(4),  # cropping: left, right, top, bottom
        "0", "1"])  # no VUI, stop bit
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def test_sps_cropping_and_high_profile_fields():
    assert sps_size(_high_sps()) == (7996, 3992)


@pytest.mark.parametrize("wrapper", [b"\x17\x00\x00\x00\x00", b"\x90avc1"],
                         ids=["classic", "enhanced"])
def test_avc_sequence_headers_in_classic_and_enhanced_flv(wrapper):
    sps = b"\x67" + _high_sps()
    record = bytes([1, 100, 0, 40, 0xFF, 0xE1]) + struct.pack(">H", len(sps)) + sps
    assert flv_frame_size(_HEADER + _video_tag(wrapper + record)) == (7996, 3992)


@pytest.mark.parametrize("data", [
    b"not an flv at all",
    _HEADER + b"\x09\xff\xff\xff" + bytes(20),  # a tag that claims 16 MB and stops
    _HEADER + _video_tag(b"\x17\x00\x00\x00\x00\x01\x64"),  # truncated sequence header
    _HEADER + _video_tag(b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x04\x67\x00\x00\x00"),
])
def test_malformed_or_foreign_data_tells_nothing(data):
    assert flv_frame_size(data) is None


def test_a_stream_that_cannot_seek_is_not_read(h264_flv):
    class Pipe(io.RawIOBase):
        def readable(self):
            return True

        def seekable(self):
            return False

    assert flv_frame_size(Pipe()) is None


def test_the_video_is_found_after_any_number_of_tags_below_the_limit(monkeypatch):
    """FFmpeg's probe reads on until it meets the video, however many audio tags of garbage come
    first (measured: an 8000x8000 frame after 16 MB of empty audio tags, still decoded)."""
    monkeypatch.setattr(media_headers, "MAX_TAGS_BEFORE_VIDEO", 50)
    audio = _tag(8, b"\x2e")
    assert read_flv(_HEADER + audio * 49 + _huge_vp9_tag()).size == (20000, 20000)
    scan = read_flv(_HEADER + audio * 50 + _huge_vp9_tag())
    assert scan.size is None and not scan.checked
    with pytest.raises(MediaLimitError, match="first video tag cannot be found"):
        media.load(_HEADER + audio * 50 + _huge_vp9_tag())


def test_tag_sizes_that_stop_matching_before_the_video_are_refused():
    """Where PreviousTagSize is wrong FFmpeg resynchronises on bytes a tag walk cannot follow."""
    data = _HEADER + _tag(8, b"\x2e", last=99) + _huge_vp9_tag()
    assert read_flv(data) == media_headers.FlvVideo(None, False)
    with pytest.raises(MediaLimitError, match="first video tag cannot be found"):
        media.load(data)


def test_audio_only_and_real_flvs_pass_the_walk(data_root):
    for path in sorted((data_root / "crema_d_clips").glob("*.flv")):
        assert read_flv(path) == media_headers.FlvVideo((480, 360), True), path
    assert read_flv(_HEADER + _tag(8, b"\x2e") * 3) == media_headers.FlvVideo(None, True)
