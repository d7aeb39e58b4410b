"""The environment block written with every report.

Benchmark numbers mean nothing without the machine they came from: the CPU model and its vector
extensions decide which engine wins (AVX-512 BF16/VNNI make OpenVINO BF16 and INT8 fast, see
benchmarks/reports/cpu/report.md), and thread settings decide whether two runs are comparable at all. The CPU comes from the
runtime's one /proc/cpuinfo parser (``esrgan.runtime.cpu_features``); what is here are pure functions
of its ``CpuFeatures``, so tests feed them a parsed sample.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

from esrgan.runtime.cpu_features import CpuFeatures, probe_cpu_features

LIBRARIES = ("esrgan", "numpy", "torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "ncnn", "onnx")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ESRGAN_THREADS")


def fp32_flops_per_cycle(cpu: CpuFeatures) -> float | None:
    """FP32 FLOP per cycle per core for the vector units we can identify, else None.

    From the vendors' optimisation manuals: Intel cores with AVX-512 have two 512-bit FMA ports
    (2 x 16 lanes x 2 = 64); AMD Zen 4 (family 0x19 with AVX-512) runs AVX-512 on 256-bit
    datapaths with two FMA pipes (32), as does any AVX2+FMA core of the last decade (32).
    The figure is an estimate (turbo frequency and port counts vary by SKU); reports say so.
    """
    if "avx512f" in cpu.flags:
        if cpu.vendor == "AuthenticAMD":
            return 64.0 if (cpu.family or 0) >= 0x1A else 32.0
        return 64.0
    if {"avx2", "fma"} <= cpu.flags:
        return 32.0
    return None


def peak_gflops(cpu: CpuFeatures, threads: int) -> float | None:
    """Nominal FP32 peak of ``threads`` cores at the reported clock (None when unknown)."""
    per_cycle = fp32_flops_per_cycle(cpu)
    if per_cycle is None or not cpu.mhz:
        return None
    cores = min(threads, cpu.physical_cores or cpu.cores)
    return cores * per_cycle * cpu.mhz / 1e3


def cpu_block(cpu: CpuFeatures) -> dict[str, Any]:
    """The report's ``environment.cpu`` (keys documented in docs/benchmarks.md's report table)."""
    return {
        "model": cpu.model, "vendor": cpu.vendor, "logical_cores": cpu.cores, "physical_cores": cpu.physical_cores,
        "mhz": cpu.mhz, "flags": cpu.relevant_flags(), "family": cpu.family,
        "model_number": cpu.model_number,
    }


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
    cpu = probe_cpu_features()
    peak = peak_gflops(cpu, threads)
    return {
        "cpu": cpu_block(cpu),
        "cpu_peak_gflops_fp32": peak,
        "cpu_peak_note": (
            f"nominal: {threads} core(s) x {fp32_flops_per_cycle(cpu):.0f} FP32 FLOP/cycle x {cpu.mhz:.0f} MHz "
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
