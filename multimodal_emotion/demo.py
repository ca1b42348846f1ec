"""Build realistic demo/test media from what pip can install, so a fresh machine or CI can run the
whole pipeline without shipping a clip.

Speech comes from eSpeak NG (the ``espeakng-loader`` wheel ships the library and its data),
the face is a real photograph (``skimage.data.astronaut()``, Eileen Collins), and files are
encoded by the ffmpeg bundled in the PyAV wheel. Everything is deterministic.
"""

from __future__ import annotations

import ctypes
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "synthesize_speech", "make_demo_clip", "make_silent_clip", "make_audio_file",
    "writable_formats", "DEFAULT_TEXT",
]

DEFAULT_TEXT = "I am so happy to see you again today, this is wonderful news."
# The same sentence in German, for clips in a language tiny.en does not know (voice "de")
GERMAN_TEXT = ("Ich bin heute sehr glücklich, dich wiederzusehen. Das ist eine wunderbare "
               "Nachricht.")

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_AUTO = 0
_ESPEAK_RATE = 1
_EE_OK = 0

# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events)
_SYNTH_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


class _Espeak:
    """The eSpeak NG library, initialised once per process (it keeps global state, so a second
    ``espeak_Initialize`` would leak and may crash). A lock serialises synthesis for the same
    reason: the callback and its buffer are process-global."""

    _instance: "_Espeak | None" = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CB]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint,
                                     ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int

        # espeak_ng_SetRandSeed(long) exists in espeak-ng >= 1.52; older builds use libc rand().
        self._seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._seed is not None:
            self._seed.argtypes = [ctypes.c_long]
            self._seed.restype = None
        else:
            libc = ctypes.CDLL(None)
            self._seed = libc.srand
            self._seed.argtypes = [ctypes.c_uint]

        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate}) with data at {data!r}")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []

        def _collect(wav, n, _events):  # type: ignore[no-untyped-def]
            if n > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0  # 0 = continue synthesis

        # Keep a reference: a garbage-collected ctypes callback would crash the library.
        self._cb = _SYNTH_CB(_collect)
        lib.espeak_SetSynthCallback(self._cb)

    @classmethod
    def get(cls) -> "_Espeak":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def synth(self, text: str, voice: str, rate_wpm: int) -> np.ndarray:
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ValueError(f"eSpeak NG has no voice named {voice!r}")
            self.lib.espeak_SetParameter(_ESPEAK_RATE, int(rate_wpm), 0)
            self._chunks = []
            if self._seed is not None:
                self._seed(0)  # eSpeak adds random jitter; reseed so output is reproducible
            buf = ctypes.create_string_buffer(text.encode("utf-8"))
            err = self.lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_AUTO,
                                        None, None)
            if err != _EE_OK:
                raise RuntimeError(f"espeak_Synth failed with code {err}")
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, np.float32)
        return (np.concatenate(chunks).astype(np.float32) / 32768.0)


