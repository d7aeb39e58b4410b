"""benchmarks/cpu_roofline.py: the instruction-peak program builds and runs for the CPU's own flags and
for an AVX2-only CPU (no 512-bit instruction), and conv multiply-adds are counted from the network."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import cpu_roofline
from esrgan.runtime.cpu_features import probe_cpu_features

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


@needs_gcc
def test_peaks_for_this_cpu_and_for_an_avx2_only_one():
    flags = probe_cpu_features().flags
    if "fma" not in flags:
        pytest.skip("this CPU has no FMA")
    own = cpu_roofline.instruction_peaks(flags, threads=1, iters=2_000_000, reps=1)
    expected = {k for k, (_, _, flag, _) in cpu_roofline.KINDS.items() if flag in flags} or {"fp32"}
    assert set(own) == expected and all(p["gmac_s"] > 0 for p in own.values())
    ymm = cpu_roofline.instruction_peaks(frozenset({"avx2", "fma"}), threads=1, iters=2_000_000, reps=1)
    assert set(ymm) == {"fp32"} and "ymm" in ymm["fp32"]["instruction"] and ymm["fp32"]["gmac_s"] > 0


def test_without_gcc_the_peaks_say_why(monkeypatch):
    monkeypatch.setattr(cpu_roofline.shutil, "which", lambda name: None)
    assert "gcc" in cpu_roofline.instruction_peaks(frozenset({"avx2", "fma"}), threads=1)["skipped"]


def test_conv_macs_count_every_convolution_once():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    assert cpu_roofline.conv_macs(net, (10, 12)) == 10 * 12 * (8 * 3 * 9 + 4 * 8)
