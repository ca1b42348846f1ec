"""``EmotionRecognizer``: the one call every shell (CLI, HTTP, evaluation) goes through.

It owns the loaded encoders and the trained :class:`~multimodal_emotion.model.EmotionModel`,
decodes a clip once, cuts long clips into windows, and turns numbers into a
:class:`~multimodal_emotion.types.Prediction`. Models load once, in the constructor.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

from . import encoders, media, media_stream
from .blas import use_one_blas_thread
from .encoders import language
from .encoders.audio_features import clip_audio
from .errors import ModelError
from .explain import modality_shapley, word_occlusion
from .label_maps import LabelMap, load_label_map
from .serialized import serialized
from .labels import LABELS
from .model_dir import DEFAULT_MODEL_DIR, load_model
from .types import MODALITIES, Clip, Explanation, ModalityOutput, ModalityView, Prediction, \
    Segment, WindowLogits, probs_to_dict

if TYPE_CHECKING:  # torch is imported only for a PyTorch model folder (see model_dir.py)
    from .model import EmotionModel

DEFAULT_WINDOW_S = 10.0
# What ``WhisperAudioEncoder`` loads when its config names no model, compute type or threads
_DEFAULT_AUDIO_WHISPER = {"model": "tiny.en", "compute_type": "int8", "cpu_threads": 2}


class EmotionRecognizer:
    """Analyze clips with a trained model folder (default: the one shipped in the package)."""

    def __init__(self, model: EmotionModel, model_dir: Path, window_s: float = DEFAULT_WINDOW_S,
                 fps: float = media.DEFAULT_FPS, threads: int | None = None,
                 max_duration_s: float | None = media.DEFAULT_MAX_DURATION_S,
                 language_id: bool = True, audio_int8: bool = False,
                 _early: "_EarlyLoads | None" = None) -> None:
        self.model, self.model_dir = model, model_dir
        self.window_s, self.fps = window_s, fps
        self.max_duration_s = max_duration_s  # longer files are refused (media.load)
        cfg: dict[str, Any] = model.config.get("encoders", {})
        early = _early or _EarlyLoads(ThreadPoolExecutor(max_workers=2))
        self._pool = early.pool
        # The sentence encoder (all-mpnet-base-v2, 110 M parameters, memory-mapped) loads in
        # a second thread while Whisper and the face CNN load here (from_pretrained may have
        # started the Whisper models already: _EarlyLoads).
        text_future = self._pool.submit(build_encoder, "text", cfg.get("text", {"name": "minilm"}),
                                        model_dir)
        # Whisper base for language ID (encoders/language.py) loads beside it; it routes the
        # faster-whisper transcriber's audio; language_id=False (or "language": {"enabled":
        # false} in the model config) keeps the old English-only path, for English-only input.
        lcfg = dict(cfg.get("language", {}))
        base_type = _language_id_compute_type(cfg, language_id)
        for key in ("compute_type", "enabled"):
            lcfg.pop(key, None)
        base_future = None if base_type is None else early.base or self._pool.submit(
            language.load_base, compute_type=base_type)
        acfg = dict(cfg.get("audio", {"name": "whisper"}))
        if early.whisper is not None and _default_audio_whisper(acfg):
            acfg.update(whisper_model=early.whisper.result(), model_path="tiny.en")
        elif base_future is not None and _base_audio_whisper(acfg):
            # The audio expert reads Whisper base's layers (in torch, or an exported graph);
            # the CTranslate2 base it takes its log-mel front end from is the one language ID
            # loads: one copy, not two. Nobody decodes its output (the transcriber is tiny.en),
            # so it stops at its last listed layer.
            acfg.update(whisper_model=base_future.result(), final_layer=False)
        # a long job's choice (mer call --fast): int8 in the audio expert's layers (the encoder
        # itself refuses it without torch layers)
        self.audio_int8 = bool(audio_int8)
        if self.audio_int8:
            if acfg.get("name") != "whisper":
                raise ModelError(f"int8 audio layers need the torch Whisper audio encoder; "
                                 f"this model's is {acfg.get('name')!r}")
            acfg["int8"] = True
        self.audio = build_encoder("audio", acfg, model_dir)
        audio_whisper = getattr(self.audio, "whisper_model", None)
        # The transcriber is tiny.en: it shares the audio encoder's model when that is tiny.en
        # too (then it decodes from the audio encoder's output: one encoder pass), else the
        # early-loaded tiny.en.
        from .encoders.whisper_models import whisper_model_label

        tiny = whisper_model_label("tiny.en")
        english = audio_whisper if getattr(self.audio, "model_label", None) == tiny \
            else (early.whisper.result() if early.whisper is not None else None)
        tcfg = dict(cfg.get("transcriber", {"name": "faster-whisper"}))
        if english is not None and tcfg.get("name") == "faster-whisper" \
                and not tcfg.get("model_path"):
            tcfg["whisper_model"] = english  # one Whisper in memory, not two
        self.transcriber = build_encoder("transcriber", tcfg, model_dir)
        # With one shared Whisper, the transcriber decodes from the audio encoder's output.
        self._shares_whisper = audio_whisper is not None and english is audio_whisper \
            and "whisper_model" in tcfg and hasattr(self.transcriber, "transcribe_encoded")
        from .encoders.text import TranscriptTextEncoder

        self.face = build_encoder("face", cfg.get("face", {"name": "haar-cnn"}), model_dir)
        # Same input, same output at any concurrency: each engine runs one call at a time
        # (OpenCV's cascade and HF tokenizers are not thread-safe); see serialized.py.
        whisper_lock = threading.RLock()
        self.audio = serialized(self.audio, whisper_lock if self._shares_whisper else None)
        self.transcriber = serialized(self.transcriber,
                                      whisper_lock if self._shares_whisper else None)
        self.face = serialized(self.face)
        self.text = TranscriptTextEncoder(self.transcriber, serialized(text_future.result()))
        # not waited for here: the router waits at the first clip's language ID
        self.language = None if base_future is None else language.LanguageRouter(
            self.transcriber, base_future, **lcfg)
        for m, enc in (("audio", self.audio), ("text", self.text), ("face", self.face)):
            if enc.dim != model.dims[m]:
                raise ModelError(f"{m} encoder gives {enc.dim}-d embeddings but the model was "
                                 f"trained on {model.dims[m]}-d")
        # once every encoder's libraries are loaded (OpenCV brings its own OpenBLAS): the same
        # answers on any core count, see blas.py
        use_one_blas_thread()

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, **kwargs: Any) -> "EmotionRecognizer":
        """Load a model folder (``config.json`` + ``model.safetensors``, or one written by
        ``mer export onnx``, which runs on onnxruntime without torch); ``None`` = shipped.

        The Whisper models (CTranslate2, no torch) start loading in the background from
        ``config.json`` before the model itself, whose import of torch (2.5 s of one core)
        would otherwise leave the second core idle: CTranslate2 loads without the GIL."""
        model_dir = Path(path) if path else DEFAULT_MODEL_DIR
        early = _EarlyLoads.start(model_dir, kwargs.get("language_id", True))
        try:
            return cls(load_model(model_dir), model_dir, _early=early, **kwargs)
        except BaseException:
            early.pool.shutdown(wait=False, cancel_futures=True)
            raise

    @property
    def fusions(self) -> list[str]:
        return list(self.model.fusions)

    # -- the main call ---------------------------------------------------------------------
    def analyze(self, source: media.Source | Clip | None = None, fusion: str | None = None,
                window_s: float | None = None, *, audio: np.ndarray | None = None,
                sample_rate: int = media.SAMPLE_RATE, frames: np.ndarray | None = None,
                fps: float | None = None, labels: "LabelMap | str | None" = None,
                explain_words: bool = False,
                progress: Callable[[float, float | None], None] | None = None) -> Prediction:
        """Analyze a path, bytes, file object or decoded :class:`Clip`, or arrays in memory:
        ``analyze(audio=wave, sample_rate=sr, frames=rgb_frames, fps=fps)`` (either may be
        omitted; the missing modality is masked). ``fps``: the frame rate of ``frames``, or the
        rate frames are sampled at from a file (default: the recognizer's).

        A file is decoded piece by piece and analyzed window by window (``window_s``), so memory
        does not grow with its length; the answer is the duration-weighted mean of the windows.

        ``labels``: a :class:`~multimodal_emotion.label_maps.LabelMap` (or its file) whose
        categories are reported beside the canonical label. ``explain_words``: also find the
        transcript words that moved the text expert most (one more text-encoder batch).
        ``progress(done_s, total_s)`` is called after each window (``total_s``: the duration
        the file declares, ``None`` when it declares none), for the shells' progress bars."""
        label_map = load_label_map(labels)
        t0 = time.perf_counter()
        fusion = fusion or self.model.default_fusion
        window = window_s or self.window_s
        decode = [0.0]
        total: float | None = None
        if source is None:
            clip = media.from_arrays(audio, sample_rate, frames, fps or self.fps)
            windows = _clip_windows(clip, window)
        elif isinstance(source, Clip):
            windows = _clip_windows(source, window)
        else:  # a file: decoded piece by piece, so memory does not grow with its length
            if hasattr(source, "read") and not isinstance(getattr(source, "name", None), str):
                source = source.read()  # read once: probed and decoded from the same bytes
            info = media_stream.probe(source)
            total = info.declared_duration
            windows = media_stream.iter_windows(
                media_stream.iter_chunks(source, fps=fps or self.fps,
                                         max_duration=self.max_duration_s, info=info),
                window, fps or self.fps, info.name)
        parts, bounds, clip_warnings = [], [], []
        for offset, clip in _timed(windows, decode):
            part = self._analyze_window(clip, fusion)
            for out in part["outputs"].values():
                out.sequence = None  # used by the fusion; kept, it would grow with duration
            parts.append(part)
            bounds.append((offset, offset + clip.duration))
            clip_warnings.extend(clip.warnings)
            if progress is not None:
                progress(offset + clip.duration, total)
        duration = bounds[-1][1]
        pred = _combine(parts, bounds, fusion, duration, self.model, label_map)
        pred.warnings.extend(clip_warnings)  # what the decoder skipped (truncated file)
        pred.expert_logits = [WindowLogits(a, b, p["logits"]) for (a, b), p in zip(bounds, parts)]
        if explain_words and pred.explanation is not None:
            t = time.perf_counter()
            pred.explanation.words = self.explain_words(
                pred.modalities["text"].extras.get("transcript", ""), pred.label)
            parts[0]["timings"]["explain"] = (time.perf_counter() - t) * 1000
        pred.timings_ms = {"decode": decode[0] * 1000,
                           **_sum_timings(p["timings"] for p in parts)}
        pred.timings_ms["total"] = (time.perf_counter() - t0) * 1000
        pred.path = None if source is None or isinstance(source, (bytes, Clip)) \
            or hasattr(source, "read") else str(source)
        return pred

    def analyze_segment(self, clip: Clip, fusion: str | None = None,
                        labels: "LabelMap | str | None" = None,
                        language: tuple[str, float] | None = None) -> Prediction:
        """One piece of a longer recording (a window, a speaker's turn, a live window) as one
        :class:`Prediction`, never cut again: what the call, stream and batch shells feed with
        their own segmenters. ``clip`` times are relative to the piece. ``language``:
        ``(code, probability)`` when the recording's language is already known (a call detects
        it once): language ID is then skipped for this piece."""
        t0 = time.perf_counter()
        fusion = fusion or self.model.default_fusion
        part = self._analyze_window(clip, fusion, language)
        for out in part["outputs"].values():
            out.sequence = None
        pred = _combine([part], [(0.0, clip.duration)], fusion, clip.duration, self.model,
                        load_label_map(labels))
        pred.warnings.extend(clip.warnings)
        pred.expert_logits = [WindowLogits(0.0, clip.duration, part["logits"])]
        pred.timings_ms = dict(part["timings"])
        pred.timings_ms["total"] = (time.perf_counter() - t0) * 1000
        return pred

    def analyze_segments(self, clips: list[Clip], fusion: str | None = None,
                         labels: "LabelMap | str | None" = None,
                         language: tuple[str, float] | None = None,
                         batch_size: int = 8) -> list[Prediction]:
        """:meth:`analyze_segment` of several pieces at once (a call's turns, once its language
        is known): the Whisper encoders, tiny.en's decoding and the sentence encoder run on
        batches of up to ``batch_size`` pieces, which costs less than one piece at a time on
        a CPU. Each prediction equals ``analyze_segment`` of that piece alone to float
        rounding (the batched encoders keep rows apart: padding masked, token caps checked).
        Without a known ``language`` each piece takes :meth:`analyze_segment` (language ID
        and the lock it may set are per piece)."""
        if language is None or len(clips) < 2:
            return [self.analyze_segment(c, fusion, labels, language) for c in clips]
        t0 = time.perf_counter()
        fusion = fusion or self.model.default_fusion
        label_map = load_label_map(labels)
        encoded = self.encode_batch(clips, language, batch_size)
        share = (time.perf_counter() - t0) * 1000 / len(clips)
        preds = []
        for clip, (outputs, timings) in zip(clips, encoded):
            part = self._predict_window(outputs, timings, fusion)
            for out in part["outputs"].values():
                out.sequence = None
            pred = _combine([part], [(0.0, clip.duration)], fusion, clip.duration, self.model,
                            label_map)
            pred.warnings.extend(clip.warnings)
            pred.expert_logits = [WindowLogits(0.0, clip.duration, part["logits"])]
            pred.timings_ms = dict(part["timings"])
            pred.timings_ms["total"] = share + part["timings"].get("fusion", 0.0)
            preds.append(pred)
        return preds

    def encode_batch(self, clips: list[Clip], known_language: tuple[str, float],
                     batch_size: int = 8
                     ) -> list[tuple[dict[str, ModalityOutput], dict[str, float]]]:
        """:meth:`encode` of several clips whose language is known, the audio encoder,
        tiny.en and the sentence encoder batched where they can be (see
        :meth:`analyze_segments`); faces run clip by clip in the second thread meanwhile.
        Per-clip timings are each batch stage's time shared evenly."""
        n = len(clips)
        timings: list[dict[str, float]] = [{} for _ in clips]

        def face(clip: Clip, into: dict[str, float]) -> ModalityOutput:
            t = time.perf_counter()
            out = self.face.encode(clip)
            into["face"] = (time.perf_counter() - t) * 1000
            return out

        faces = [self._pool.submit(face, c, tm) for c, tm in zip(clips, timings)]
        t = time.perf_counter()
        batch_audio = getattr(self.audio, "encode_audio_batch", None)
        audio = batch_audio([clip_audio(c) for c in clips], batch_size) \
            if batch_audio is not None else [self.audio.encode(c) for c in clips]
        _share(timings, "audio", t)
        spoken = [i for i, a in enumerate(audio) if a.available]
        texts: dict[int, ModalityOutput] = {}
        if spoken and self.language is not None and not self._shares_whisper:
            t = time.perf_counter()
            trs = self.language.transcribe_batch([clips[i].audio for i in spoken],
                                                 known_language, batch_size)
            _share(timings, "transcribe", t, spoken)
            t = time.perf_counter()
            texts = dict(zip(spoken, language.encode_transcripts(self.text, trs)))
            _share(timings, "text", t, spoken)
        else:  # one by one, as encode() does (a transcriber decoding the audio encoder's output)
            for i in spoken:
                texts[i] = self._transcribe_one(clips[i], audio[i], timings[i], known_language)
        out = []
        for i in range(n):
            audio[i].extras.pop("whisper_encoder_output", None)
            text = texts.get(i) or ModalityOutput.missing(
                "text", self.text.dim, reason=f"no speech ({audio[i].reason})", transcript="")
            out.append(({"audio": audio[i], "text": text, "face": faces[i].result()},
                        timings[i]))
        return out

    def _transcribe_one(self, clip: Clip, audio_out: ModalityOutput, timings: dict[str, float],
                        known_language: tuple[str, float] | None) -> ModalityOutput:
        """The text output of one clip whose audio was encoded (``encode``'s text stage)."""
        def timed(stage: str, fn, *args):
            t = time.perf_counter()
            out = fn(*args)
            timings[stage] = (time.perf_counter() - t) * 1000
            return out

        encoded = audio_out.extras.get("whisper_encoder_output")
        if self.language is not None:  # language ID, then tiny.en or a translation
            tr = self.language.transcribe(clip.audio, encoded if self._shares_whisper
                                          else None, known_language)
            timings.update(tr.timings_ms)
            return timed("text", language.encode_transcript, self.text, tr)
        if encoded is not None and self._shares_whisper:
            transcript = timed("transcribe", self.transcriber.transcribe_encoded, encoded)
        else:
            transcript = timed("transcribe", self.transcriber.transcribe, clip.audio)
        return timed("text", self.text.encode_transcript, transcript)

    def encode(self, clip: Clip, known_language: tuple[str, float] | None = None
               ) -> tuple[dict[str, ModalityOutput], dict[str, float]]:
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
            text_out = self._transcribe_one(clip, audio_out, timings, known_language)
            audio_out.extras.pop("whisper_encoder_output", None)
        else:
            text_out = ModalityOutput.missing("text", self.text.dim,
                                              reason=f"no speech ({audio_out.reason})",
                                              transcript="")
        return {"audio": audio_out, "text": text_out, "face": face_future.result()}, timings

    def explain_words(self, transcript: str, label: str | None, top: int = 5
                      ) -> list[dict[str, Any]]:
        """Transcript words whose removal changes the text expert's calibrated probability of
        ``label`` most (occlusion; one batch through the text encoder)."""
        if not transcript or label is None:
            return []
        k = self.model.labels.index(label)
        uniform = float(np.exp(self.model.calibration.log_target_array()[k]))

        def score(texts: list[str]) -> np.ndarray:
            keep = [i for i, t in enumerate(texts) if t.strip()]
            out = np.full(len(texts), uniform)  # no words left: the expert knows nothing
            if keep:
                emb = self.text.text_encoder.embed_texts([texts[i] for i in keep])
                probs = self.model.calibrated_expert_proba("text", emb)
                out[keep] = probs[:, k]
            return out

        return word_occlusion(transcript, score, top)

    def _analyze_window(self, clip: Clip, fusion: str,
                        known_language: tuple[str, float] | None = None) -> dict[str, Any]:
        outputs, timings = self.encode(clip, known_language)
        return self._predict_window(outputs, timings, fusion)

    def _predict_window(self, outputs: dict[str, ModalityOutput], timings: dict[str, float],
                        fusion: str) -> dict[str, Any]:
        """Fusion and the experts on one window's encoder outputs."""
        t = time.perf_counter()
        subsets, experts = self.model.subset_predict(
            {m: o.embedding for m, o in outputs.items()},
            {m: o.available for m, o in outputs.items()}, fusion,
            {m: o.sequence for m, o in outputs.items() if o.available})
        present = tuple(m for m in self.model.modalities if outputs[m].available)
        timings["fusion"] = (time.perf_counter() - t) * 1000
        logits = self.model.expert_logits({m: o.embedding for m, o in outputs.items()},
                                          {m: o.available for m, o in outputs.items()})
        return {"fused": subsets.get(present), "subsets": subsets, "experts": experts,
                "outputs": outputs, "timings": timings,
                "logits": {m: None if z is None else z.tolist() for m, z in logits.items()}}




class _EarlyLoads:
    """Whisper models already loading in the recognizer's thread pool: ``whisper`` (the audio
    encoder's tiny.en) and ``base`` (language ID), each a Future or ``None``."""

    def __init__(self, pool: ThreadPoolExecutor, whisper: "Future[Any] | None" = None,
                 base: "Future[Any] | None" = None) -> None:
        self.pool, self.whisper, self.base = pool, whisper, base

    @classmethod
    def start(cls, model_dir: Path, language_id: bool) -> "_EarlyLoads":
        """Submit what ``model_dir``'s config will need. An unreadable config starts nothing:
        ``EmotionModel.from_pretrained`` then says what is wrong with it."""
        from .encoders.whisper_models import load_whisper

        early = cls(ThreadPoolExecutor(max_workers=2))
        try:
            cfg = json.loads((model_dir / "config.json").read_text()).get("encoders", {})
        except (OSError, ValueError, AttributeError):
            return early
        tcfg = cfg.get("transcriber", {"name": "faster-whisper"})
        english_default = tcfg.get("name") == "faster-whisper" and not tcfg.get("model_path")
        if _default_audio_whisper(dict(cfg.get("audio", {"name": "whisper"}))) \
                or english_default:  # the audio encoder's or the transcriber's tiny.en
            early.whisper = early.pool.submit(load_whisper, **_DEFAULT_AUDIO_WHISPER)
        base_type = _language_id_compute_type(cfg, language_id)
        if base_type is not None:
            early.base = early.pool.submit(language.load_base, compute_type=base_type)
        return early


# The audio encoders that take a CTranslate2 Whisper from the recognizer (torch, exported)
_WHISPER_AUDIO = ("whisper", "whisper-onnx")


def _default_audio_whisper(acfg: dict[str, Any]) -> bool:
    """True when the audio encoder config loads the packaged tiny.en with its defaults (the
    only Whisper loaded early; any other choice loads in the encoder as before)."""
    return acfg.get("name") in _WHISPER_AUDIO and not {
        "model_path", "compute_type", "cpu_threads", "whisper_model"} & set(acfg)


def _base_audio_whisper(acfg: dict[str, Any]) -> bool:
    """True when the audio encoder reads the packaged Whisper base (its layers in torch or an
    exported graph) and leaves the CTranslate2 model's load to its defaults: it can then take
    language ID's."""
    return acfg.get("name") in _WHISPER_AUDIO and acfg.get("model_path") == "base" \
        and not {"compute_type", "cpu_threads", "whisper_model"} & set(acfg)


def _language_id_compute_type(cfg: dict[str, Any], language_id: bool) -> str | None:
    """Whisper base's compute type when language ID is on for this config, else ``None``:
    on unless ``language_id=False`` or ``"language": {"enabled": false}``, and only when the
    transcriber is faster-whisper (the router decodes with it)."""
    lcfg = cfg.get("language", {})
    routed = cfg.get("transcriber", {"name": "faster-whisper"})["name"] == "faster-whisper"
    if not (lcfg.get("enabled", True) and routed and language_id):
        return None
    return str(lcfg.get("compute_type", "int8"))


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


def _clip_windows(clip: Clip, window: float) -> Iterator[tuple[float, Clip]]:
    """A clip already in memory, cut as :func:`media_stream.iter_windows` cuts a stream."""
    bounds = _windows(clip.duration, window)
    for a, b in bounds:
        part = clip.window(a, b) if len(bounds) > 1 else clip
        if b == bounds[-1][1]:
            part.warnings = list(clip.warnings)
        yield a, part


def _timed(items: Iterable[Any], total: list[float]) -> Iterator[Any]:
    """Yield from ``items``, adding the seconds spent producing them (decoding) to ``total[0]``."""
    it = iter(items)
    while True:
        t = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            total[0] += time.perf_counter() - t
            return
        total[0] += time.perf_counter() - t
        yield item


def _share(timings: list[dict[str, float]], stage: str, since: float,
           rows: list[int] | None = None) -> None:
    """A batch stage's milliseconds since ``since``, shared evenly among ``rows`` (all)."""
    rows = list(range(len(timings))) if rows is None else rows
    each = (time.perf_counter() - since) * 1000 / max(1, len(rows))
    for i in rows:
        timings[i][stage] = each


def _sum_timings(items) -> dict[str, float]:
    total: dict[str, float] = {}
    for t in items:
        for k, v in t.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _combine(parts: list[dict[str, Any]], bounds: list[tuple[float, float]], fusion: str,
             duration: float, model: EmotionModel, label_map: LabelMap | None = None) -> Prediction:
    """One Prediction from per-window results: duration-weighted mean of window probabilities.

    The clip's explanation is the same weighted mean of the windows' Shapley values for the
    clip's label (Shapley values are linear in the game, and a window without a modality gives
    it 0), so it still adds up to the clip's probability of that label."""
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
    base = np.exp(model.calibration.log_target_array())
    segments = []
    if len(bounds) > 1:
        for (a, b), p in zip(bounds, parts):
            if p["fused"] is not None:
                k = int(p["fused"].argmax())
                segments.append(Segment(
                    a, b, LABELS[k], probs_to_dict(p["fused"]), float(p["fused"][k]),
                    _explanation(k, [(1.0, p)], base),
                    label_map.apply(probs_to_dict(p["fused"])) if label_map else None))
    if not fused:
        reason = "no modality available: " + "; ".join(
            f"{m}: {v.reason}" for m, v in views.items() if v.reason)
        return Prediction(None, None, views, fusion, duration, segments=segments,
                          reason=reason)
    avg = _weighted_mean(fused)
    k = int(avg.argmax())
    label = LABELS[k]
    probabilities = probs_to_dict(avg)
    available = [m for m, v in views.items() if v.available]
    agree = [m for m in available if views[m].label == label]
    warnings = []
    if len(available) == 1 and not model.keeps_single_modality(fusion):
        warnings.append(f"only {available[0]} is available and fusion {fusion!r} does not "
                        f"keep a lone expert's answer: its label may differ from the "
                        f"{available[0]} expert's; the default fusion does not")
    return Prediction(
        label, probabilities, views, fusion, duration, segments=segments,
        confidence=float(avg[k]),
        agreement={"score": round(len(agree) / len(available), 4), "agree": agree,
                   "disagree": [m for m in available if m not in agree]},
        explanation=_explanation(k, [(w, p) for w, p in zip(weights, parts)
                                     if p["fused"] is not None], base),
        business=label_map.apply(probabilities) if label_map else None, warnings=warnings)


def _explanation(k: int, weighted_parts: list[tuple[float, dict[str, Any]]], base: np.ndarray
                 ) -> Explanation:
    """Shapley contributions to label ``k``, duration-weighted over windows."""
    total = sum(w for w, _ in weighted_parts)
    contrib = {m: 0.0 for m in MODALITIES}
    for w, p in weighted_parts:
        for m, v in modality_shapley(k, p["subsets"], float(base[k]), MODALITIES).items():
            contrib[m] += w * v / total
    return Explanation(LABELS[k], float(base[k]), contrib)


def _weighted_mean(pairs: list[tuple[float, np.ndarray]]) -> np.ndarray:
    w = np.array([p[0] for p in pairs], dtype=np.float64)
    return (np.stack([p[1] for p in pairs]) * w[:, None]).sum(0) / w.sum()