def synthesize_speech(text: str, voice: str = "en-us", rate_wpm: int = 150) -> tuple[np.ndarray, int]:
    """Speak ``text`` with eSpeak NG; returns float32 mono in [-1, 1] and its sample rate
    (eSpeak's own, usually 22050 Hz).

    Reproducible across processes for the same sequence of calls; within one process eSpeak
    carries some synthesiser state between utterances, so a repeated call may differ by a few
    samples (measured: 19401 vs 19407 samples for "hello world"). Tests must not compare
    two calls sample-for-sample."""
    eng = _Espeak.get()
    return eng.synth(text, voice, rate_wpm), eng.sample_rate


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Linear-interpolation resampling: good enough for speech test media, and needs no scipy."""
    if sr_in == sr_out or x.size == 0:
        return x.astype(np.float32)
    n_out = int(round(x.size * sr_out / sr_in))
    t = np.arange(n_out) * (sr_in / sr_out)
    return np.interp(t, np.arange(x.size), x).astype(np.float32)


def _fit_duration(audio: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """Repeat the speech (with 0.5 s gaps) and cut/pad with silence to exactly ``seconds``."""
    n = int(round(seconds * sr))
    if audio.size == 0:
        return np.zeros(n, np.float32)
    gap = np.zeros(int(0.5 * sr), np.float32)
    unit = np.concatenate([audio, gap])
    reps = int(np.ceil(n / unit.size))
    out = np.tile(unit, reps)[:n]
    if out.size < n:
        out = np.pad(out, (0, n - out.size))
    return out.astype(np.float32)


def _face_image() -> np.ndarray:
    """The astronaut photo cropped to her head and shoulders, so the face fills the frame."""
    from skimage import data

    img = data.astronaut()  # 512x512 RGB; face around rows 20..230, cols 140..330
    return img[0:300, 90:390]  # 300x300 around the face


def _background_image() -> np.ndarray:
    """A faceless real photograph (a cup of coffee) for the no-face clips."""
    from skimage import data

    return data.coffee()


def _frames(source: np.ndarray, n: int, size: tuple[int, int]):
    """Yield ``n`` frames of ``size`` (w, h): a slow deterministic pan and zoom over ``source``,
    so consecutive frames differ (a frozen frame would not exercise tracking/averaging)."""
    import cv2

    w, h = size
    sh, sw = source.shape[:2]
    aspect = w / h
    for i in range(n):
        phase = 2 * np.pi * i / max(n, 50)
        zoom = 0.92 + 0.05 * np.sin(phase)  # fraction of the source kept
        ch = min(sh, sw / aspect) * zoom
        cw = ch * aspect
        cx = sw / 2 + 0.03 * sw * np.sin(phase)
        cy = sh / 2 + 0.02 * sh * np.cos(phase)
        x0 = int(np.clip(cx - cw / 2, 0, sw - cw))
        y0 = int(np.clip(cy - ch / 2, 0, sh - ch))
        crop = source[y0:y0 + int(ch), x0:x0 + int(cw)]
        yield cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)


def _video_codec() -> str:
    import av

    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.Codec(name, "w")
            return name
        except Exception:
            continue
    raise RuntimeError("the av wheel can encode neither H.264 nor MPEG-4 video")


def _write_audio_stream(container, stream, audio: np.ndarray, sr: int) -> None:
    """Encode float mono ``audio`` into ``stream`` in chunks the encoder accepts."""
    import av

    fmt = stream.codec_context.format.name if stream.codec_context.format else "s16"
    chunk = stream.codec_context.frame_size or 1024
    pts = 0
    for start in range(0, audio.size, chunk):
        piece = np.clip(audio[start:start + chunk], -1.0, 1.0)
        if fmt.startswith("flt"):
            arr = piece.astype(np.float32)
        elif fmt.startswith("s32"):
            arr = (piece * 2147483647).astype(np.int32)
        else:  # s16 / s16p
            arr = (piece * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(arr.reshape(1, -1), format=fmt, layout="mono")
        frame.sample_rate = sr
        frame.pts = pts
        frame.time_base = Fraction(1, sr)
        pts += piece.size
        for pkt in stream.encode(frame):
            container.mux(pkt)
    for pkt in stream.encode(None):
        container.mux(pkt)


def _audio_codec_for(container_fmt: str) -> str:
    return {"mp4": "aac", "mov": "aac", "ipod": "aac", "adts": "aac", "matroska": "aac",
            "webm": "libopus", "ogg": "libopus", "avi": "mp3", "flv": "mp3", "wav": "pcm_s16le",
            "flac": "flac", "mp3": "mp3"}[container_fmt]


def _write_av(path: Path, frames_src: np.ndarray | None, audio: np.ndarray | None, audio_sr: int,
              seconds: float, fps: int, size: tuple[int, int], container_fmt: str | None = None,
              video_codec: str | None = None, audio_codec: str | None = None) -> Path:
    """Mux a video (from a still image with motion) and/or mono audio into ``path``."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container_fmt) as out:
        fmt = out.format.name.split(",")[0]
        vstream = astream = None
        if frames_src is not None:
            vc = video_codec or _video_codec()
            vstream = out.add_stream(vc, rate=fps)
            vstream.width, vstream.height = size
            vstream.pix_fmt = "yuv420p"
            if vc == "libx264":
                vstream.options = {"preset": "veryfast", "crf": "23", "threads": "1"}
        if audio is not None:
            ac = audio_codec or _audio_codec_for(fmt)
            astream = out.add_stream(ac, rate=audio_sr)
            astream.layout = "mono"
        if vstream is not None:
            n = int(round(seconds * fps))
            for img in _frames(frames_src, n, size):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                for pkt in vstream.encode(frame):
                    out.mux(pkt)
            for pkt in vstream.encode(None):
                out.mux(pkt)
        if astream is not None:
            _write_audio_stream(out, astream, audio, audio_sr)
    return path


def make_demo_clip(path: str | Path, text: str = DEFAULT_TEXT, seconds: float | None = None,
                   face: bool = True, audio: bool = True, fps: int = 25,
                   size: tuple[int, int] = (320, 240), audio_sr: int = 16000,
                   voice: str = "en-us") -> Path:
    """Write an MP4 of a real face (or a faceless photo when ``face=False``) with spoken ``text``
    as AAC audio (none when ``audio=False``) in eSpeak NG's ``voice``. ``seconds`` fixes the
    duration, repeating the speech or padding with silence; by default it is the speech length
    plus 0.5 s."""
    speech, sr = synthesize_speech(text, voice)
    speech = _resample(speech, sr, audio_sr)
    if seconds is None:
        seconds = speech.size / audio_sr + 0.5
    track = _fit_duration(speech, audio_sr, seconds) if audio else None
    src = _face_image() if face else _background_image()
    return _write_av(Path(path), src, track, audio_sr, seconds, fps, size)


