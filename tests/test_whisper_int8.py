"""The int8 copy of a packaged Whisper model (encoders/ct2_file.py, whisper_models.
loadable_whisper_folder) must compute exactly what CTranslate2 computes when it quantises the
float16 file itself at load, and the cache that holds it must never serve a half-built or
stale copy nor add a way to fail."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from multimodal_emotion import demo
from multimodal_emotion.encoders.ct2_file import (Ct2File, Ct2Variable, quantise_int8,
                                                  read_ct2_file, write_ct2_file)
from multimodal_emotion.encoders.language import decode_chunks
from multimodal_emotion.encoders.whisper_models import (loadable_whisper_folder,
                                                        resolve_whisper_model)

SR = 16000


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 3 s of eSpeak NG speech at 16 kHz (real phonetics, no shared data needed)."""
    wave, sr = demo.synthesize_speech(demo.DEFAULT_TEXT)
    return demo._fit_duration(demo._resample(wave, sr, SR), SR, 3.0)


def _same_model(source: str, copy: str, wave: np.ndarray) -> None:
    """Encoder output bit for bit, and the decoded transcript with Whisper's doubt measures."""
    from faster_whisper import WhisperModel

    a = WhisperModel(source, compute_type="int8", cpu_threads=2)
    b = WhisperModel(copy, compute_type="int8", cpu_threads=2)
    mel = a.feature_extractor(wave)[:, :300]
    ea, eb = a.encode(mel), b.encode(mel)
    assert np.array_equal(np.asarray(ea), np.asarray(eb))
    da = decode_chunks(a.model, a.hf_tokenizer, [(ea, 150)], "transcribe", "en")
    db = decode_chunks(b.model, b.hf_tokenizer, [(eb, 150)], "transcribe", "en")
    assert da == db and db.text
    if a.model.is_multilingual:
        assert a.model.detect_language(ea) == b.model.detect_language(eb)


def test_model_bin_round_trips_byte_for_byte(tmp_path: Path) -> None:
    source = Path(resolve_whisper_model("tiny.en")) / "model.bin"
    write_ct2_file(read_ct2_file(source), tmp_path / "model.bin")
    assert (tmp_path / "model.bin").read_bytes() == source.read_bytes()


def test_int8_copy_of_tiny_en_computes_what_ctranslate2s_own_conversion_does(
        cache: Path, speech: np.ndarray) -> None:
    source = resolve_whisper_model("tiny.en")
    copy = loadable_whisper_folder(source)
    assert Path(copy).parent == cache and copy != source
    types = {v.name: v.dtype for v in read_ct2_file(copy).variables}
    assert types["decoder/embeddings/weight"] == "int8"
    assert types["decoder/embeddings/weight_scale"] == "float32"
    assert types["encoder/conv1/weight"] == "float32"  # convs are not quantised
    assert (Path(copy) / "tokenizer.json").is_file()
    _same_model(source, copy, speech)


@pytest.mark.slow
def test_int8_copy_of_whisper_base_gives_the_same_language_id(cache: Path,
                                                              speech: np.ndarray) -> None:
    source = resolve_whisper_model("base")
    _same_model(source, loadable_whisper_folder(source), speech)


def _toy_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0]], np.float16)
    write_ct2_file(Ct2File(6, "WhisperSpec", 3, [
        Ct2Variable("decoder/layer_0/ffn/linear_0/weight", "float16", w),
        Ct2Variable("decoder/layer_0/ffn/linear_0/bias", "float16", np.ones(2, np.float16)),
        Ct2Variable("encoder/num_heads", "int16", np.array(6, np.int16))]),
        folder / "model.bin")
    (folder / "config.json").write_text("{}")
    return folder


def test_quantisation_rule_and_zero_rows(tmp_path: Path) -> None:
    model = quantise_int8(read_ct2_file(_toy_folder(tmp_path / "m")))
    v = {x.name: x for x in model.variables}
    q, s = v["decoder/layer_0/ffn/linear_0/weight"], v["decoder/layer_0/ffn/linear_0/weight_scale"]
    assert q.dtype == "int8" and q.array.tolist() == [[64, -127, 32], [0, 0, 0]]
    assert s.array.tolist() == [127.0, 1.0]  # a zero row keeps scale 1, as CTranslate2's
    assert v["decoder/layer_0/ffn/linear_0/bias"].dtype == "float32"
    assert v["encoder/num_heads"].dtype == "int16"


def test_copy_is_made_once_and_other_compute_types_load_the_source(cache: Path,
                                                                   tmp_path: Path) -> None:
    src = _toy_folder(tmp_path / "m")
    copy = Path(loadable_whisper_folder(src))
    stamp = (copy / "model.bin").stat().st_mtime_ns
    assert loadable_whisper_folder(src) == str(copy)
    assert (copy / "model.bin").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert [p.name for p in cache.iterdir()] == [copy.name]  # no temporary folder left
    assert loadable_whisper_folder(src, "float32") == str(src)
    os.utime(src / "model.bin", ns=(stamp + 10**9, stamp + 10**9))  # a reinstalled model
    assert loadable_whisper_folder(src) != str(copy)


def test_a_model_that_cannot_be_converted_loads_from_its_source(cache: Path,
                                                                tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.bin").write_bytes(b"\x06\x00\x00\x00garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert loadable_whisper_folder(bad) == str(bad)
    assert any("int8" in str(w.message) for w in caught)
    assert not any(cache.glob("whisper-int8-*"))  # nothing half-built is left to trust
