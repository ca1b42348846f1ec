"""Decoding: the only module that touches PyAV.

Any container FFmpeg knows (mp4, mov, mkv, webm, avi, flv; wav, mp3, flac, m4a, ...) becomes a
:class:`~multimodal_emotion.types.Clip`: 16 kHz mono float32 audio plus RGB frames sampled at a
fixed rate. Decoding happens once per clip; windows of a long clip are views into it.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np

from .errors import InputError, MediaError, MediaLimitError
from .media_headers import MAX_TAGS_BEFORE_VIDEO, read_flv
from .types import Clip

SAMPLE_RATE = 16_000
DEFAULT_FPS = 4.0
# Frames are shrunk so their longer side is at most this; face detection needs no more and
# memory stays bounded for long HD clips.
MAX_FRAME_SIDE = 640
# The largest coded frame accepted (8K UHD). A 755 KB H.264 file can announce 16000x16000
# frames: every decoded frame then costs 384 MB before it can be scaled, and decoding one takes
# seconds, so such a stream is refused from its header (and again per frame: headers lie).
MAX_FRAME_PIXELS = 7680 * 4320
# Longest clip decoded by default (seconds). Memory and time grow with duration: 10 h of
# silence compresses to 7 MB of FLAC but decodes to 2.3 GB of float32.
DEFAULT_MAX_DURATION_S = 3600.0
# Most bytes of sampled frames a clip may hold. Frames cost 0.7 MB each at 640x360, so an hour
# at 4 fps would be 10 GB; past this budget the sampling rate halves (every other frame held is
# dropped), so memory no longer grows with duration and the frames stay evenly spaced.
MAX_FRAME_BYTES = 512 * 1024 * 1024
# Slack between a limit and what a decoder yields past it (resampler tails, rounding).
_TOLERANCE_S = 0.5

Source = Union[str, os.PathLike, bytes, BinaryIO]
_HEADERS_ONLY = {"skip_frame": "all"}
_MAX_PROBED_STREAMS = 32


def load(source: Source, fps: float = DEFAULT_FPS, max_side: int = MAX_FRAME_SIDE,
         max_duration: float | None = DEFAULT_MAX_DURATION_S) -> Clip:
    """Decode ``source`` (a path, raw bytes or a binary file object) into a :class:`Clip`.

    A file without an audio track yields ``audio=None``; one without a video track yields
    ``frames=None``. A file with neither, or one FFmpeg cannot parse, raises :class:`MediaError`
    with the reason. A file longer than ``max_duration`` seconds (``None``: no limit) raises
    :class:`MediaError` -- judged from the container header first, and again while decoding,
    so memory stays bounded by the limit even when the header lies. Frames larger than
    :data:`MAX_FRAME_PIXELS` are refused. Data the decoder had to skip (a damaged or truncated
    file) is reported in ``Clip.warnings``.
    """
    import av  # local: importing PyAV costs ~0.1 s and only this module needs it

    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, not {fps}")
    if max_duration is not None and not (math.isfinite(max_duration) and max_duration > 0):
        raise InputError(f"max_duration must be a positive number of seconds, not {max_duration}")
    name = str(source) if isinstance(source, (str, os.PathLike)) else "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).exists():
            raise MediaError(f"{name}: no such file")
        if Path(source).stat().st_size == 0:
            raise MediaError(f"{name}: file is empty")
    elif isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        # This first open only reads headers. FFmpeg's stream probe would otherwise decode a
        # frame to learn its format: 617 MB and 1.7 s for one 16000x16000 frame, before any
        # size check could run. The decoding passes below reopen the file normally.
        container = _open_headers(av, source, name)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"{name}: not a readable audio or video file ({_reason(exc)})") from exc
    warnings: list[str] = []
    try:
        with container:
            has_audio = bool(container.streams.audio)
            has_video = bool(container.streams.video)
            if not has_audio and not has_video:
                raise MediaError(f"{name}: the file has neither an audio nor a video track")
            declared = _declared_duration(container)
            if max_duration is not None and declared is not None \
                    and declared > max_duration + _TOLERANCE_S:
                raise _too_long(name, max_duration, f"its header says {declared:.0f} s")
            if has_video:
                _check_frame_size(name, container.streams.video[0].codec_context.width,
                                  container.streams.video[0].codec_context.height)
            audio = (_decode_audio(av, source, name, max_duration, declared, warnings)
                     if has_audio else None)
            frames, times, video_end = (
                _decode_video(av, source, name, fps, max_side, max_duration, warnings)
                if has_video else (None, None, None))
            duration = _duration(audio, video_end, declared)
    except MediaError:
        raise
    except (av.error.FFmpegError, ValueError, RuntimeError) as exc:
        raise MediaError(f"{name}: decoding failed ({_reason(exc)})") from exc
    if audio is not None and audio.size == 0:
        audio = None
    if frames is not None and len(frames) == 0:
        frames = times = None
    if audio is None and frames is None:
        raise MediaError(f"{name}: no decodable audio or video data (truncated or corrupt file)")
    if declared is not None and declared - duration > max(_TOLERANCE_S, 0.05 * declared):
        warnings.append(f"the file says it lasts {declared:.2f} s but only {duration:.2f} s "
                        "could be decoded (truncated or damaged); the answer covers that part")
    return Clip(audio, SAMPLE_RATE, frames, times, fps, duration, name, warnings)


def from_arrays(audio: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE,
                frames: np.ndarray | None = None, fps: float = DEFAULT_FPS) -> Clip:
    """Build a :class:`Clip` from arrays already in memory (resampling audio to 16 kHz)."""
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 2:  # [channels, samples] or [samples, channels]
            audio = audio.mean(0 if audio.shape[0] < audio.shape[1] else 1)
        if sample_rate != SAMPLE_RATE:
            import librosa

            audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=SAMPLE_RATE)
    times = None
    if frames is not None:
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise MediaError(f"frames must be [N, H, W, 3] RGB, got shape {frames.shape}")
        times = np.arange(len(frames), dtype=np.float64) / fps
    if audio is None and frames is None:
        raise MediaError("give audio, frames, or both")
    duration = max(len(audio) / SAMPLE_RATE if audio is not None else 0.0,
                   len(frames) / fps if frames is not None else 0.0)
    return Clip(audio, SAMPLE_RATE, frames, times, fps, duration)


def _declared_duration(container) -> float | None:
    """What the container header claims (seconds), or ``None`` when it says nothing."""
    if container.duration and container.duration > 0:
        return container.duration / 1_000_000
    best = None
    for stream in list(container.streams.audio) + list(container.streams.video):
        if stream.duration and stream.time_base:
            d = float(stream.duration * stream.time_base)
            best = d if best is None else max(best, d)
    return best


def _too_long(name: str, max_duration: float, why: str) -> MediaError:
    return MediaLimitError(f"{name}: longer than the {max_duration:g} s limit ({why}); split it, "
                           "or raise the limit with --max-duration / MER_MAX_DURATION_S")


def _check_frame_size(name: str, width: int | None, height: int | None) -> None:
    if width and height and width * height > MAX_FRAME_PIXELS:
        raise MediaLimitError(f"{name}: video frames of {width}x{height} are larger than the "
                         f"{MAX_FRAME_PIXELS / 1e6:.0f} megapixel limit (8K); scale the video "
                         "down first")


class _AudioBuffer:
    """A float32 buffer sized from the header's duration, grown only when the decoder yields
    more, and never past ``limit`` samples: decoding holds one copy of the audio, not a list of
    chunks plus their concatenation, and a lying header cannot make it hold more than the limit."""

    def __init__(self, expected: int, limit: int | None) -> None:
        cap = expected if limit is None else min(expected, limit)
        self.data = np.empty(max(cap, SAMPLE_RATE), dtype=np.float32)
        self.size, self.limit = 0, limit

    def append(self, chunk: np.ndarray) -> bool:
        """Add ``chunk``; ``False`` (nothing added) when it would pass the limit."""
        need = self.size + chunk.size
        if self.limit is not None and need > self.limit:
            return False
        if need > self.data.size:
            grown = max(need, self.data.size * 3 // 2)
            if self.limit is not None:
                grown = min(grown, self.limit)
            bigger = np.empty(grown, dtype=np.float32)
            bigger[:self.size] = self.data[:self.size]
            self.data = bigger
        self.data[self.size:need] = chunk
        self.size = need
        return True

    def result(self) -> np.ndarray:
        return self.data[:self.size] if self.size == self.data.size \
            else self.data[:self.size].copy()


def _decode_audio(av, source, name: str, max_duration: float | None, declared: float | None,
                  warnings: list[str]) -> np.ndarray | None:
    container = _reopen(av, source)
    with container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        limit = int((max_duration + _TOLERANCE_S) * SAMPLE_RATE) if max_duration else None
        buf = _AudioBuffer(int(((declared or 60.0) + 1.0) * SAMPLE_RATE), limit)

        def add(frames) -> None:
            for out in frames:
                if not buf.append(out.to_ndarray().reshape(-1)):
                    raise _too_long(name, max_duration or 0.0,
                                    f"more than {max_duration:g} s of audio decoded")
        try:
            for frame in container.decode(stream):
                add(resampler.resample(frame))
            add(resampler.resample(None))
        except av.error.FFmpegError as exc:
            if not buf.size:
                raise MediaError(f"{name}: audio track cannot be decoded ({_reason(exc)})") from exc
            # A damaged tail: keep what decoded, as players do, and say so.
            warnings.append(f"audio: decoding stopped at {buf.size / SAMPLE_RATE:.2f} s "
                            f"({_reason(exc)}); the rest of the audio is not analyzed")
    if not buf.size:
        return None
    return buf.result()


def _decode_video(av, source, name: str, fps: float, max_side: int, max_duration: float | None,
                  warnings: list[str]
                  ) -> tuple[np.ndarray | None, np.ndarray | None, float | None]:
    """Frames sampled at ``fps``, each scaled (and converted to RGB) in one step straight from
    the decoder's frame, so no full-size RGB copy is ever made; plus where the video ends."""
    container = _reopen(av, source)
    frames: list[np.ndarray] = []
    times: list[float] = []
    next_t = 0.0
    step = 1.0 / fps
    held = 0
    end: float | None = None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate) if stream.average_rate else 0.0
        try:
            for i, frame in enumerate(container.decode(stream)):
                _check_frame_size(name, frame.width, frame.height)
                t = float(frame.time) if frame.time is not None else i / (rate or fps)
                if max_duration and t > max_duration + _TOLERANCE_S:
                    raise _too_long(name, max_duration, f"a frame at {t:.0f} s")
                length = (float(frame.duration * frame.time_base)
                          if getattr(frame, "duration", None) and frame.time_base else 0.0)
                end = max(end or 0.0, t + (length or (1.0 / rate if rate else 0.0)))
                if t + 1e-6 < next_t:
                    continue
                w, h = frame.width, frame.height
                scale = min(1.0, max_side / max(w, h))
                out_w, out_h = (int(w * scale) // 2 * 2, int(h * scale) // 2 * 2) \
                    if scale < 1.0 else (w, h)
                frames.append(frame.reformat(width=max(out_w, 2), height=max(out_h, 2),
                                             format="rgb24").to_ndarray())
                times.append(t)
                held += frames[-1].nbytes
                if held > MAX_FRAME_BYTES and len(frames) > 1:
                    frames, times, step = frames[::2], times[::2], step * 2
                    held = sum(f.nbytes for f in frames)
                    next_t = times[-1] + step
                    continue
                while next_t <= t + 1e-6:
                    next_t += step
        except av.error.FFmpegError as exc:
            if not frames:
                raise MediaError(f"{name}: video track cannot be decoded ({_reason(exc)})") from exc
            warnings.append(f"video: decoding stopped at {end or 0.0:.2f} s ({_reason(exc)}); "
                            "the rest of the video is not analyzed")
    if not frames:
        return None, None, None
    if step > 1.0 / fps + 1e-9:
        warnings.append(f"video: sampled at {1.0 / step:.3g} fps instead of {fps:g} to keep the "
                        f"frames under {MAX_FRAME_BYTES / 2**20:.3g} MB")
    return np.stack(frames), np.asarray(times, dtype=np.float64), end


def _open_headers(av, source, name: str = "<bytes>"):
    """``av.open`` with frame decoding off during the stream probe, where the format allows
    per-stream options (MP4, MKV, WebM, AVI, ...); FLV and MPEG-TS/PS expose their streams only
    during the probe, so they get the option for every stream instead. An FLV's frame size is
    checked from its tags first (:mod:`.media_headers`): its demuxer ignores the option and
    would decode one frame (1.1 GB for 16000x16000) before any check on the stream could run."""
    _check_flv(name, source)
    target = source if not isinstance(source, os.PathLike) else str(source)
    try:
        return av.open(target, stream_options=[_HEADERS_ONLY] * _MAX_PROBED_STREAMS)
    except ValueError as exc:
        if "stream_options" not in str(exc):
            raise
    if hasattr(source, "seek"):
        source.seek(0)
    # Options given to av.open reach the streams the probe creates: MPEG-TS/PS then learn a
    # 16000x16000 H.264 stream's size from its headers (38 MB, 0.03 s) instead of decoding a
    # frame (1.1 GB, 6.8 s). FLV's demuxer ignores it and still decodes one frame: its size was
    # checked above.
    return av.open(target, options=dict(_HEADERS_ONLY))


def _check_flv(name: str, source) -> None:
    """Refuse an FLV whose tags announce frames over the limit, or one whose first video tag
    cannot be reached without FFmpeg (which would decode it, whatever its size, to probe it)."""
    scan = read_flv(source)
    if scan is None:
        return
    if scan.size is not None:
        _check_frame_size(name, *scan.size)
    if not scan.checked:
        raise MediaLimitError(
            f"{name}: the FLV's first video tag cannot be found without decoding (more than "
            f"{MAX_TAGS_BEFORE_VIDEO:,} tags before it, or tag sizes that stop matching), so "
            "its frame size cannot be checked; remux it first (ffmpeg -i in.flv -c copy "
            "out.mkv)")


def _reopen(av, source):
    if hasattr(source, "seek"):
        source.seek(0)
        return av.open(source)
    return av.open(str(source))


def _duration(audio: np.ndarray | None, video_end: float | None,
              declared: float | None) -> float:
    """How long the decoded media lasts: the longer of the audio and the video, where the video
    ends with its last decoded frame (not its last *sampled* frame plus a sampling step, which
    at 0.5 fps called a 2.28 s clip 4.03 s)."""
    candidates = []
    if audio is not None:
        candidates.append(audio.size / SAMPLE_RATE)
    if video_end is not None:
        candidates.append(video_end)
    if not candidates and declared:
        candidates.append(declared)
    return max(candidates) if candidates else 0.0


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.split(": '")[0] if text else type(exc).__name__
