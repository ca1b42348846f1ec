"""Encoders that run exported ONNX graphs on onnxruntime: no torch, no transformers.

``mer export onnx`` (:mod:`multimodal_emotion.export.onnx`) writes a model folder whose
``config.json`` names these encoders; the recognizer builds them through the same registry as
the PyTorch ones, so nothing else changes:

* ``whisper-onnx``: the Whisper encoder layers the audio expert pools (the same log-mel pieces,
  :func:`.audio_features.whisper_pieces`, from the CTranslate2 model's front end). On tiny.en
  the final layer still goes to the CTranslate2 transcriber as a ``StorageView``, so Whisper's
  encoder runs once per clip, as in torch; on base (whose CTranslate2 model the recognizer
  takes from language ID, as for torch) the graph stops after the last listed layer and
  nothing is handed to the transcriber, which is tiny.en with its own encoder pass.
* ``text-onnx``: the sentence encoder with its LoRA adapters merged at export; tokenization by
  the ``tokenizers`` package from the exported ``tokenizer.json``; mean pooling + L2 in numpy.
* ``face-onnx``: the face CNN's embedding; the detector, tracking and crops are the torch
  encoder's own (:mod:`.face_crops`); the mirror view is one more batch row.

Transcription (faster-whisper / CTranslate2) and language ID are not torch and stay as they are.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ModelError
from ..types import Clip, ModalityOutput
from . import register
from .audio_features import LayeredOutput, SILENCE_RULE, active_level_dbfs, check_audio, \
    clip_audio, pool_layers, whisper_pieces
from .face_crops import face_output, followed_crops, no_video, sample_frames, standardise
from .text import length_sorted_batches


def load_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for ``path`` (a :class:`ModelError` when it is missing or is
    not an ONNX graph onnxruntime can load). ``threads``: intra-op threads (None: onnxruntime's
    default, one per physical core)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError("this model folder needs onnxruntime: pip install onnxruntime "
                         "(see README, Edge export)") from exc
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ONNX file not found: {path}")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3  # warnings about unused initialisers are noise in a CLI
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"{path}: onnxruntime cannot load it ({exc})") from exc


def file_sha(path: str | Path) -> str:
    """Short sha256 of a file: part of an encoder's config, so cached embeddings never mix."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------ audio


