"""Cold start: what the recognizer loads early, and that importing it stays light (torch comes
with the model, so the Whisper models can load while torch is imported). Timings are in
bench/latency.py, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from multimodal_emotion.errors import ModelError
from multimodal_emotion.recognizer import (EmotionRecognizer, _default_audio_whisper,
                                           _EarlyLoads, _language_id_compute_type)


def test_importing_the_recognizer_does_not_import_torch() -> None:
    code = ("import sys\nfrom multimodal_emotion import EmotionRecognizer\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert 'transformers' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_only_the_default_audio_whisper_is_loaded_early() -> None:
    assert _default_audio_whisper({"name": "whisper", "layers": [1, 2, 3, 4]})
    assert not _default_audio_whisper({"name": "whisper", "model_path": "base"})
    assert not _default_audio_whisper({"name": "whisper", "compute_type": "float32"})
    assert not _default_audio_whisper({"name": "mfcc-lstm"})


def test_language_id_rule() -> None:
    assert _language_id_compute_type({}, True) == "int8"
    assert _language_id_compute_type({"language": {"compute_type": "float32"}}, True) == "float32"
    assert _language_id_compute_type({}, False) is None
    assert _language_id_compute_type({"language": {"enabled": False}}, True) is None
    assert _language_id_compute_type({"transcriber": {"name": "openai-whisper"}}, True) is None


def test_unreadable_config_starts_nothing(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    early = _EarlyLoads.start(tmp_path, True)
    assert early.whisper is None and early.base is None
    early.pool.shutdown()


def test_a_bad_model_folder_still_says_what_is_wrong(tmp_path: Path) -> None:
    """config.json alone: the early loads start, the model's own check fails as before."""
    (tmp_path / "config.json").write_text(json.dumps(
        {"encoders": {"audio": {"name": "mfcc-lstm"}, "language": {"enabled": False}}}))
    with pytest.raises(ModelError, match="not a model folder|format None"):
        EmotionRecognizer.from_pretrained(tmp_path)


def test_early_loads_match_what_the_encoders_would_load() -> None:
    """The early tiny.en must be the one WhisperAudioEncoder builds by default, and the
    default model folder the model module's (both are repeated so no torch is imported)."""
    import inspect

    from multimodal_emotion import recognizer
    from multimodal_emotion.encoders.audio import WhisperAudioEncoder
    from multimodal_emotion.encoders.whisper_models import DEFAULT_WHISPER
    from multimodal_emotion.model import DEFAULT_MODEL_DIR

    defaults = inspect.signature(WhisperAudioEncoder).parameters
    early = recognizer._DEFAULT_AUDIO_WHISPER
    assert early["model"] == DEFAULT_WHISPER and defaults["model_path"].default is None
    assert early["compute_type"] == defaults["compute_type"].default
    assert early["cpu_threads"] == defaults["cpu_threads"].default
    assert recognizer.DEFAULT_MODEL_DIR == DEFAULT_MODEL_DIR
