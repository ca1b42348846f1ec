"""Frame sizes read from a file's own bytes, for containers whose FFmpeg probe decodes a frame.

:func:`media.load` opens files with the stream probe's frame decoding turned off, so an
oversized frame is refused from the header before anything is decoded. FFmpeg's FLV demuxer
ignores that option: it creates its streams while probing and decodes one whole frame to learn
their format -- 322 MB for a 188 KB FLV of 8000x8000 H.264, 1.1 GB for 16000x16000 -- before
any size check can run. This module reads the size the way a decoder would, from the FLV tags
themselves (pure Python, no PyAV), so the caller can refuse first.

Sources read in the tags up to the first :data:`VIDEO_TAGS_READ` video tags, largest kept
(metadata alone is not trusted, nor the first header alone):

* the ``onMetaData`` script tag's ``width`` / ``height`` (what FFmpeg reports as the size);
* H.264 (classic codec id 7, or enhanced FLV's ``avc1``): every AVC sequence header's SPS,
  decoded to the cropped picture size, as the decoder will output it;
* Sorenson H.263 (codec id 2): every picture header (16-bit sides are possible);
* VP9 (enhanced FLV's ``vp09``): every key frame's header (16-bit sides; the probe decodes one
  frame: 154 MB for 8000x8000).

Not read, because they cannot pass the 8K limit or FFmpeg's probe does not decode them: VP6
and Screen Video (size fields too narrow: at most 4095x4095); HEVC and AV1 in enhanced FLV
(their size comes from the configuration record: an 8000x8000 one is refused in 50 MB).
"""

from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Union

# Tags walked at most before the first video tag. FFmpeg's probe reads on until it meets the
# video however far it is (audio tags of garbage make no packets, so its probe size never runs
# out: an 8000x8000 frame after 16 MB of empty audio tags was still decoded), so the walk has no
# byte limit, only this one: 250,000 tags are ~1.8 h of MP3 audio and take 0.6 s to walk (2
# shared cores, loaded).
MAX_TAGS_BEFORE_VIDEO = 250_000
# Video tags read. The probe decodes only the first few frames (H.264: until it can guess the
# decoding delay, ~6); a later change of size meets the decoding loop's per-frame check.
VIDEO_TAGS_READ = 64
# Most bytes of one tag's payload examined: sequence headers and picture headers are far smaller.
_TAG_PREFIX = 64 * 1024
_CHUNK = 1024 * 1024
_SCRIPT, _VIDEO = 18, 9
_AVC, _H263 = 7, 2

Source = Union[str, os.PathLike, bytes, BinaryIO]
Size = tuple[int, int]


@dataclass(frozen=True)
class FlvVideo:
    """What an FLV's tags say about its video, read without decoding."""

    size: Size | None  # the largest frame announced (None: none this module can read)
    checked: bool  # False: the first video tag could not be reached (tag limit, or tag sizes
    # that stop matching, where FFmpeg would resynchronise on bytes this walk cannot follow)


def is_flv(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) is an FLV header, as FFmpeg recognises it."""
    return len(head) >= 9 and head[:3] == b"FLV" and head[3] < 5 \
        and struct.unpack(">I", head[5:9])[0] >= 9


def read_flv(source: Source) -> FlvVideo | None:
    """Walk an FLV's tags up to its first :data:`VIDEO_TAGS_READ` video tags; ``None`` when
    ``source`` is not an FLV (or cannot be read: FFmpeg then says why). A file object is read
    from its current position and put back there; one that cannot seek is not read. Never
    raises for malformed data: a tag that tells nothing is passed over."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _walk(_Window(io.BytesIO(bytes(source)), 0))
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                return _walk(_Window(f, 0))
        except OSError:
            return None
    seekable = getattr(source, "seekable", None)
    if not (callable(seekable) and seekable()):
        return None
    start = source.tell()
    try:
        return _walk(_Window(source, start))
    finally:
        source.seek(start)


def flv_frame_size(source: Source) -> Size | None:
    """The largest frame size ``(width, height)`` an FLV's first video tags (or its metadata)
    announce; ``None`` when not an FLV or no size can be read."""
    scan = read_flv(source)
    return scan.size if scan else None


