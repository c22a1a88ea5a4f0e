"""What machine a number was measured on: the CPU, its cores, and the instruction sets that change
how OpenVINO computes (AVX512-BF16 and AMX make bfloat16 its default; VNNI speeds INT8). Eval
reports and benchmarks record it, so that a number that moves between machines can be traced."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# /proc/cpuinfo flags worth recording, and what they are called here
ISA_FLAGS = {"avx2": "avx2", "avx512f": "avx512", "avx512_bf16": "avx512_bf16", "amx_bf16": "amx_bf16",
             "avx512_vnni": "vnni", "avx_vnni": "vnni"}


def _cpuinfo() -> tuple[str, set[str]]:
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not name:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


def describe() -> dict:
    """{cpu, cores, isa: [...], openvino: version or None, python}."""
    name, flags = _cpuinfo()
    isa = sorted({v for k, v in ISA_FLAGS.items() if k in flags})
    try:
        import openvino

        ov = openvino.__version__.split("-")[0]
    except ImportError:
        ov = None
    return {"cpu": name, "cores": os.cpu_count(), "isa": isa, "openvino": ov, "python": platform.python_version()}


def summary(m: dict | None = None) -> str:
    """One line: 'Intel(R) Xeon(R) Processor x2 cores (avx2, avx512), OpenVINO 2026.4.1, Python 3.11.2'."""
    m = m or describe()
    return (f"{m['cpu']} x{m['cores']} cores" + (f" ({', '.join(m['isa'])})" if m.get("isa") else "")
            + (f", OpenVINO {m['openvino']}" if m.get("openvino") else "") + f", Python {m['python']}")
