"""Chunked decoding: a long file as a stream of short pieces, in memory that does not grow with
its duration.

:func:`media.load` decodes a whole file into one :class:`~multimodal_emotion.types.Clip`, which
is right for a clip of seconds and wrong for an hour-long call (an hour of 16 kHz float32 is
230 MB of audio alone, plus frames). :func:`iter_chunks` decodes the audio and the video tracks
side by side, each from its own demuxer, and yields :class:`MediaChunk` pieces of ``chunk_s``
seconds as soon as both tracks have reached the chunk's end; :func:`iter_windows` regroups the
chunks into analysis windows (a :class:`Clip` each, times relative to the window, ``offset`` its
start in the file). The sources of a long file, a microphone or a WebSocket all end up as chunks,
so the segmenters and the recognizer downstream do not care where media comes from.

This module and :mod:`~multimodal_emotion.media` are the only ones that touch PyAV; the checks on
hostile files (frame-size limit, duration limit judged from the header and again while decoding,
damaged tails kept with a warning) are shared with :func:`media.load`.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import InputError, MediaError
from .media import (DEFAULT_FPS, DEFAULT_MAX_DURATION_S, MAX_FRAME_SIDE, SAMPLE_RATE, Source,
                    _TOLERANCE_S, _check_frame_size, _declared_duration, _open_headers,
                    _reason, _too_long)
from .types import Clip

DEFAULT_CHUNK_S = 2.0


@dataclass
class MediaInfo:
    """What a file's header says, read without decoding a frame."""

    name: str
    has_audio: bool
    has_video: bool
    channels: int  # audio channels in the file (0: no audio track)
    declared_duration: float | None


@dataclass
class MediaChunk:
    """``[start, end)`` seconds of media.

    ``audio``: float32 16 kHz mono (``None``: no audio track); ``channels``: ``[C, n]`` float32
    16 kHz per channel when the decoder was asked to keep channels and the file has more than one
    (``None`` otherwise). ``frames``: ``[N, H, W, 3]`` RGB sampled at ``fps`` with their absolute
    ``frame_times`` (``None``: no video, or no frame sampled in this piece)."""

    start: float
    end: float
    audio: np.ndarray | None
    frames: np.ndarray | None = None
    frame_times: np.ndarray | None = None
    channels: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)


def probe(source: Source) -> MediaInfo:
    """Read the header of ``source``: its tracks, audio channels and declared duration."""
    import av

    name, source = _prepare(source)
    try:
        container = _open_headers(av, io.BytesIO(source) if isinstance(source, bytes)
                                  else source, name)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"{name}: not a readable audio or video file ({_reason(exc)})") from exc
    with container:
        has_audio = bool(container.streams.audio)
        has_video = bool(container.streams.video)
        channels = 0
        if has_audio:
            ctx = container.streams.audio[0].codec_context
            channels = int(getattr(ctx, "channels", 0) or len(ctx.layout.channels) or 1)
        if has_video:
            ctx = container.streams.video[0].codec_context
            _check_frame_size(name, ctx.width, ctx.height)
        info = MediaInfo(name, has_audio, has_video, channels, _declared_duration(container))
    if not has_audio and not has_video:
        raise MediaError(f"{name}: the file has neither an audio nor a video track")
    return info