@register("audio", "whisper-onnx")
class WhisperOnnxEncoder:
    """Whisper encoder layers ``layers`` (mean + std each) from an exported graph
    (``mel [1, n_mels, T] -> layers [L, 1, T/2, d]``, and ``final [1, T/2, d]`` when the
    export kept it for a transcriber sharing this Whisper).

    ``whisper_model``: the CTranslate2 Whisper whose log-mel front end (and, with ``final``, the
    decoder) this encoder uses; the recognizer passes the one it already holds (tiny.en for the
    transcriber, base for language ID), else it is loaded here. ``final_layer``: ``None`` hands
    the transcriber ``final`` when the graph has it; ``False`` never does (nobody decodes it);
    ``True`` requires it."""

    modality = "audio"
    name = "whisper-onnx"

    def __init__(self, checkpoint: str, layers: list[int], model_path: str | None = None,
                 compute_type: str = "int8", cpu_threads: int = 2, pad_to_s: float = 10.0,
                 whisper_model: Any = None, loudness_dbfs: float | None = None,
                 threads: int | None = None, final_layer: bool | None = None,
                 trim_db: float | None = None) -> None:
        from .whisper_models import load_whisper, resolve_whisper_model, whisper_model_label

        resolved = resolve_whisper_model(model_path)
        if whisper_model is None:
            whisper_model = load_whisper(resolved, compute_type, cpu_threads)
        self.whisper_model = whisper_model
        self.model_label = whisper_model_label(model_path)
        self.checkpoint = str(checkpoint)
        self.session = load_session(checkpoint, threads)
        self.layers = [int(i) for i in layers]
        outputs = [o.name for o in self.session.get_outputs()]
        shape = self.session.get_outputs()[0].shape  # [L, 1, T/2, d]
        if outputs not in (["layers"], ["layers", "final"]) or not isinstance(shape[-1], int) \
                or shape[0] != len(self.layers):
            raise ModelError(f"{checkpoint} is not an exported Whisper encoder of "
                             f"{len(self.layers)} layers (outputs: layers[, final])")
        has_final = "final" in outputs
        if final_layer and not has_final:
            raise ModelError(f"{checkpoint} stops after layer {max(self.layers)} (exported "
                             "for a transcriber that does not decode it): it has no final "
                             "layer to hand over")
        self.final_layer = has_final if final_layer is None else bool(final_layer)
        self._outputs = ["layers", "final"] if self.final_layer else ["layers"]
        self.width = int(shape[-1])
        self.pad_to_s = float(min(max(pad_to_s, 0.0), 30.0))
        self.loudness_dbfs = None if loudness_dbfs is None else float(loudness_dbfs)
        self.trim_db = None if trim_db is None else float(trim_db)
        self.dim = 2 * self.width * len(self.layers)
        self._sha = file_sha(checkpoint)

    def encode(self, clip: Clip) -> ModalityOutput:
        return self.encode_audio(clip_audio(clip))

    def encode_chunks(self, wave: np.ndarray) -> list[tuple[LayeredOutput, int]]:
        """The graph on each <= 30 s piece: ``(LayeredOutput, n_keep)`` pairs (``final`` a
        ``StorageView`` when the transcriber decodes it, else ``None``)."""
        out = []
        for mel, n_keep in whisper_pieces(self.whisper_model.feature_extractor, wave,
                                          self.pad_to_s, self.loudness_dbfs, self.trim_db):
            got = self.session.run(self._outputs, {"mel": mel[None]})
            final = None
            if self.final_layer:
                import ctranslate2

                final = ctranslate2.StorageView.from_array(np.ascontiguousarray(got[1]))
            out.append((LayeredOutput(final, [got[0][j, 0, :n_keep]
                                              for j in range(len(self.layers))]), n_keep))
        return out

    def encode_audio(self, wave: np.ndarray | None) -> ModalityOutput:
        """As the torch ``whisper`` encoder: the pooled layers, and (with ``final_layer``) the
        final layer's chunks in ``extras["whisper_encoder_output"]`` for the sharing
        transcriber."""
        missing = check_audio(wave, self.dim)
        if missing is not None:
            return missing
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        chunks = self.encode_chunks(wave)
        embedding, sequence = pool_layers(chunks, len(self.layers))
        extras: dict[str, Any] = {"level_dbfs": round(active_level_dbfs(wave), 1)}
        if self.final_layer:
            extras["whisper_encoder_output"] = [(enc.final, n) for enc, n in chunks]
        return ModalityOutput("audio", embedding, True, sequence, extras=extras)

    def config(self) -> dict[str, Any]:
        cfg = {"name": self.name, "model": self.model_label, "layers": self.layers,
               "pad_to_s": self.pad_to_s, "pool": "mean+std", "dim": self.dim,
               "silence": SILENCE_RULE, "onnx": self._sha, "version": 1}
        if self.loudness_dbfs is not None:
            cfg["loudness_dbfs"] = self.loudness_dbfs
        if self.trim_db is not None:
            cfg["trim_db"] = self.trim_db
        return cfg


# ------------------------------------------------------------------------------------- text


