"""One line naming the CPU a bench ran on, printed beside its table.

The project's figures are taken on "2 cores", but the machine behind those two cores changes from
day to day: the same 60-minute call took 194.6 s on one day and 97.6 s on a later one with the same
code. A time is only comparable with another taken on the same CPU model and instruction set
(AVX-512 and VNNI change which kernels torch, oneDNN and CTranslate2 pick, and so the last bits of
the answers too), so every timing bench prints this line.

    from machine import describe  # bench scripts run with bench/ on sys.path
    print(describe())
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The instruction-set extensions that decide which matrix kernels the encoders run.
_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8")


def describe(cpuinfo: str | None = None) -> str:
    """``"CPU: <model> (family F model M), N CPUs, avx2 fma avx512f ..."``.

    ``cpuinfo`` is the text of ``/proc/cpuinfo`` (read when not given; other systems get
    :func:`platform.processor`).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    first: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if first:
                break  # the first processor's block says it for all of them
            continue
        key, _, value = line.partition(":")
        first.setdefault(key.strip(), value.strip())
    name = first.get("model name") or platform.processor() or platform.machine() or "unknown"
    where = ""
    if "cpu family" in first and "model" in first:
        where = f" (family {first['cpu family']} model {first['model']})"
    flags = set(first.get("flags", "").split())
    simd = " ".join(f for f in _FLAGS if f in flags) or "no AVX2"
    return f"CPU: {name}{where}, {os.cpu_count()} CPUs, {simd}"


if __name__ == "__main__":
    print(describe())