def iter_chunks(source: Source, chunk_s: float = DEFAULT_CHUNK_S, fps: float = DEFAULT_FPS,
                max_side: int = MAX_FRAME_SIDE,
                max_duration: float | None = DEFAULT_MAX_DURATION_S,
                keep_channels: bool = False, info: MediaInfo | None = None,
                ) -> Iterator[MediaChunk]:
    """Decode ``source`` piece by piece: consecutive :class:`MediaChunk` of ``chunk_s`` seconds
    (the last one shorter). Memory holds one chunk of each track plus the decoders' buffers,
    whatever the file's length. The same limits as :func:`media.load` apply, and a file whose
    decoding fails midway yields what decoded, with the reason in the last chunk's warnings.
    """
    import av

    if not (math.isfinite(chunk_s) and chunk_s > 0):
        raise InputError(f"chunk length must be a positive number of seconds, not {chunk_s}")
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, not {fps}")
    if max_duration is not None and not (math.isfinite(max_duration) and max_duration > 0):
        raise InputError(f"max_duration must be a positive number of seconds, not {max_duration}")
    name, source = _prepare(source)
    info = info or probe(source)
    if max_duration is not None and info.declared_duration is not None \
            and info.declared_duration > max_duration + _TOLERANCE_S:
        raise _too_long(name, max_duration, f"its header says {info.declared_duration:.0f} s")
    keep = keep_channels and info.channels > 1
    warnings: list[str] = []
    audio = _AudioTrack(av, source, name, max_duration, keep, warnings) \
        if info.has_audio else None
    video = _VideoTrack(av, source, name, fps, max_side, max_duration, warnings) \
        if info.has_video else None
    decoded_any = False
    start = 0.0
    try:
        while True:
            end = start + chunk_s
            a, ch = audio.take_until(end) if audio else (None, None)
            f, t = video.take_until(end) if video else (None, None)
            done = (audio is None or audio.finished) and (video is None or video.finished)
            if done:  # the last piece ends where the longer track ends
                last = max(audio.position if audio else 0.0, video.end if video else 0.0)
                end = min(end, max(last, start))
            if (a is not None and a.size) or (f is not None and len(f)):
                decoded_any = True
                yield MediaChunk(start, end, a if audio else None, f, t, ch)
            elif not done:
                yield MediaChunk(start, end, a if audio else None, None, None, ch)
            start = end
            if done:
                break
    finally:
        for track in (audio, video):
            if track is not None:
                track.close()
    if not decoded_any:
        raise MediaError(f"{name}: no decodable audio or video data (truncated or corrupt file)")
    duration = start
    if info.declared_duration is not None \
            and info.declared_duration - duration > max(_TOLERANCE_S,
                                                        0.05 * info.declared_duration):
        warnings.append(f"the file says it lasts {info.declared_duration:.2f} s but only "
                        f"{duration:.2f} s could be decoded (truncated or damaged); the answer "
                        "covers that part")
    if warnings:  # a last empty chunk carries what went wrong
        yield MediaChunk(duration, duration, None, None, None, None, list(warnings))


def iter_windows(chunks: Iterable[MediaChunk], window_s: float, fps: float = DEFAULT_FPS,
                 name: str = "<stream>") -> Iterator[tuple[float, Clip]]:
    """Regroup chunks into consecutive windows of ``window_s`` seconds: ``(offset, clip)`` pairs
    where ``clip`` covers ``[offset, offset + clip.duration)`` of the source, with frame times
    relative to the window. A tail shorter than a third of a window joins the window before (as
    the whole-file path does), so no window is judged on a fragment of a word. The last clip's
    ``warnings`` carry what the decoder reported."""
    buf = _Buffer()
    pending: tuple[float, Clip] | None = None
    warnings: list[str] = []
    w_start = 0.0  # where the next window starts (the end of ``pending``)
    for chunk in chunks:
        warnings.extend(chunk.warnings)
        buf.add(chunk)
        while True:
            if pending is not None and buf.end >= w_start + window_s / 3 - 1e-9:
                yield pending  # what follows it is long enough to stand alone
                pending = None
            elif pending is None and buf.end >= w_start + window_s - 1e-9:
                pending = (w_start, buf.take(w_start, w_start + window_s, fps, name))
                w_start += window_s
            else:
                break
    tail = buf.end - w_start
    if pending is not None and tail < window_s / 3:
        off, clip = pending
        last = _join(clip, buf.take(w_start, buf.end, fps, name), w_start - off)
        pending = None
        last_item = (off, last)
    else:
        if pending is not None:
            yield pending
        last_item = (w_start, buf.take(w_start, buf.end, fps, name)) if tail > 1e-9 else None
    if last_item is not None:
        last_item[1].warnings.extend(warnings)
        yield last_item
    elif warnings:
        raise MediaError(f"{name}: no decodable audio or video data ({'; '.join(warnings)})")