class _Window:
    """Reads of a file through a 1 MB window: a tag walk costs one read per megabyte, not two
    per tag."""

    def __init__(self, f: BinaryIO, start: int) -> None:
        self.f, self.start, self.base, self.buf = f, start, 0, b""

    def get(self, pos: int, n: int) -> bytes:
        if pos < self.base or pos + n > self.base + len(self.buf):
            self.f.seek(self.start + pos)
            self.base, self.buf = pos, self.f.read(max(n, _CHUNK))
        return self.buf[pos - self.base:pos - self.base + n]


def _walk(window: _Window) -> FlvVideo | None:
    window.f.seek(window.start)
    head = window.f.read(9)  # not a whole window: most files are not FLV
    if not is_flv(head):
        return None
    sizes: list[Size] = []
    pos = struct.unpack(">I", head[5:9])[0] + 4  # the header, then PreviousTagSize0
    tags = videos = total = 0
    checked = True
    while True:
        header = window.get(pos, 11)
        if len(header) < 11:
            break  # the end of the file
        kind, size = header[0] & 0x1F, int.from_bytes(header[1:4], "big")
        tags += 1
        total += size + 11
        if kind in (_SCRIPT, _VIDEO):
            payload = window.get(pos + 11, min(size, _TAG_PREFIX))
            try:
                sizes.extend(_metadata_sizes(payload) if kind == _SCRIPT
                             else _video_sizes(payload))
            except (IndexError, ValueError, struct.error):
                pass  # a malformed tag tells nothing; the decoder will judge it
            videos += kind == _VIDEO
            if videos >= VIDEO_TAGS_READ:
                break
        last = window.get(pos + 11 + size, 4)
        # FFmpeg's test (flvdec.c): any other PreviousTagSize makes it resynchronise.
        if len(last) == 4 and int.from_bytes(last, "big") not in (size + 11, size + 10, total) \
                and (int.from_bytes(last, "big") != size or not size):
            checked = videos > 0
            break
        if not videos and tags >= MAX_TAGS_BEFORE_VIDEO:
            checked = False
            break
        pos += 11 + size + 4
    sizes = [s for s in sizes if s[0] > 0 and s[1] > 0]
    return FlvVideo(max(sizes, key=lambda s: s[0] * s[1]) if sizes else None, checked)


def _metadata_sizes(payload: bytes) -> Iterator[Size]:
    """``width`` / ``height`` numbers of a script tag (AMF0), wherever they sit: a scan for the
    encoded keys, not a structural parse, so no nesting depth is walked."""
    def numbers(key: bytes) -> list[float]:
        out, needle = [], struct.pack(">H", len(key)) + key + b"\x00"  # key, then AMF0 number
        at = payload.find(needle)
        while at >= 0 and at + len(needle) + 8 <= len(payload):
            value = struct.unpack(">d", payload[at + len(needle):at + len(needle) + 8])[0]
            if math.isfinite(value) and 0 < value < 2 ** 31:
                out.append(value)
            at = payload.find(needle, at + 1)
        return out

    widths, heights = numbers(b"width"), numbers(b"height")
    if widths and heights:
        yield int(max(widths)), int(max(heights))


def _video_sizes(payload: bytes) -> Iterator[Size]:
    first = payload[0]
    if first & 0x80:  # enhanced FLV: packet type in the low nibble, then a FourCC
        packet, fourcc = first & 0x0F, payload[1:5]
        if packet == 0 and fourcc == b"avc1":  # SequenceStart
            yield from _avc_config_sizes(payload[5:])
        elif packet in (1, 3) and fourcc == b"vp09":  # CodedFrames: no composition time
            size = _vp9_size(payload[5:])
            if size:
                yield size
        return
    codec = first & 0x0F
    if codec == _AVC and payload[1] == 0:  # AVCPacketType 0: the sequence header
        yield from _avc_config_sizes(payload[5:])  # past the 3-byte composition time
    elif codec == _H263:
        size = _h263_size(payload[1:])
        if size:
            yield size


def _avc_config_sizes(record: bytes) -> Iterator[Size]:
    """The picture size of each SPS in an AVCDecoderConfigurationRecord."""
    count, pos = record[5] & 0x1F, 6
    for _ in range(count):
        length = struct.unpack(">H", record[pos:pos + 2])[0]
        nal = record[pos + 2:pos + 2 + length]
        pos += 2 + length
        if nal and nal[0] & 0x1F == 7:
            try:
                yield sps_size(nal[1:])
            except (IndexError, ValueError):
                continue