def make_silent_clip(path: str | Path, seconds: float = 3, fps: int = 25,
                     size: tuple[int, int] = (320, 240), audio_sr: int = 16000) -> Path:
    """A face clip whose audio track exists but is digital silence (the 'no speech' case, which
    differs from 'no audio stream')."""
    track = np.zeros(int(round(seconds * audio_sr)), np.float32)
    return _write_av(Path(path), _face_image(), track, audio_sr, seconds, fps, size)


_AUDIO_FORMATS = {  # extension -> (container, codec)
    "wav": ("wav", "pcm_s16le"),
    "flac": ("flac", "flac"),
    "mp3": ("mp3", "mp3"),
    "m4a": ("ipod", "aac"),
    "ogg": ("ogg", "libopus"),
}


def make_silent_flac(path: str | Path, seconds: float, rate: int = 16_000,
                     block_s: int = 10) -> Path:
    """Digital silence as mono FLAC: a few KB a minute on disk, ``seconds * rate * 4`` bytes
    once decoded to float32 (the hardening tests' and ``bench/abuse.py``'s decompression
    bomb). Written ``block_s`` seconds at a time; ``seconds`` is rounded down to whole seconds."""
    import av

    path = Path(path)
    block = rate * block_s
    zeros = np.zeros((1, block), dtype=np.int16)
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        total = int(seconds)
        for start in range(0, total, block_s):
            n = min(block_s, total - start) * rate
            frame = av.AudioFrame.from_ndarray(zeros[:, :n], format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start * rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_audio_file(path: str | Path, text: str = DEFAULT_TEXT, fmt: str | None = None,
                    sample_rate: int = 16000) -> Path:
    """Write spoken ``text`` as an audio-only file; ``fmt`` is one of wav, flac, mp3, m4a, ogg
    (default: the extension of ``path``)."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in _AUDIO_FORMATS:
        raise ValueError(f"unsupported audio format {fmt!r}; choose from {sorted(_AUDIO_FORMATS)}")
    container, codec = _AUDIO_FORMATS[fmt]
    speech, sr = synthesize_speech(text)
    speech = _resample(speech, sr, sample_rate)
    sr_out = sample_rate
    if codec == "libopus":  # Opus only takes 8/12/16/24/48 kHz; 48 kHz is its native rate
        speech, sr_out = _resample(speech, sample_rate, 48000), 48000
    return _write_av(path, None, speech, sr_out, speech.size / sr_out, 25, (2, 2),
                     container_fmt=container, audio_codec=codec)


# extension -> (container, video codec, audio codec); the "common containers" a user may hand us.
_AV_FORMATS = {
    "mp4": ("mp4", None, "aac"),
    "mov": ("mov", None, "aac"),
    "mkv": ("matroska", None, "aac"),
    "webm_vp8": ("webm", "libvpx", "libopus"),
    "webm_vp9": ("webm", "libvpx-vp9", "libopus"),
    "avi": ("avi", "mpeg4", "mp3"),
    "flv": ("flv", "flv", "mp3"),
}


def make_container_clip(path: str | Path, kind: str, seconds: float = 2.0, fps: int = 15,
                        size: tuple[int, int] = (160, 120)) -> Path:
    """A short face+speech clip in one of :data:`_AV_FORMATS` (``kind``), for 'decodes every
    common container' tests. Small and short because VP8/VP9 encoding is slow."""
    container, vcodec, acodec = _AV_FORMATS[kind]
    speech, sr = synthesize_speech(DEFAULT_TEXT)
    a_sr = 48000 if acodec == "libopus" else 16000 if acodec == "aac" else 22050
    track = _fit_duration(_resample(speech, sr, a_sr), a_sr, seconds)
    return _write_av(Path(path), _face_image(), track, a_sr, seconds, fps, size,
                     container_fmt=container, video_codec=vcodec, audio_codec=acodec)


def writable_formats(tmp_dir: str | Path) -> dict[str, bool]:
    """Which of the common containers (and audio-only formats) this PyAV build can write AND
    read back, by actually writing a tiny file of each into ``tmp_dir``."""
    import av

    tmp = Path(tmp_dir)
    result: dict[str, bool] = {}
    for kind in _AV_FORMATS:
        ext = kind.split("_")[0]
        p = tmp / f"probe_{kind}.{ext}"
        try:
            make_container_clip(p, kind, seconds=0.5, fps=10, size=(64, 48))
            with av.open(str(p)) as c:
                result[kind] = bool(c.streams.video) and bool(c.streams.audio)
        except Exception:
            result[kind] = False
    for ext in _AUDIO_FORMATS:
        p = tmp / f"probe_audio.{ext}"
        try:
            make_audio_file(p, "hello", ext)
            with av.open(str(p)) as c:
                result[ext] = bool(c.streams.audio)
        except Exception:
            result[ext] = False
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m multimodal_emotion.demo OUT.mp4 [TEXT]``: build a demo clip (real face photo,
    synthesized speech) for machines that have no clip of their own."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m multimodal_emotion.demo OUT.mp4 [TEXT]", file=sys.stderr)
        return 2
    text = " ".join(args[1:]) or DEFAULT_TEXT
    path = make_demo_clip(args[0], text=text, seconds=5.0)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
