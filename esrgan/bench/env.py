"""The environment block written with every report.

Benchmark numbers mean nothing without the machine they came from: the CPU model and its vector
extensions decide which engine wins (AVX-512 BF16/VNNI make OpenVINO BF16 and INT8 fast, see
issue 9), and thread settings decide whether two runs are comparable at all. The parsers are pure
functions over text so that tests can feed them a sample ``/proc/cpuinfo``.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# The CPU flags that change which inference path is fastest (names as Linux prints them).
RELEVANT_FLAGS = (
    "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
)
LIBRARIES = ("esrgan", "numpy", "torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "ncnn", "onnx")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ESRGAN_THREADS")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    vendor: str
    logical_cores: int
    physical_cores: int | None
    mhz: float | None
    flags: tuple[str, ...]  # only the RELEVANT_FLAGS that are present
    family: int | None = None

    def has(self, flag: str) -> bool:
        return flag in self.flags

    @property
    def amx(self) -> bool:
        return self.has("amx_tile")

    def fp32_flops_per_cycle(self) -> float | None:
        """FP32 FLOP per cycle per core for the vector units we can identify, else None.

        From the vendors' optimisation manuals: Intel cores with AVX-512 have two 512-bit FMA ports
        (2 x 16 lanes x 2 = 64); AMD Zen 4 (family 0x19 with AVX-512) runs AVX-512 on 256-bit
        datapaths with two FMA pipes (32), as does any AVX2+FMA core of the last decade (32).
        The figure is an estimate (turbo frequency and port counts vary by SKU); reports say so.
        """
        if self.has("avx512f"):
            if self.vendor == "AuthenticAMD":
                return 64.0 if (self.family or 0) >= 0x1A else 32.0
            return 64.0
        if self.has("avx2") and self.has("fma"):
            return 32.0
        return None


def parse_cpuinfo(text: str) -> CpuInfo:
    """Read ``/proc/cpuinfo``-format text (x86 layout; other layouts give what they have)."""
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    fields: list[dict[str, str]] = []
    for block in blocks:
        entry: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        fields.append(entry)
    processors = [f for f in fields if "processor" in f] or fields
    first = processors[0] if processors else {}
    flags = set(first.get("flags", first.get("Features", "")).split())
    phys: set[tuple[str, str]] = {
        (f.get("physical id", "0"), f.get("core id", "")) for f in processors if "core id" in f
    }
    mhz = first.get("cpu MHz")
    family = first.get("cpu family")
    return CpuInfo(
        model=first.get("model name", first.get("Model", first.get("Hardware", "unknown"))),
        vendor=first.get("vendor_id", "unknown"),
        logical_cores=len(processors),
        physical_cores=len(phys) or None,
        mhz=float(mhz) if mhz else None,
        flags=tuple(f for f in RELEVANT_FLAGS if f in flags),
        family=int(family) if family and family.isdigit() else None,
    )


def read_cpu() -> CpuInfo:
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux: what the platform module knows
        return CpuInfo(platform.processor() or platform.machine(), "unknown", os.cpu_count() or 1, None, None, ())


def peak_gflops(cpu: CpuInfo, threads: int) -> float | None:
    """Nominal FP32 peak of ``threads`` cores at the reported clock (None when unknown)."""
    per_cycle = cpu.fp32_flops_per_cycle()
    if per_cycle is None or not cpu.mhz:
        return None
    cores = min(threads, cpu.physical_cores or cpu.logical_cores)
    return cores * per_cycle * cpu.mhz / 1e3


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "esrgan" not in out:  # running from a checkout, not installed
        import esrgan

        out["esrgan"] = esrgan.__version__ + " (source tree)"
    return out


def gpu_info() -> dict[str, str] | None:
    """GPU name and driver through nvidia-smi (no CUDA library import), None without one."""
    try:
        proc = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    line = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) < 3:
        return None
    return {"name": parts[0], "driver": parts[1], "memory": parts[2]}


def collect_environment(threads: int, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything a reader needs to judge or reproduce the numbers."""
    cpu = read_cpu()
    peak = peak_gflops(cpu, threads)
    return {
        "cpu": {**asdict(cpu), "flags": list(cpu.flags)},
        "cpu_peak_gflops_fp32": peak,
        "cpu_peak_note": (
            f"nominal: {threads} core(s) x {cpu.fp32_flops_per_cycle():.0f} FP32 FLOP/cycle x {cpu.mhz:.0f} MHz "
            "(the clock /proc/cpuinfo reports, often the base clock: turbo can exceed this peak)"
            if peak else "unknown for this CPU"
        ),
        "gpu": gpu_info(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "threads": {"per_library": threads, **{v: os.environ.get(v, "") for v in THREAD_VARS}},
        "model": model or {},
    }