class _Bits:
    """An MSB-first bit reader over RBSP bytes, with H.264's Exp-Golomb codes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]  # IndexError past the end: a truncated SPS
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    """NAL payload without its emulation-prevention bytes (00 00 03 -> 00 00)."""
    out, zeros = bytearray(), 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def sps_size(sps: bytes) -> Size:
    """``(width, height)`` of an H.264 sequence parameter set (``sps``: the NAL unit after its
    one-byte header), cropped as the decoder outputs it (ITU-T H.264 7.3.2.1.1)."""
    b = _Bits(_rbsp(sps))
    profile = b.u(8)
    b.u(16)  # constraint flags, level
    b.ue()  # seq_parameter_set_id
    chroma = 1
    separate_planes = 0
    if profile in _HIGH_PROFILES:
        chroma = b.ue()
        if chroma == 3:
            separate_planes = b.u(1)
        b.ue(), b.ue()  # bit depths
        b.u(1)  # qpprime_y_zero_transform_bypass_flag
        if b.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if b.u(1):
                    _skip_scaling_list(b, 16 if i < 6 else 64)
    b.ue()  # log2_max_frame_num_minus4
    poc_type = b.ue()
    if poc_type == 0:
        b.ue()
    elif poc_type == 1:
        b.u(1)
        b.se(), b.se()
        cycle = b.ue()
        if cycle > 255:
            raise ValueError("num_ref_frames_in_pic_order_cnt_cycle over 255")
        for _ in range(cycle):
            b.se()
    b.ue()  # max_num_ref_frames
    b.u(1)  # gaps_in_frame_num_value_allowed_flag
    width = (b.ue() + 1) * 16
    map_units = b.ue() + 1
    frame_mbs_only = b.u(1)
    height = (2 - frame_mbs_only) * map_units * 16
    if not frame_mbs_only:
        b.u(1)  # mb_adaptive_frame_field_flag
    b.u(1)  # direct_8x8_inference_flag
    if b.u(1):  # frame_cropping_flag
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        if chroma == 0 or separate_planes:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            unit_x = 2 if chroma in (1, 2) else 1
            unit_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
        cropped_w = width - unit_x * (left + right)
        cropped_h = height - unit_y * (top + bottom)
        if cropped_w > 0 and cropped_h > 0:
            width, height = cropped_w, cropped_h
    return width, height


def _skip_scaling_list(b: _Bits, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + b.se() + 256) % 256
        last = next_scale or last


def _vp9_size(frame: bytes) -> Size | None:
    """The size in a VP9 key frame's uncompressed header (VP9 bitstream spec 6.2); other frames
    say ``None`` (an inter frame's new size is caught per decoded frame by the caller)."""
    b = _Bits(frame)
    if b.u(2) != 2:  # frame_marker
        return None
    profile = b.u(1) | (b.u(1) << 1)
    if profile == 3:
        b.u(1)
    if b.u(1) or b.u(1):  # show_existing_frame, or not a key frame
        return None
    b.u(2)  # show_frame, error_resilient_mode
    if b.u(24) != 0x498342:  # frame_sync_code
        return None
    if profile >= 2:
        b.u(1)  # ten_or_twelve_bit
    if b.u(3) != 7:  # color_space other than sRGB
        b.u(1)  # color_range
        if profile in (1, 3):
            b.u(3)  # subsampling_x, subsampling_y, reserved_zero
    elif profile in (1, 3):
        b.u(1)
    return b.u(16) + 1, b.u(16) + 1


def _h263_size(data: bytes) -> Size | None:
    """The size in a Sorenson H.263 picture header (FFmpeg's ``ff_flv_decode_picture_header``):
    17-bit start code, 5-bit version, 8-bit picture number, 3-bit size format."""
    b = _Bits(data)
    if b.u(17) != 1:
        return None
    b.u(5), b.u(8)
    fmt = b.u(3)
    if fmt == 0:
        return b.u(8), b.u(8)
    if fmt == 1:
        return b.u(16), b.u(16)
    return {2: (352, 288), 3: (176, 144), 4: (128, 96), 5: (320, 240), 6: (160, 120)}.get(fmt)
