"""``EmotionRecognizer``: the one call every shell (CLI, HTTP, evaluation) goes through.

It owns the loaded encoders and the trained :class:`~multimodal_emotion.model.EmotionModel`,
decodes a clip once, cuts long clips into windows, and turns numbers into a
:class:`~multimodal_emotion.types.Prediction`. Models load once, in the constructor.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from . import encoders, media
from .encoders import language
from .errors import ModelError
from .labels import LABELS
from .model import DEFAULT_MODEL_DIR, EmotionModel
from .types import MODALITIES, Clip, ModalityOutput, ModalityView, Prediction, Segment, \
    probs_to_dict

DEFAULT_WINDOW_S = 10.0


class EmotionRecognizer:
    """Analyze clips with a trained model folder (default: the one shipped in the package)."""

    def __init__(self, model: EmotionModel, model_dir: Path, window_s: float = DEFAULT_WINDOW_S,
                 fps: float = media.DEFAULT_FPS, threads: int | None = None,
                 language_id: bool = True) -> None:
        self.model, self.model_dir = model, model_dir
        self.window_s, self.fps = window_s, fps
        cfg: dict[str, Any] = model.config.get("encoders", {})
        self._pool = ThreadPoolExecutor(max_workers=2)
        # The sentence encoder (all-mpnet-base-v2, 110 M parameters) loads in a second thread
        # while Whisper and the face CNN load here: reading its weights mostly waits on I/O and
        # torch, which release the GIL, so cold start pays for it only in part.
        text_future = self._pool.submit(build_encoder, "text", cfg.get("text", {"name": "minilm"}),
                                        model_dir)
        # Whisper base for language ID (encoders/language.py) loads beside it; it routes the
        # faster-whisper transcriber's audio; language_id=False (or "language": {"enabled":
        # false} in the model config) keeps the old English-only path, for English-only input.
        lcfg = dict(cfg.get("language", {}))
        routed = cfg.get("transcriber", {"name": "faster-whisper"})["name"] == "faster-whisper"
        base_future = self._pool.submit(language.load_base,
                                        compute_type=lcfg.pop("compute_type", "int8")) \
            if lcfg.pop("enabled", True) and routed and language_id else None
        self.audio = build_encoder("audio", cfg.get("audio", {"name": "whisper"}), model_dir)
        shared = getattr(self.audio, "whisper_model", None)
        tcfg = dict(cfg.get("transcriber", {"name": "faster-whisper"}))
        if shared is not None and tcfg.get("name") == "faster-whisper" \
                and not tcfg.get("model_path"):
            tcfg["whisper_model"] = shared  # one Whisper in memory, not two
        self.transcriber = build_encoder("transcriber", tcfg, model_dir)
        # With one shared Whisper, the transcriber decodes from the audio encoder's output.
        self._shares_whisper = shared is not None and "whisper_model" in tcfg \
            and hasattr(self.transcriber, "transcribe_encoded")
        from .encoders.text import TranscriptTextEncoder

        self.face = build_encoder("face", cfg.get("face", {"name": "haar-cnn"}), model_dir)
        self.text = TranscriptTextEncoder(self.transcriber, text_future.result())
        # not waited for here: the router waits at the first clip's language ID
        self.language = None if base_future is None else language.LanguageRouter(
            self.transcriber, base_future, **lcfg)
        for m, enc in (("audio", self.audio), ("text", self.text), ("face", self.face)):
            if enc.dim != model.dims[m]:
                raise ModelError(f"{m} encoder gives {enc.dim}-d embeddings but the model was "
                                 f"trained on {model.dims[m]}-d")

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, **kwargs: Any) -> "EmotionRecognizer":
        """Load a model folder (``config.json`` + ``model.safetensors``); ``None`` = shipped."""
        model_dir = Path(path) if path else DEFAULT_MODEL_DIR
        return cls(EmotionModel.from_pretrained(model_dir), model_dir, **kwargs)

    @property
    def fusions(self) -> list[str]:
        return list(self.model.fusions)

    # -- the main call ---------------------------------------------------------------------
    def analyze(self, source: media.Source | Clip | None = None, fusion: str | None = None,
                window_s: float | None = None, *, audio: np.ndarray | None = None,
                sample_rate: int = media.SAMPLE_RATE, frames: np.ndarray | None = None,
                fps: float | None = None) -> Prediction:
        """Analyze a path, bytes, file object or decoded :class:`Clip`, or arrays in memory:
        ``analyze(audio=wave, sample_rate=sr, frames=rgb_frames, fps=fps)`` (either may be
        omitted; the missing modality is masked)."""
        t0 = time.perf_counter()
        if source is None:
            clip = media.from_arrays(audio, sample_rate, frames, fps or self.fps)
        elif isinstance(source, Clip):
            clip = source
        else:
            clip = media.load(source, fps=self.fps)
        decode_ms = (time.perf_counter() - t0) * 1000
        fusion = fusion or self.model.default_fusion
        window = window_s or self.window_s
        bounds = _windows(clip.duration, window)
        parts = [self._analyze_window(clip.window(a, b) if len(bounds) > 1 else clip, fusion)
                 for a, b in bounds]
        pred = _combine(parts, bounds, fusion, clip)
        pred.timings_ms = {"decode": decode_ms, **_sum_timings(p["timings"] for p in parts)}
        pred.timings_ms["total"] = (time.perf_counter() - t0) * 1000
        pred.path = None if source is None or isinstance(source, (bytes, Clip)) \
            or hasattr(source, "read") else str(source)
        return pred

    def encode(self, clip: Clip) -> tuple[dict[str, ModalityOutput], dict[str, float]]:
        """Run the three encoders on one clip: modality outputs and per-stage milliseconds.

        The face encoder runs in a second thread while audio and transcription run here: both
        engines release the GIL, so on two cores the stages overlap.
        """
        timings: dict[str, float] = {}

        def timed(stage: str, fn, *args):
            t = time.perf_counter()
            out = fn(*args)
            timings[stage] = (time.perf_counter() - t) * 1000
            return out

        face_future = self._pool.submit(timed, "face", self.face.encode, clip)
        audio_out: ModalityOutput = timed("audio", self.audio.encode, clip)
        if audio_out.available:
            encoded = audio_out.extras.pop("whisper_encoder_output", None)
            if self.language is not None:  # language ID, then tiny.en or a translation
                tr = self.language.transcribe(clip.audio, encoded if self._shares_whisper
                                              else None)
                timings.update(tr.timings_ms)
                text_out = timed("text", language.encode_transcript, self.text, tr)
            else:
                if encoded is not None and self._shares_whisper:
                    transcript = timed("transcribe", self.transcriber.transcribe_encoded,
                                       encoded)
                else:
                    transcript = timed("transcribe", self.transcriber.transcribe, clip.audio)
                text_out = timed("text", self.text.encode_transcript, transcript)
        else:
            text_out = ModalityOutput.missing("text", self.text.dim,
                                              reason=f"no speech ({audio_out.reason})",
                                              transcript="")
        return {"audio": audio_out, "text": text_out, "face": face_future.result()}, timings

    def _analyze_window(self, clip: Clip, fusion: str) -> dict[str, Any]:
        outputs, timings = self.encode(clip)
        t = time.perf_counter()
        fused, experts = self.model.predict(
            {m: o.embedding for m, o in outputs.items()},
            {m: o.available for m, o in outputs.items()}, fusion,
            {m: o.sequence for m, o in outputs.items() if o.available})
        timings["fusion"] = (time.perf_counter() - t) * 1000
        return {"fused": fused, "experts": experts, "outputs": outputs, "timings": timings}


def build_encoder(kind: str, cfg: dict[str, Any], model_dir: Path) -> Any:
    """An encoder from a model config's ``encoders`` entry; a relative ``checkpoint`` is a
    folder inside the model directory (the face CNN, the tuned text layers)."""
    cfg = dict(cfg)
    name = cfg.pop("name")
    if isinstance(cfg.get("checkpoint"), str) and not Path(cfg["checkpoint"]).is_absolute():
        cfg["checkpoint"] = str(model_dir / cfg["checkpoint"])
    return encoders.create(kind, name, **cfg)


def _windows(duration: float, window: float) -> list[tuple[float, float]]:
    """Cut ``[0, duration]`` into windows; a tail shorter than a third of a window joins the one
    before, so no segment is judged on a fragment of a word."""
    if duration <= window * 1.0 + 1e-6:
        return [(0.0, duration)]
    edges = list(np.arange(0.0, duration, window)) + [duration]
    if len(edges) > 2 and edges[-1] - edges[-2] < window / 3:
        edges.pop(-2)
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]


def _sum_timings(items) -> dict[str, float]:
    total: dict[str, float] = {}
    for t in items:
        for k, v in t.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _combine(parts: list[dict[str, Any]], bounds: list[tuple[float, float]], fusion: str,
             clip: Clip) -> Prediction:
    """One Prediction from per-window results: duration-weighted mean of window probabilities."""
    weights = np.array([b - a for a, b in bounds]) if len(bounds) > 1 else np.ones(1)
    fused = [(w, p["fused"]) for w, p in zip(weights, parts) if p["fused"] is not None]
    views: dict[str, ModalityView] = {}
    for m in MODALITIES:
        outs = [p["outputs"][m] for p in parts]
        probs = [(w, p["experts"][m]) for w, p in zip(weights, parts)
                 if p["experts"].get(m) is not None]
        extras: dict[str, Any] = {}
        if m == "text":
            extras["transcript"] = " ".join(o.extras.get("transcript", "") for o in outs
                                            if o.extras.get("transcript")).strip()
            extras.update(language.combine_extras([o.extras for o in outs]))
        if m == "face":
            extras["frames_with_face"] = int(sum(o.extras.get("frames_with_face", 0)
                                                 for o in outs))
            extras["frames"] = int(sum(o.extras.get("frames", 0) for o in outs))
        if probs:
            avg = _weighted_mean(probs)
            views[m] = ModalityView(True, LABELS[int(avg.argmax())], probs_to_dict(avg),
                                    None, extras)
        else:
            reasons = sorted({o.reason for o in outs if o.reason})
            views[m] = ModalityView(False, None, None, "; ".join(reasons) or None, extras)
    segments = []
    if len(bounds) > 1:
        for (a, b), p in zip(bounds, parts):
            if p["fused"] is not None:
                segments.append(Segment(a, b, LABELS[int(p["fused"].argmax())],
                                        probs_to_dict(p["fused"])))
    if not fused:
        reason = "no modality available: " + "; ".join(
            f"{m}: {v.reason}" for m, v in views.items() if v.reason)
        return Prediction(None, None, views, fusion, clip.duration, segments=segments,
                          reason=reason)
    avg = _weighted_mean(fused)
    return Prediction(LABELS[int(avg.argmax())], probs_to_dict(avg), views, fusion,
                      clip.duration, segments=segments)


def _weighted_mean(pairs: list[tuple[float, np.ndarray]]) -> np.ndarray:
    w = np.array([p[0] for p in pairs], dtype=np.float64)
    return (np.stack([p[1] for p in pairs]) * w[:, None]).sum(0) / w.sum()
