"""CTranslate2's ``model.bin``: read it, write it, and quantise a Whisper model's weights to int8
exactly as CTranslate2 does when it loads a float16 model with ``compute_type="int8"``.

Why: the packaged Whisper models (tiny.en, base) are float16, and CTranslate2 converts them to
int8 at every load: 0.5 s of CPU for tiny.en and 1.2-1.5 s for base on this machine, a third
of a cold start. :func:`~.whisper_models.loadable_whisper_folder` converts once with
:func:`quantise_int8` and loads the int8 copy afterwards, which CTranslate2 takes as it is.

File layout (``ctranslate2/specs/model_spec.py``, ``ModelSpec._serialize``, binary version 6),
little-endian::

    u32 version | str spec_name | u32 revision | u32 n_variables
    n_variables x (str name | u8 ndim | ndim x u32 dim | u8 dtype_id | u32 n_bytes | bytes)
    u32 n_aliases | n_aliases x (str alias | str target)

where ``str`` is ``u16 length-including-NUL | utf-8 bytes | NUL`` and ``dtype_id`` indexes
``(float32, int8, int16, int32, float16, bfloat16)``. A quantised weight ``w`` comes with a
``w_scale`` variable (int8: one float per output row, ``q = rint(w * scale)``; int16: one scalar),
so ``w = q / scale``.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import ModelError

CT2_DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
NUMPY_DTYPES: dict[str, Any] = {"float32": np.float32, "int8": np.int8, "int16": np.int16,
                                "int32": np.int32, "float16": np.float16, "bfloat16": np.uint16}
_FLOATS = ("float32", "float16", "bfloat16")


@dataclass
class Ct2Variable:
    name: str
    dtype: str  # one of CT2_DTYPES
    array: np.ndarray  # bfloat16 as its raw uint16 bits; a read-only view into the file


@dataclass
class Ct2File:
    version: int
    spec: str  # e.g. WhisperSpec
    revision: int
    variables: list[Ct2Variable] = field(default_factory=list)
    aliases: list[tuple[str, str]] = field(default_factory=list)  # (alias, target)


def read_ct2_file(path: str | os.PathLike[str], prefix: str = "") -> Ct2File:
    """The variables (those whose names start with ``prefix``) and aliases of a ``model.bin``
    (or of the folder holding one). The file is memory-mapped and the arrays are read-only
    views into it, so variables outside ``prefix`` are never read from disk."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    try:
        with open(path, "rb") as f:
            buf = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    except (OSError, ValueError) as e:  # ValueError: an empty file cannot be mapped
        raise ModelError(f"cannot read CTranslate2 model {path}: {e}") from e
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        (value,) = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return value

    def take_str() -> str:
        nonlocal pos
        n = take("H")  # includes the trailing NUL
        text = bytes(buf[pos:pos + n - 1]).decode("utf-8")
        pos += n
        return text

    try:
        version = take("I")
        if version < 5 or version > 6:
            raise ModelError(f"{path}: unsupported CTranslate2 binary version {version}")
        out = Ct2File(version, take_str(), take("I"))
        for _ in range(take("I")):
            name = take_str()
            shape = tuple(take("I") for _ in range(take("B")))
            dtype = CT2_DTYPES[take("B")]
            n_bytes = take("I")
            if name.startswith(prefix):
                arr = np.frombuffer(buf[pos:pos + n_bytes], dtype=NUMPY_DTYPES[dtype])
                out.variables.append(Ct2Variable(name, dtype, arr.reshape(shape)))
            pos += n_bytes
        out.aliases = [(take_str(), take_str()) for _ in range(take("I"))]
    except (struct.error, IndexError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{path} is not a CTranslate2 model.bin ({e})") from e
    return out


def write_ct2_file(model: Ct2File, path: str | os.PathLike[str]) -> None:
    """Serialise ``model`` as CTranslate2's ``ModelSpec._serialize`` does."""

    def put_str(f: BinaryIO, text: str) -> None:
        data = text.encode("utf-8")
        f.write(struct.pack("<H", len(data) + 1) + data + b"\0")

    with open(path, "wb") as f:
        f.write(struct.pack("<I", model.version))
        put_str(f, model.spec)
        f.write(struct.pack("<II", model.revision, len(model.variables)))
        for v in model.variables:
            put_str(f, v.name)
            f.write(struct.pack("<B", v.array.ndim))
            f.write(struct.pack(f"<{v.array.ndim}I", *v.array.shape))
            data = np.ascontiguousarray(v.array, dtype=NUMPY_DTYPES[v.dtype]).tobytes()
            f.write(struct.pack("<BI", CT2_DTYPES.index(v.dtype), len(data)))
            f.write(data)
        f.write(struct.pack("<I", len(model.aliases)))
        for alias, target in model.aliases:
            put_str(f, alias)
            put_str(f, target)


def to_float32(arr: np.ndarray, dtype: str) -> np.ndarray:
    """float16 / bfloat16 (raw bits) / float32 -> a new float32 array."""
    if dtype == "bfloat16":  # the high half of a float32
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(np.float32)


def _quantisable(name: str) -> bool:
    """CTranslate2's rule for Whisper (``WhisperModel::is_quantizable``): weights, not convs."""
    return name.endswith("weight") and "conv" not in name


def quantise_int8(model: Ct2File) -> Ct2File:
    """``model`` as CTranslate2 holds it after loading with ``compute_type="int8"``: every
    quantisable float weight becomes int8 with a float32 ``<name>_scale`` per output row
    (``scale = 127 / max|row|``, 1 for a zero row; ``q = rint(w * scale)`` in float32, as
    ``quantize_s8`` does with binary version >= 5), every other non-scalar float variable
    float32. Loading the result with ``compute_type="int8"`` converts nothing, and the model
    computes exactly what the float16 file did (``tests/test_whisper_int8.py``)."""
    if model.spec != "WhisperSpec":
        raise ModelError(f"int8 conversion is written for Whisper, not {model.spec}")
    have = {v.name for v in model.variables}
    out = Ct2File(model.version, model.spec, model.revision, aliases=list(model.aliases))
    for v in model.variables:
        if v.dtype not in _FLOATS or v.array.ndim == 0:
            out.variables.append(v)
        elif _quantisable(v.name):
            if v.name + "_scale" in have:
                raise ModelError(f"{v.name} already has a scale: not a float model")
            w = to_float32(v.array, v.dtype).reshape(v.array.shape[0], -1)
            amax = np.abs(w).max(axis=1)
            scale = np.where(amax != 0, np.float32(127.0) / np.where(amax != 0, amax, 1),
                             1).astype(np.float32)
            q = np.rint(w * scale[:, None]).astype(np.int8).reshape(v.array.shape)
            out.variables += [Ct2Variable(v.name, "int8", q),
                              Ct2Variable(v.name + "_scale", "float32", scale)]
        elif "_scale" not in v.name:
            out.variables.append(Ct2Variable(v.name, "float32", to_float32(v.array, v.dtype)))
        else:
            out.variables.append(v)
    return out