def masked_mean_np(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of ``hidden`` [B, T, D] over the tokens ``mask`` [B, T] keeps (numpy twin of
    :func:`.text.masked_mean`)."""
    m = mask[..., None].astype(hidden.dtype)
    return (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (as ``torch.nn.functional.normalize``, eps 1e-12)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@register("text", "text-onnx")
class OnnxTextEncoder:
    """Sentence embedding = L2-normalised masked mean of the exported encoder's token states.

    ``checkpoint``: a folder with ``model.onnx`` (``input_ids, attention_mask -> hidden``),
    ``tokenizer.json`` and ``config.json`` (``max_length``, ``pad_id``, ``pad_token``,
    ``dim``, ``model``: the source encoder's stable id).
    """

    modality = "text"
    name = "text-onnx"

    def __init__(self, checkpoint: str, max_length: int | None = None,
                 threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        folder = Path(checkpoint)
        try:
            cfg = json.loads((folder / "config.json").read_text())
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # OSError, JSON errors, or tokenizers' plain Exception
            raise ModelError(f"text encoder folder {folder} needs config.json and "
                             f"tokenizer.json: {exc}") from exc
        self.folder, self.cfg = folder, cfg
        self.max_length = int(max_length or cfg["max_length"])
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.enable_padding(pad_id=int(cfg["pad_id"]), pad_token=cfg["pad_token"])
        self.session = load_session(folder / "model.onnx", threads)
        self.dim = int(cfg["dim"])
        self.model_id = cfg.get("model", "")
        self._sha = file_sha(folder / "model.onnx")

    def _forward(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        enc = self.tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in enc], np.int64)
        mask = np.asarray([e.attention_mask for e in enc], np.int64)
        (hidden,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        return hidden, mask

    def _batches(self, texts: list[str], batch_size: int
                 ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        """(row indices, token states, mask) per length-sorted batch (as the torch encoder)."""
        return length_sorted_batches(texts, batch_size, self._forward)

    def embed_texts(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Sentence embeddings ``[N, dim]`` float32, unit length."""
        out = np.zeros((len(texts), self.dim), np.float32)
        for idx, tokens, mask in self._batches(texts, batch_size):
            out[np.asarray(idx)] = l2_normalize(masked_mean_np(tokens, mask))
        return out

    def embed_with_sequence(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(sentence embedding ``[dim]``, token embeddings ``[T, dim]``) of one text."""
        tokens, _mask = self._forward([text])
        seq = tokens[0].astype(np.float32)
        return l2_normalize(seq.mean(0)).astype(np.float32), seq

    def token_sequence(self, text: str) -> np.ndarray:
        return self.embed_with_sequence(text)[1]

    def config(self) -> dict[str, Any]:
        return {"name": "text-onnx", "model": self.model_id, "max_length": self.max_length,
                "pooling": "mean+l2", "dim": self.dim, "onnx": self._sha}


# ------------------------------------------------------------------------------------- face


@register("face", "face-onnx")
class OnnxFaceEncoder:
    """The face CNN's embedding from an exported graph (``faces [N, 1, S, S] -> embedding
    [N, D]``, ``S`` the CNN's input size), with the torch encoder's detector and crops."""

    modality = "face"
    name = "face-onnx"

    def __init__(self, checkpoint: str, max_frames: int = 16, flip_tta: bool = False,
                 detector: str = "blazeface", threads: int | None = None) -> None:
        from .face_detect import create_detector

        self.checkpoint = str(checkpoint)
        self.session = load_session(checkpoint, threads)
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_size, self.dim = int(inp.shape[-1]), int(out.shape[-1])
        self.max_frames, self.flip_tta = int(max_frames), bool(flip_tta)
        self.detector_name = detector
        self.detector = create_detector(detector)
        self._sha = file_sha(checkpoint)

    def encode_images(self, faces: np.ndarray, batch: int = 512) -> np.ndarray:
        """Embeddings ``[N, dim]`` of 48x48 grey faces (uint8 FER2013 or preprocessed float),
        centre-cropped to the CNN's input; with ``flip_tta`` the mean with the mirror image's."""
        faces = np.asarray(faces)
        x = standardise(faces) if faces.dtype == np.uint8 else faces.astype(np.float32)
        h, w = x.shape[-2:]
        top, left = (h - self.input_size) // 2, (w - self.input_size) // 2
        x = np.ascontiguousarray(x[:, None, top:top + self.input_size,
                                   left:left + self.input_size], np.float32)
        out = np.zeros((len(x), self.dim), np.float32)
        for i in range(0, len(x), batch):
            part = x[i:i + batch]
            if self.flip_tta:
                both = self.session.run(None, {"faces": np.concatenate(
                    [part, np.ascontiguousarray(part[..., ::-1])])})[0]
                out[i:i + len(part)] = (both[:len(part)] + both[len(part):]) / 2
            else:
                out[i:i + len(part)] = self.session.run(None, {"faces": part})[0]
        return out

    def encode(self, clip: Clip) -> ModalityOutput:
        if sample_frames(clip, self.max_frames) is None:
            return no_video(self.dim)
        return face_output(*followed_crops(self.detector, clip, self.max_frames), self.dim,
                           self.encode_images)

    def config(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_frames": self.max_frames, "onnx": self._sha}
        if self.flip_tta:
            kwargs["flip_tta"] = True
        if self.detector_name != "blazeface":
            kwargs["detector"] = self.detector_name
        return {"name": self.name, "kwargs": kwargs}