# -- internals -------------------------------------------------------------------------------
def _prepare(source: Source):
    """A name for messages, and a source each track can open on its own (bytes stay bytes; a
    file object with a real path is opened by path; any other file object is read once)."""
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        if not Path(source).exists():
            raise MediaError(f"{name}: no such file")
        if Path(source).stat().st_size == 0:
            raise MediaError(f"{name}: file is empty")
        return name, str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise MediaError("<bytes>: file is empty")
        return "<bytes>", bytes(source)
    path = getattr(source, "name", None)
    if isinstance(path, str) and Path(path).is_file():
        return path, path
    data = source.read()
    if not data:
        raise MediaError("<bytes>: file is empty")
    return "<bytes>", data


def _open(av, source):
    return av.open(io.BytesIO(source) if isinstance(source, bytes) else source)


class _AudioTrack:
    """Pulls resampled 16 kHz audio from its own demuxer until a time is reached."""

    def __init__(self, av, source, name: str, max_duration: float | None, keep: bool,
                 warnings: list[str]) -> None:
        self.av, self.name, self.max_duration, self.warnings = av, name, max_duration, warnings
        self.container = _open(av, source)
        stream = self.container.streams.audio[0]
        self.frames = self.container.decode(stream)
        self.resampler = av.AudioResampler(format="fltp", layout="stereo" if keep else "mono",
                                           rate=SAMPLE_RATE)
        self.keep = keep
        self.pieces: list[np.ndarray] = []  # [C, n] each
        self.buffered = 0
        self.taken = 0  # samples handed out so far
        self.finished = False

    @property
    def position(self) -> float:
        return (self.taken + self.buffered) / SAMPLE_RATE

    def _pull(self) -> None:
        try:
            frame = next(self.frames)
            outs = self.resampler.resample(frame)
        except StopIteration:
            outs = self.resampler.resample(None)
            self.finished = True
        except self.av.error.FFmpegError as exc:
            if not self.taken and not self.buffered:
                raise MediaError(f"{self.name}: audio track cannot be decoded "
                                 f"({_reason(exc)})") from exc
            self.warnings.append(f"audio: decoding stopped at {self.position:.2f} s "
                                 f"({_reason(exc)}); the rest of the audio is not analyzed")
            outs, self.finished = [], True
        for out in outs:
            arr = out.to_ndarray().astype(np.float32, copy=False)
            arr = arr.reshape(arr.shape[0] if arr.ndim == 2 else 1, -1)
            self.pieces.append(arr)
            self.buffered += arr.shape[1]
        if self.max_duration and self.position > self.max_duration + _TOLERANCE_S:
            raise _too_long(self.name, self.max_duration,
                            f"more than {self.max_duration:g} s of audio decoded")

    def take_until(self, t: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Mono audio up to ``t`` seconds (and the channels when kept)."""
        want = int(round(t * SAMPLE_RATE)) - self.taken
        while self.buffered < want and not self.finished:
            self._pull()
        n = max(0, min(want, self.buffered))
        data = np.concatenate(self.pieces, axis=1) if self.pieces \
            else np.zeros((2 if self.keep else 1, 0), np.float32)
        out, rest = data[:, :n], data[:, n:]
        self.pieces = [rest] if rest.shape[1] else []
        self.buffered = rest.shape[1]
        self.taken += n
        mono = out.mean(0) if out.shape[0] > 1 else out[0]
        return np.ascontiguousarray(mono, dtype=np.float32), \
            (np.ascontiguousarray(out) if self.keep else None)

    def close(self) -> None:
        self.container.close()


class _VideoTrack:
    """Pulls frames sampled at ``fps`` (scaled to ``max_side``) until a time is reached."""

    def __init__(self, av, source, name: str, fps: float, max_side: int,
                 max_duration: float | None, warnings: list[str]) -> None:
        self.av, self.name, self.max_duration, self.warnings = av, name, max_duration, warnings
        self.container = _open(av, source)
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        self.rate = float(stream.average_rate) if stream.average_rate else 0.0
        self.decoded = self.container.decode(stream)
        self.fps, self.max_side = fps, max_side
        self.step = 1.0 / fps
        self.next_t = 0.0
        self.index = 0
        self.end = 0.0  # where the video decoded so far ends
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.finished = False
        self.any = False

    def _pull(self) -> None:
        try:
            frame = next(self.decoded)
        except StopIteration:
            self.finished = True
            return
        except self.av.error.FFmpegError as exc:
            if not self.any:
                raise MediaError(f"{self.name}: video track cannot be decoded "
                                 f"({_reason(exc)})") from exc
            self.warnings.append(f"video: decoding stopped at {self.end:.2f} s "
                                 f"({_reason(exc)}); the rest of the video is not analyzed")
            self.finished = True
            return
        self.any = True
        _check_frame_size(self.name, frame.width, frame.height)
        i, self.index = self.index, self.index + 1
        t = float(frame.time) if frame.time is not None else i / (self.rate or self.fps)
        if self.max_duration and t > self.max_duration + _TOLERANCE_S:
            raise _too_long(self.name, self.max_duration, f"a frame at {t:.0f} s")
        length = (float(frame.duration * frame.time_base)
                  if getattr(frame, "duration", None) and frame.time_base else 0.0)
        self.end = max(self.end, t + (length or (1.0 / self.rate if self.rate else 0.0)))
        if t + 1e-6 < self.next_t:
            return
        w, h = frame.width, frame.height
        scale = min(1.0, self.max_side / max(w, h))
        out_w, out_h = (int(w * scale) // 2 * 2, int(h * scale) // 2 * 2) \
            if scale < 1.0 else (w, h)
        self.frames.append(frame.reformat(width=max(out_w, 2), height=max(out_h, 2),
                                          format="rgb24").to_ndarray())
        self.times.append(t)
        while self.next_t <= t + 1e-6:
            self.next_t += self.step

    def take_until(self, t: float) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Sampled frames whose time is before ``t``."""
        while not self.finished and (not self.times or self.times[-1] < t) \
                and self.end < t + 1e-6:
            self._pull()
        n = 0
        while n < len(self.times) and self.times[n] < t:
            n += 1
        if not n:
            return None, None
        frames, times = self.frames[:n], self.times[:n]
        self.frames, self.times = self.frames[n:], self.times[n:]
        return np.stack(frames), np.asarray(times, dtype=np.float64)

    def close(self) -> None:
        self.container.close()


class _Buffer:
    """Media received but not yet handed out as a window (audio, channels, frames)."""

    def __init__(self) -> None:
        self.start = 0.0  # time of the first sample held
        self.end = 0.0
        self.audio: list[np.ndarray] = []
        self.has_audio = False
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []

    def add(self, chunk: MediaChunk) -> None:
        if chunk.audio is not None:
            self.has_audio = True
            self.audio.append(chunk.audio)
        if chunk.frames is not None:
            self.frames.extend(chunk.frames)
            self.times.extend(float(t) for t in chunk.frame_times)
        self.end = max(self.end, chunk.end)

    def take(self, a: float, b: float, fps: float, name: str) -> Clip:
        """The media in ``[a, b)`` as a clip (times relative to ``a``), dropped from the buffer."""
        audio = None
        if self.has_audio:
            data = np.concatenate(self.audio) if self.audio else np.zeros(0, np.float32)
            n = max(0, int(round(b * SAMPLE_RATE)) - int(round(self.start * SAMPLE_RATE)))
            audio, rest = data[:n], data[n:]
            self.audio = [rest] if rest.size else []
        k = 0
        while k < len(self.times) and self.times[k] < b:
            k += 1
        frames = times = None
        if k:
            frames = np.stack(self.frames[:k])
            times = np.asarray(self.times[:k], dtype=np.float64) - a
        self.frames, self.times = self.frames[k:], self.times[k:]
        self.start = b
        return Clip(audio if audio is not None and audio.size else None, SAMPLE_RATE, frames,
                    times, fps, b - a, name)


def _join(first: Clip, second: Clip, gap: float) -> Clip:
    """``second`` appended to ``first``; ``gap``: where ``second`` starts within ``first``."""
    audio = first.audio
    if second.audio is not None:
        audio = second.audio if audio is None else np.concatenate([audio, second.audio])
    frames, times = first.frames, first.frame_times
    if second.frames is not None:
        frames = second.frames if frames is None else np.concatenate([frames, second.frames])
        t2 = second.frame_times + gap
        times = t2 if times is None else np.concatenate([times, t2])
    return Clip(audio, first.sample_rate, frames, times, first.fps, gap + second.duration,
                first.source, first.warnings + second.warnings)
