"""Decoding: the only module that touches PyAV.

Any container FFmpeg knows (mp4, mov, mkv, webm, avi, flv; wav, mp3, flac, m4a, ...) becomes a
:class:`~multimodal_emotion.types.Clip`: 16 kHz mono float32 audio plus RGB frames sampled at a
fixed rate. Decoding happens once per clip; windows of a long clip are views into it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np

from .errors import MediaError
from .types import Clip

SAMPLE_RATE = 16_000
DEFAULT_FPS = 4.0
# Frames are shrunk so their longer side is at most this; face detection needs no more and
# memory stays bounded for long HD clips.
MAX_FRAME_SIDE = 640

Source = Union[str, os.PathLike, bytes, BinaryIO]


def load(source: Source, fps: float = DEFAULT_FPS, max_side: int = MAX_FRAME_SIDE,
         max_duration: float | None = None) -> Clip:
    """Decode ``source`` (a path, raw bytes or a binary file object) into a :class:`Clip`.

    A file without an audio track yields ``audio=None``; one without a video track yields
    ``frames=None``. A file with neither, or one FFmpeg cannot parse, raises :class:`MediaError`
    with the reason. ``max_duration`` stops decoding after that many seconds.
    """
    import av  # local: importing PyAV costs ~0.1 s and only this module needs it

    name = str(source) if isinstance(source, (str, os.PathLike)) else "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).exists():
            raise MediaError(f"{name}: no such file")
        if Path(source).stat().st_size == 0:
            raise MediaError(f"{name}: file is empty")
    elif isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        container = av.open(source if not isinstance(source, os.PathLike) else str(source))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"{name}: not a readable audio or video file ({_reason(exc)})") from exc
    try:
        with container:
            has_audio = bool(container.streams.audio)
            has_video = bool(container.streams.video)
            if not has_audio and not has_video:
                raise MediaError(f"{name}: the file has neither an audio nor a video track")
            audio = _decode_audio(av, source, name, max_duration) if has_audio else None
            frames, times = (_decode_video(av, source, name, fps, max_side, max_duration)
                             if has_video else (None, None))
            duration = _duration(container, audio, times, fps)
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
    return Clip(audio, SAMPLE_RATE, frames, times, fps, duration, name)


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


def _decode_audio(av, source, name: str, max_duration: float | None) -> np.ndarray | None:
    container = _reopen(av, source)
    with container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        limit = int(max_duration * SAMPLE_RATE) if max_duration else None
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if limit and total >= limit:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            if not chunks:
                raise MediaError(f"{name}: audio track cannot be decoded ({_reason(exc)})") from exc
            # A damaged tail: keep what decoded, as players do.
    if not chunks:
        return None
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    return audio[:limit] if limit else audio


def _decode_video(av, source, name: str, fps: float, max_side: int,
                  max_duration: float | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    container = _reopen(av, source)
    frames: list[np.ndarray] = []
    times: list[float] = []
    next_t = 0.0
    step = 1.0 / fps
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else len(times) * step
                if max_duration and t >= max_duration:
                    break
                if t + 1e-6 < next_t:
                    continue
                w, h = frame.width, frame.height
                scale = min(1.0, max_side / max(w, h))
                if scale < 1.0:
                    frame = frame.reformat(width=int(w * scale) // 2 * 2,
                                           height=int(h * scale) // 2 * 2)
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(t)
                while next_t <= t + 1e-6:
                    next_t += step
        except av.error.FFmpegError as exc:
            if not frames:
                raise MediaError(f"{name}: video track cannot be decoded ({_reason(exc)})") from exc
    if not frames:
        return None, None
    return np.stack(frames), np.asarray(times, dtype=np.float64)


def _reopen(av, source):
    if hasattr(source, "seek"):
        source.seek(0)
        return av.open(source)
    return av.open(str(source))


def _duration(container, audio: np.ndarray | None, times: np.ndarray | None, fps: float) -> float:
    candidates = []
    if audio is not None:
        candidates.append(audio.size / SAMPLE_RATE)
    if times is not None and len(times):
        candidates.append(float(times[-1]) + 1.0 / fps)
    if not candidates and container.duration:
        candidates.append(container.duration / 1_000_000)
    return max(candidates) if candidates else 0.0


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.split(": '")[0] if text else type(exc).__name__
