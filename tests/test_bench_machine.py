"""``bench/machine.py``: the CPU line every timing bench prints beside its table."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "bench_machine", Path(__file__).resolve().parents[1] / "bench" / "machine.py")
machine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(machine)

# Two processors of a KVM guest, cut down to the lines the parser reads.
CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16 hypervisor

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: Other name that must not be read
flags\t\t: fpu
"""


def test_names_the_first_processor_and_its_matrix_extensions():
    line = machine.describe(CPUINFO)
    assert line.startswith("CPU: AMD EPYC (family 25 model 17), ")
    assert line.endswith(" CPUs, avx2 fma avx512f avx512_vnni avx512_bf16")
    assert "Other name" not in line


def test_a_cpu_without_avx2_and_a_system_without_cpuinfo_still_give_a_line():
    old = "processor\t: 0\nmodel name\t: Old Xeon\nflags\t\t: fpu sse2\n"
    assert machine.describe(old).endswith(", no AVX2")
    assert machine.describe("").startswith("CPU: ")
