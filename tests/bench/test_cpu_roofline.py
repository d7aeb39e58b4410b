"""benchmarks/cpu_roofline.py: the instruction-peak program builds and runs for the CPU's own flags and
for an AVX2-only CPU (no 512-bit instruction), and conv multiply-adds are counted from the network."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import cpu_roofline
from esrgan.runtime.cpu_features import probe_cpu_features

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


@needs_gcc
def test_each_program_times_its_own_instruction_and_the_avx2_ones_no_512_bit_register(tmp_path):
    """One kind per program (a kernel carrying another kind's registers made gcc move them every
    iteration), and nothing 512-bit where an AVX2-only CPU would run it."""
    import subprocess

    mnemonics = {"fp32": "vfmadd", "fp16": "vfmadd", "bf16": "vdpbf16ps", "int8": "vpdpbusd"}
    for table in (cpu_roofline.KINDS, cpu_roofline.AVX2_KINDS):
        for key, kind in table.items():
            src = tmp_path / f"{key}.c"
            src.write_text(cpu_roofline.kernel_source(kind))
            done = subprocess.run(["gcc", "-O2", *kind.gcc_flags, "-pthread", "-S", str(src), "-o", "-"],
                                  capture_output=True, text=True)
            if done.returncode:  # an older gcc without this instruction set: the benchmark records it skipped
                continue
            assert mnemonics[key] in done.stdout, (key, kind.name)
            if table is cpu_roofline.AVX2_KINDS:
                assert "zmm" not in done.stdout, kind.name


def test_the_target_paragraph_is_computed_from_the_figures():
    import json
    from pathlib import Path

    report = json.loads((Path(cpu_roofline.OUT_DIR) / "roofline.json").read_text())
    text = cpu_roofline.markdown(report)
    torch_gmac = next(e["gmac_s"] for e in report["engines"] if e["engine"] == "PyTorch eager FP32")
    needed = 2.0 * torch_gmac / report["peaks"]["fp32"]["gmac_s"]
    assert f"needs an engine at {needed:.0%} of the FP32 FMA peak" in text
    report["engines"][0]["gmac_s"] *= 0.5  # a slower PyTorch: a lower share needed, and the text says so
    assert f"needs an engine at {needed / 2:.0%} of the FP32 FMA peak" in cpu_roofline.markdown(report)


@needs_gcc
def test_peaks_for_this_cpu_and_for_an_avx2_only_one():
    flags = probe_cpu_features().flags
    if "fma" not in flags:
        pytest.skip("this CPU has no FMA")
    own = cpu_roofline.instruction_peaks(flags, threads=1, iters=2_000_000, reps=1)
    assert set(own) == set(cpu_roofline.kinds_for(flags)) and "fp32" in own
    assert all(p.get("gmac_s", 1) > 0 for p in own.values())
    ymm = cpu_roofline.instruction_peaks(frozenset({"avx2", "fma"}), threads=1, iters=2_000_000, reps=1)
    assert set(ymm) == {"fp32"} and "ymm" in ymm["fp32"]["instruction"] and ymm["fp32"]["gmac_s"] > 0


def test_without_gcc_the_peaks_say_why(monkeypatch):
    monkeypatch.setattr(cpu_roofline.shutil, "which", lambda name: None)
    assert "gcc" in cpu_roofline.instruction_peaks(frozenset({"avx2", "fma"}), threads=1)["skipped"]


def test_conv_macs_count_every_convolution_once():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    assert cpu_roofline.conv_macs(net, (10, 12)) == 10 * 12 * (8 * 3 * 9 + 4 * 8)
