"""Audio encoders: speech waveform -> fixed embedding (+ a short frame sequence for fusion).

Three back-ends behind one interface (``encode(clip)``, ``encode_audio(wave)``, ``config()``):

* ``whisper`` (default): the encoder of the packaged Whisper tiny.en (CTranslate2, int8) via
  faster-whisper. Its frames carry prosody and voice quality as well as phonetics, it is already
  on disk for the transcriber (one model instance can serve both), and it runs in tens of ms.
* ``mfcc-lstm``: the classic MFCC + deltas front-end written out explicitly, followed by a small
  BiLSTM with attention pooling trained here on RAVDESS; a transparent, tiny baseline.
* ``wav2vec2``: any local or cached Hugging Face wav2vec2 / HuBERT / WavLM checkpoint, frozen,
  mean+std pooled over one hidden layer.

Silence: a clip whose *active level* -- the 95th percentile of the RMS of its 20 ms frames, so
leading/trailing pauses do not dilute it -- is below :data:`SILENCE_DBFS` (-60 dBFS, RMS < 0.001
of full scale), or which is shorter than :data:`MIN_SECONDS`, is reported unavailable instead of
being embedded, so fusion masks it. The threshold is low on purpose: RAVDESS speech is recorded
quietly (active levels down to -55 dBFS), while digital silence and faint room tone sit below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..types import Clip, ModalityOutput
from . import register

from .audio_features import (  # noqa: F401  (re-exported: the names callers know)
    LEVEL_FRAME_S, LEVEL_PERCENTILE, MIN_SECONDS, SAMPLE_RATE, SILENCE_DBFS, SILENCE_RULE,
    LayeredOutput, active_level_dbfs, check_audio, clip_audio, kept_frames,
    normalize_loudness, pool_layers, rms_dbfs, stats_pool, time_pool, whisper_pieces)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "default"


class _AudioEncoder:
    """Shared ``encode(clip)`` and silence handling; subclasses implement ``_embed``."""

    modality = "audio"
    name = "base"
    dim = 0

    def encode(self, clip: Clip) -> ModalityOutput:
        return self.encode_audio(clip_audio(clip))

    def encode_audio(self, wave: np.ndarray | None) -> ModalityOutput:
        """Embed a mono float32 16 kHz waveform; unavailable when absent or silent."""
        missing = check_audio(wave, self.dim)
        if missing is not None:
            return missing
        assert wave is not None
        with torch.inference_mode():
            embedding, sequence = self._embed(np.ascontiguousarray(wave, dtype=np.float32))
        return ModalityOutput("audio", embedding, True, sequence,
                              extras={"level_dbfs": round(active_level_dbfs(wave), 1)})

    def _embed(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        raise NotImplementedError


# ----------------------------------------------------------------------------------- whisper


@register("audio", "whisper")
class WhisperAudioEncoder(_AudioEncoder):
    """Whisper encoder states over the real audio, mean+std pooled (2 x 384 = 768-d for tiny).

    The log-mel is zero-padded to ``pad_to_s`` seconds (default 10; clips longer keep their
    length), encoded, and only the 50 frames/s that cover real audio are kept. CTranslate2 accepts
    inputs shorter than Whisper's 30 s window (using the first positional embeddings): padding to
    30 s costs ~0.3 s per clip on 2 cores, no padding is fastest but measured 1.3 UAR points lower
    on RAVDESS (68.9 vs 70.2, logreg, 6-fold); 10 s is the compromise. Clips over 30 s are chunked.
    ``sequence`` is the kept frames averaged to 10 frames/s.

    ``layers`` (e.g. ``[1, 2, 3, 4]``): instead of CTranslate2's final layer, run the encoder in
    PyTorch (float32, weights read from the same ``model.bin``; see ``whisper_torch``) and
    concatenate the mean+std of each listed layer (1 = first block's output; the last index is
    the final layer-normed output). Intermediate layers carry more prosody than the last one:
    on RAVDESS, L1..L4 give 75.0 % UAR against 69.6 % for the final layer
    (``bench/results/whisper_layers.md``). The final layer still goes to a sharing transcriber
    (as a CTranslate2 ``StorageView``), so Whisper's encoder runs once per clip either way; the
    sequence is then the mean of the listed layers' frames.

    ``int8``: the torch layers' linear maps compute in int8 (``quantization.int8_linear_layers``):
    a third less encoder time on 2 AVX2 cores; on corpora the expert never saw, 5.6-8.0 % of
    labels change and UAR moves -1.2..+0.3 points (``bench/int8_audio.py``). For long jobs that
    ask for it (``mer call --fast``); the shipped expert was trained on float32. In a batch the
    activations' int8 scale is the batch's, so a turn's answer may also move a little with the
    turns batched beside it.
    """

    name = "whisper"

    def __init__(self, model_path: str | None = None, compute_type: str = "int8",
                 cpu_threads: int = 2, pad_to_s: float = 10.0, whisper_model: Any = None,
                 layers: list[int] | None = None, loudness_dbfs: float | None = None,
                 final_layer: bool = True, trim_db: float | None = None,
                 int8: bool = False) -> None:
        from .whisper_models import load_whisper, resolve_whisper_model, whisper_model_label

        # a registry name, a folder, or None (the packaged default); a missing one raises here
        resolved = resolve_whisper_model(model_path)
        shared = whisper_model is not None
        if whisper_model is None:
            whisper_model = load_whisper(resolved, compute_type, cpu_threads)
        self.whisper_model = whisper_model
        self.model_path = "<shared instance>" if shared and model_path is None else resolved
        # What the cache key records: the packaged default by name, anything else by folder name
        # (a shared ``whisper_model`` is assumed to be the packaged one unless model_path is given).
        self.model_label = whisper_model_label(model_path)
        self.compute_type, self.cpu_threads = compute_type, cpu_threads
        self.pad_to_s = float(min(max(pad_to_s, 0.0), 30.0))
        self.width = _encoder_width(whisper_model)
        self.layers = [int(i) for i in layers] if layers else None
        # scale each utterance to this active level before the log-mel (None: as recorded)
        self.loudness_dbfs = None if loudness_dbfs is None else float(loudness_dbfs)
        # drop leading/trailing audio this many dB under the active level first (None: keep)
        self.trim_db = None if trim_db is None else float(trim_db)
        # False: nobody decodes this encoder's output (the transcriber is another Whisper), so
        # with ``layers`` the blocks after the last listed one are not run at all
        self.final_layer = bool(final_layer) or not self.layers
        self.torch_encoder = None
        if self.layers:
            from .whisper_torch import WhisperEncoderTorch

            self.torch_encoder = WhisperEncoderTorch.from_ct2(resolved)
            bad = [i for i in self.layers if not 0 <= i <= self.torch_encoder.n_layers]
            if bad:
                raise ModelError(f"Whisper encoder layers {bad} do not exist; this model has "
                                 f"0..{self.torch_encoder.n_layers}")
        # int8 compute in the torch layers' linear maps (faster, answers change a little; see
        # ..quantization.int8_linear_layers): an opt-in for long jobs, never the default
        self.int8 = bool(int8)
        if self.int8:
            if self.torch_encoder is None:
                raise ModelError("int8 applies to the torch Whisper layers: give layers=[...]")
            from ..quantization import int8_linear_layers

            self.torch_encoder = int8_linear_layers(self.torch_encoder)
        self.dim = 2 * self.width * (len(self.layers) if self.layers else 1)

    def encode_chunks(self, wave: np.ndarray) -> list[tuple[Any, int]]:
        """Run the Whisper encoder on each <= 30 s piece of ``wave``.

        Returns ``(encoder_output, n_keep)`` pairs: the CTranslate2 ``StorageView`` (which the
        transcriber can decode from directly, so Whisper's encoder runs once per clip, not
        twice) and how many of its 50 frames/s cover real audio.
        """
        out: list[tuple[Any, int]] = []
        for mel, n_keep in whisper_pieces(self.whisper_model.feature_extractor, wave,
                                          self.pad_to_s, self.loudness_dbfs, self.trim_db):
            if self.torch_encoder is None:
                out.append((self.whisper_model.encode(mel), n_keep))
            else:
                out.append(self._encode_torch(mel, n_keep))
        return out

    def _encode_torch(self, mel: np.ndarray, n_keep: int) -> tuple[Any, int]:
        """The PyTorch encoder on one piece: (final layer as a StorageView the transcriber can
        decode, n_keep); the listed layers' kept frames ride along on ``self._last_layers``."""
        import ctranslate2

        assert self.torch_encoder is not None and self.layers is not None
        upto = None if self.final_layer else max(self.layers)
        with torch.inference_mode():
            states = self.torch_encoder(torch.from_numpy(np.ascontiguousarray(mel))[None], upto)
        final = ctranslate2.StorageView.from_array(np.ascontiguousarray(states[-1].numpy())) \
            if self.final_layer else None
        return LayeredOutput(final, [states[i][0, :n_keep].numpy() for i in self.layers]), n_keep

    def frames(self, wave: np.ndarray) -> np.ndarray:
        """Final-layer encoder states [T, width] at 50 frames/s over the real audio only."""
        if not self.final_layer:
            raise ModelError("this encoder stops after layer "
                             f"{max(self.layers or [0])}: build it with final_layer=True")
        chunks = self.encode_chunks(wave)
        if self.layers:
            chunks = [(enc.final, n) for enc, n in chunks]
        return kept_frames(chunks)

    def encode_audio(self, wave: np.ndarray | None) -> ModalityOutput:
        """As the base class, plus ``extras["whisper_encoder_output"]``: the ``(encoder_output,
        n_frames)`` chunks, for a transcriber sharing this model to decode without encoding
        again (see ``FasterWhisperTranscriber.transcribe_encoded``)."""
        missing = check_audio(wave, self.dim)
        if missing is not None:
            return missing
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        return self._output(wave, self.encode_chunks(wave))

    def _output(self, wave: np.ndarray, chunks: list[tuple[Any, int]]) -> ModalityOutput:
        """The audio output of ``wave`` from its encoded ``chunks`` (one clip or a batch row)."""
        embedding, sequence = self._pool(chunks)
        extras: dict[str, Any] = {"level_dbfs": round(active_level_dbfs(wave), 1)}
        if self.final_layer:  # the transcriber wants plain StorageViews
            extras["whisper_encoder_output"] = [(enc.final, n) for enc, n in chunks] \
                if self.layers else chunks
        return ModalityOutput("audio", embedding, True, sequence, extras=extras)

    def encode_audio_batch(self, waves: list[np.ndarray | None], batch_size: int = 8
                           ) -> list[ModalityOutput]:
        """:meth:`encode_audio` of many waveforms, the layered torch encoder run on batches of
        up to ``batch_size`` (a call's turns: one 4-layer pass over 8 turns costs less than 8
        passes). Each output equals ``encode_audio`` of that wave alone to float rounding
        (rows sorted by length so a batch pads little, and each row's attention kept to its
        own length: see :meth:`WhisperEncoderTorch.forward`). Waves longer than one 30 s
        piece, and encoders without ``layers``, take the one-by-one path."""
        out: list[ModalityOutput | None] = [None] * len(waves)
        todo: list[tuple[int, np.ndarray, np.ndarray, int]] = []  # (index, wave, mel, n_keep)
        for i, wave in enumerate(waves):
            missing = check_audio(wave, self.dim)
            if missing is not None:
                out[i] = missing
                continue
            assert wave is not None
            wave = np.ascontiguousarray(wave, dtype=np.float32)
            pieces = list(whisper_pieces(self.whisper_model.feature_extractor, wave,
                                         self.pad_to_s, self.loudness_dbfs, self.trim_db)) \
                if self.torch_encoder is not None else []
            if len(pieces) != 1:
                out[i] = self.encode_audio(wave)
                continue
            todo.append((i, wave, *pieces[0]))
        todo.sort(key=lambda r: r[2].shape[1])
        for b in range(0, len(todo), max(1, int(batch_size))):
            rows = todo[b:b + max(1, int(batch_size))]
            for (i, wave, _, _), chunk in zip(rows, self._encode_torch_batch(
                    [(mel, n_keep) for _, _, mel, n_keep in rows])):
                out[i] = self._output(wave, [chunk])
        return [o for o in out if o is not None]

    def _encode_torch_batch(self, pieces: list[tuple[np.ndarray, int]]
                            ) -> list[tuple[LayeredOutput, int]]:
        """:meth:`_encode_torch` of several one-piece mels in one batch (zeros past each
        row's length, attention masked there)."""
        import ctranslate2

        assert self.torch_encoder is not None and self.layers is not None
        lengths = [mel.shape[1] for mel, _ in pieces]
        batch = np.zeros((len(pieces), pieces[0][0].shape[0], max(lengths)), np.float32)
        for r, (mel, _) in enumerate(pieces):
            batch[r, :, :mel.shape[1]] = mel
        upto = None if self.final_layer else max(self.layers)
        with torch.inference_mode():
            states = self.torch_encoder(torch.from_numpy(batch), upto, lengths)
        out = []
        for r, (n_mel, (_, n_keep)) in enumerate(zip(lengths, pieces)):
            final = ctranslate2.StorageView.from_array(np.ascontiguousarray(
                states[-1][r:r + 1, :n_mel // 2].numpy())) if self.final_layer else None
            out.append((LayeredOutput(final, [states[j][r, :n_keep].numpy().copy()
                                              for j in self.layers]), n_keep))
        return out

    def _pool(self, chunks: list[tuple[Any, int]]) -> tuple[np.ndarray, np.ndarray]:
        """(embedding, sequence) from :meth:`encode_chunks` output."""
        if not self.layers:
            f = kept_frames(chunks)
            return stats_pool(f), time_pool(f, 5)
        return pool_layers(chunks, len(self.layers))

    def _embed(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self._pool(self.encode_chunks(wave))

    def config(self) -> dict[str, Any]:
        cfg = {"name": self.name, "model": self.model_label,
               "compute_type": self.compute_type, "pad_to_s": self.pad_to_s, "pool": "mean+std",
               "dim": self.dim, "silence": SILENCE_RULE, "version": 1}
        if self.layers:
            cfg.update(layers=self.layers, compute_type="float32 (torch)", version=2)
        if self.loudness_dbfs is not None:  # absent when off, so older cache keys still hold
            cfg["loudness_dbfs"] = self.loudness_dbfs
        if self.trim_db is not None:  # likewise
            cfg["trim_db"] = self.trim_db
        if self.int8:  # likewise
            cfg["compute_type"] = "int8 linear layers (torch, dynamic)"
        return cfg


def _encoder_width(model: Any) -> int:
    """d_model of a CTranslate2 Whisper, read from a 1-frame-pair encode (no config file API)."""
    mel = np.zeros((model.feature_extractor.mel_filters.shape[0], 2), np.float32)
    return int(np.asarray(model.encode(mel)).shape[-1])


# ---------------------------------------------------------------------------------- MFCC + LSTM


def mfcc_features(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, n_mfcc: int = 40,
                  n_mels: int = 64, win_s: float = 0.025, hop_s: float = 0.010,
                  preemphasis: float = 0.97, normalize: bool = True) -> np.ndarray:
    """Classic MFCC front-end, step by step: returns [T, 3 * n_mfcc] (MFCC, delta, delta-delta).

    pre-emphasis (flattens the speech spectral tilt) -> 25 ms Hamming frames every 10 ms ->
    |FFT|^2 -> mel filterbank -> log -> orthonormal DCT-II -> deltas over +-2 frames ->
    per-utterance mean/variance normalisation (removes channel and speaker offsets).
    """
    import librosa

    x = np.asarray(wave, dtype=np.float32)
    x = np.append(x[:1], x[1:] - preemphasis * x[:-1])
    win, hop = int(round(win_s * sample_rate)), int(round(hop_s * sample_rate))
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    n_frames = 1 + (len(x) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    frames = x[idx] * np.hamming(win).astype(np.float32)
    n_fft = 1 << (win - 1).bit_length()  # 512 for 400 samples
    power = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2 / n_fft
    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=20.0,
                             fmax=sample_rate / 2)
    logmel = np.log(power @ fb.T + 1e-10)
    mfcc = _dct_matrix(n_mels, n_mfcc) @ logmel.T  # [n_mfcc, T]
    feats = np.concatenate([mfcc, _delta(mfcc), _delta(_delta(mfcc))]).T
    if normalize:
        feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-5)
    return feats.astype(np.float32)


def _dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II basis [n_out, n_in]."""
    n = np.arange(n_in)
    k = np.arange(n_out)[:, None]
    m = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


def _delta(x: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas over +-``width`` frames along the last axis (edge-padded)."""
    pad = np.pad(x, ((0, 0), (width, width)), mode="edge")
    t = x.shape[1]
    num = sum(k * (pad[:, width + k:width + k + t] - pad[:, width - k:width - k + t])
              for k in range(1, width + 1))
    return num / (2 * sum(k * k for k in range(1, width + 1)))


class MfccBiLSTM(nn.Module):
    """BiLSTM over MFCC frames with additive attention pooling; ``embed`` is the pooled state."""

    def __init__(self, in_dim: int = 120, hidden: int = 128, layers: int = 2, n_classes: int = 8,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout))
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True,
                            bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.att = nn.Sequential(nn.Linear(2 * hidden, 64), nn.Tanh(), nn.Linear(64, 1))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, n_classes)
        self.dim = 2 * hidden

    def embed(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, F] (+ true lengths) -> [B, 2*hidden] attention-pooled BiLSTM states."""
        h, _ = self.lstm(self.proj(x))
        score = self.att(h).squeeze(-1)
        if lengths is not None:
            mask = torch.arange(h.shape[1])[None, :] >= lengths[:, None]
            score = score.masked_fill(mask, float("-inf"))
        w = torch.softmax(score, dim=1).unsqueeze(-1)
        return (w * h).sum(1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.drop(self.embed(x, lengths)))


@register("audio", "mfcc-lstm")
class MfccLstmAudioEncoder(_AudioEncoder):
    """MFCC(40)+deltas -> BiLSTM -> attention pooling; 256-d embedding from the shipped weights."""

    name = "mfcc-lstm"

    def __init__(self, weights: str | None = None) -> None:
        from safetensors.torch import load_file

        folder = Path(weights) if weights else WEIGHTS_DIR / "mfcc_lstm"
        if not (folder / "config.json").exists() or not (folder / "model.safetensors").exists():
            raise ModelError(f"MFCC-LSTM weights not found in {folder}; train them with "
                             "multimodal_emotion.training.mfcc_lstm.train_mfcc_lstm")
        self.folder = folder
        self.cfg = json.loads((folder / "config.json").read_text())
        self.model = MfccBiLSTM(**self.cfg["model"])
        self.model.load_state_dict(load_file(str(folder / "model.safetensors")))
        self.model.eval()
        self.dim = self.model.dim

    def _embed(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        feats = torch.from_numpy(mfcc_features(wave, **self.cfg["frontend"]))[None]
        h, _ = self.model.lstm(self.model.proj(feats))
        w = torch.softmax(self.model.att(h).squeeze(-1), dim=1).unsqueeze(-1)
        emb = (w * h).sum(1)[0].numpy()
        return emb.astype(np.float32), time_pool(h[0].numpy(), 10)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "weights": self.folder.name, "frontend": self.cfg["frontend"],
                "model": self.cfg["model"], "trained": self.cfg.get("trained"),
                "silence": SILENCE_RULE, "version": 1}


# ------------------------------------------------------------------------------------- wav2vec2


@register("audio", "wav2vec2")
class Wav2Vec2AudioEncoder(_AudioEncoder):
    """Frozen wav2vec2 / HuBERT / WavLM, mean+std pooled over hidden layer ``layer``.

    ``model`` is a local folder or a hub name already in the local cache: loading never downloads
    (``local_files_only``), because the package runs offline.
    """

    name = "wav2vec2"

    def __init__(self, model: str = "facebook/wav2vec2-base", layer: int = -1,
                 threads: int | None = None) -> None:
        from transformers import AutoFeatureExtractor, AutoModel

        if threads:
            torch.set_num_threads(threads)
        try:
            self.model = AutoModel.from_pretrained(model, local_files_only=True).eval()
        except OSError as e:
            raise ModelError(f"cannot load wav2vec2-style model {model!r} offline: {e}") from e
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(model, local_files_only=True)
        except (OSError, ValueError):
            self.extractor = None  # fall back to zero-mean unit-variance normalisation
        self.model_name, self.layer = model, layer
        self.dim = 2 * int(self.model.config.hidden_size)

    def _embed(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.extractor is not None:
            x = self.extractor(wave, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_values
        else:
            x = torch.from_numpy((wave - wave.mean()) / (wave.std() + 1e-7))[None]
        out = self.model(x, output_hidden_states=True)
        h = out.hidden_states[self.layer][0].float().numpy()
        return stats_pool(h), time_pool(h, 5)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_name, "layer": self.layer, "dim": self.dim,
                "silence": SILENCE_RULE, "version": 1}
