"""CPU feature probing and the pure choice of the CPU backend (features injected, no real probe)."""

from __future__ import annotations

import pytest

from esrgan.errors import install_hint
from esrgan.parity import Parity
from esrgan.runtime.cpu_features import (
    ONNXRUNTIME_CPU,
    OPENVINO,
    CpuFeatures,
    choose_cpu_backend,
    parse_cpuinfo,
    probe_cpu_features,
)

EPYC = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 fma avx512f avx512_bf16 avx512_vnni\n" \
       "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 fma avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE = CpuFeatures("Intel Xeon Platinum 8480+", "x86_64", 4,
                       frozenset({"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8"}))
CASCADE = CpuFeatures("Intel Xeon Gold 6248", "x86_64", 4, frozenset({"avx2", "avx512f", "avx512_vnni"}))
OLD = CpuFeatures("Intel Core i5", "x86_64", 4, frozenset({"avx2", "fma"}))
BOTH = (OPENVINO, ONNXRUNTIME_CPU)
HEAD, ENDS, ALL = "openvino:bf16-fp32-head", "openvino:bf16-fp32-ends", "openvino:bf16"
GOOD_BF16 = {HEAD: Parity(3e-3, 4e-4, 53.1, 0.0), ENDS: Parity(1e-3, 2e-4, 56.0, 0.0)}
BAD_BF16 = {HEAD: Parity(2e-1, 1e-2, 38.0, 0.0), ENDS: Parity(1e-1, 1e-2, 41.0, 0.0)}
# the fast layout passes 45 dB but not by the margin; the FP32-ends layout passes
CLOSE_BF16 = {HEAD: Parity(3e-2, 4e-3, 45.4, 0.0), ENDS: Parity(2e-2, 3e-3, 47.1, 0.0)}


def test_parse_cpuinfo_reads_model_flags_and_cores():
    f = parse_cpuinfo(EPYC, arch="x86_64")
    assert f.model == "AMD EPYC" and f.cores == 2  # two processors with no blank line between them
    assert f.vendor == "unknown" and f.physical_cores is None and f.mhz is None and f.family is None
    assert f.report_name == "AMD EPYC"  # no family line: the name alone
    assert f.bf16_native and f.int8_dot
    assert f.relevant_flags() == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]


def test_arm_features_line_is_read():
    f = parse_cpuinfo("processor : 0\nFeatures : fp asimd asimddp bf16 i8mm\n", arch="aarch64")
    assert f.bf16_native and f.int8_dot
    # a board's name sits in a record after the processors (Raspberry Pi layout): "Model" beats "Hardware"
    board = parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd\n\nprocessor\t: 1\nFeatures\t: fp asimd\n\n"
                          "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B\n", arch="aarch64")
    assert board.model == "Raspberry Pi 4 Model B" and board.cores == 2 and board.relevant_flags() == ["asimd"]
    assert board.model_number is None and board.report_name == "Raspberry Pi 4 Model B"


def test_probe_without_cpuinfo_asks_openvino(tmp_path):
    f = probe_cpu_features(str(tmp_path / "missing"), capabilities=lambda: frozenset())
    assert f.flags == frozenset() and not f.bf16_native
    g = probe_cpu_features(str(tmp_path / "missing"), capabilities=lambda: frozenset({"FP32", "BF16", "INT8"}))
    assert g.bf16_native and g.relevant_flags() == ["openvino_bf16"]


@pytest.mark.parametrize(
    ("features", "parity", "expected"),
    [
        (parse_cpuinfo(EPYC, "x86_64"), GOOD_BF16, (OPENVINO, "bf16")),
        (SAPPHIRE, GOOD_BF16, (OPENVINO, "bf16")),
        (SAPPHIRE, BAD_BF16, (OPENVINO, "fp32")),  # BF16 too far from FP32 for this model
        (SAPPHIRE, {}, (OPENVINO, "fp32")),  # not measured: never picked blind
        (CASCADE, GOOD_BF16, (OPENVINO, "fp32")),  # VNNI but no native BF16: emulated BF16 is slow
        (OLD, {}, (OPENVINO, "fp32")),
    ],
)
def test_fp32_model_choice_follows_features_and_parity(features, parity, expected):
    choice = choose_cpu_backend(features, BOTH, "fp32", parity)
    assert (choice.backend, choice.precision) == expected
    assert "\n" not in choice.describe() and choice.reason


@pytest.mark.parametrize(
    ("parity", "layout"),
    [
        (GOOD_BF16, "head"),
        (CLOSE_BF16, "ends"),
        ({ENDS: GOOD_BF16[ENDS]}, "ends"),
        ({HEAD: CLOSE_BF16[HEAD], ENDS: BAD_BF16[ENDS]}, "head"),  # head passes 45 dB and ends does not
        ({HEAD: CLOSE_BF16[HEAD], ALL: BAD_BF16[HEAD]}, "head"),  # no upsampling tail to cut
        ({ALL: CLOSE_BF16[HEAD]}, "all"),  # a model that cannot be cut at all: plain 45 dB rule
    ],
)
def test_bf16_fast_layout_only_with_margin(parity, layout):
    choice = choose_cpu_backend(SAPPHIRE, BOTH, "fp32", parity)
    assert choice.precision == "bf16"
    assert choice.backend_options() == {"precision": "bf16", "bf16_layout": layout}


def test_without_openvino_onnxruntime_runs_and_says_how_to_get_faster():
    choice = choose_cpu_backend(SAPPHIRE, [ONNXRUNTIME_CPU], "fp32", GOOD_BF16)
    assert (choice.backend, choice.precision) == (ONNXRUNTIME_CPU, "fp32")
    assert install_hint("openvino") in choice.reason
    assert choice.backend_options() == {}


def test_int8_file_is_run_as_int8_by_the_engine_the_cpu_suits():
    assert choose_cpu_backend(CASCADE, BOTH, "int8").backend == OPENVINO
    assert choose_cpu_backend(OLD, BOTH, "int8").backend == ONNXRUNTIME_CPU
    assert choose_cpu_backend(OLD, [OPENVINO], "int8").precision == "int8"


def test_int8_is_used_unasked_only_above_the_stated_threshold():
    good = {**GOOD_BF16, "openvino:int8": Parity(1e-2, 1e-3, 46.0, 0.0)}
    fair = {**GOOD_BF16, "openvino:int8": Parity(5e-2, 3e-3, 41.0, 0.0)}
    assert choose_cpu_backend(SAPPHIRE, BOTH, "fp32", good).precision == "int8"
    assert choose_cpu_backend(SAPPHIRE, BOTH, "fp32", fair).precision == "bf16"
    assert choose_cpu_backend(SAPPHIRE, BOTH, "fp32", fair, int8_requested=True).precision == "int8"


def test_fp16_file_goes_to_openvino_which_computes_it_in_fp32():
    choice = choose_cpu_backend(SAPPHIRE, BOTH, "fp16", GOOD_BF16)
    assert choice.backend == OPENVINO and choice.backend_options() == {"precision": "fp32"}


def test_openvino_fp32_failing_parity_falls_back_to_onnxruntime():
    bad = {"openvino:fp32": Parity(1e-2, 1e-3, 60.0, 0.0)}
    assert choose_cpu_backend(OLD, BOTH, "fp32", bad).backend == ONNXRUNTIME_CPU


def test_the_fastest_faithful_path_measured_wins():
    fp32, head = "openvino:fp32", HEAD
    slow_bf16 = {fp32: 1.0, head: 1.45}  # a narrow model: BF16 reorders cost more than they save
    choice = choose_cpu_backend(SAPPHIRE, BOTH, "fp32", GOOD_BF16, measured_seconds=slow_bf16)
    assert choice.precision == "fp32" and "bf16 0.69x" in choice.reason
    fast_bf16 = {fp32: 1.0, head: 0.37}
    choice = choose_cpu_backend(SAPPHIRE, BOTH, "fp32", GOOD_BF16, measured_seconds=fast_bf16)
    assert choice.precision == "bf16" and "2.70x" in choice.reason
    with_int8 = {**GOOD_BF16, "openvino:int8": Parity(1e-2, 1e-3, 48.0, 0.0)}
    choice = choose_cpu_backend(SAPPHIRE, BOTH, "fp32", with_int8,
                                measured_seconds={**fast_bf16, "openvino:int8": 0.3})
    assert choice.precision == "int8"
    choice = choose_cpu_backend(SAPPHIRE, BOTH, "fp32", with_int8,
                                measured_seconds={**fast_bf16, "openvino:int8": 0.5})
    assert choice.precision == "bf16"  # INT8 passes but BF16 is faster here
    # a path too far from FP32 is never picked for speed
    choice = choose_cpu_backend(SAPPHIRE, BOTH, "fp32", BAD_BF16, measured_seconds=fast_bf16)
    assert choice.precision == "fp32"


def test_without_every_timing_the_order_is_int8_bf16_fp32():
    partial = {"openvino:fp32": 1.0}  # e.g. a record from before timings: BF16 not timed
    assert choose_cpu_backend(SAPPHIRE, BOTH, "fp32", GOOD_BF16, measured_seconds=partial).precision == "bf16"


def test_int8_without_int8_instructions_only_when_timed_faster():
    int8 = {"openvino:int8": Parity(1e-2, 1e-3, 48.0, 0.0)}
    assert choose_cpu_backend(OLD, BOTH, "fp32", int8).precision == "fp32"
    timed = {"openvino:fp32": 1.0, "openvino:int8": 0.7}
    assert choose_cpu_backend(OLD, BOTH, "fp32", int8, measured_seconds=timed).precision == "int8"


def test_paths_that_failed_to_run_here_are_skipped_and_named():
    reason = "[CPU] Convolution node object is not initialized"
    failed = {HEAD: reason, "openvino:bf16-fp32-ends": reason}
    choice = choose_cpu_backend(SAPPHIRE, BOTH, "fp32", {}, measured_seconds={"openvino:fp32": 1.0},
                                failed_paths=failed)
    assert choice.precision == "fp32" and f"BF16 failed to run here ({reason}), so FP32" in choice.reason
    choice = choose_cpu_backend(SAPPHIRE, BOTH, "fp32", GOOD_BF16, failed_paths={"openvino:int8": reason},
                                measured_seconds={"openvino:fp32": 1.0, HEAD: 0.5})
    assert choice.precision == "bf16" and f"the INT8 file failed to run here ({reason})" in choice.reason
    # when the timings pick the winner, a BF16 that failed is still named
    int8 = {"openvino:int8": Parity(1e-2, 1e-3, 48.0, 0.0)}
    for int8_s, precision in ((0.6, "int8"), (1.4, "fp32")):
        choice = choose_cpu_backend(SAPPHIRE, BOTH, "fp32", int8, failed_paths=failed,
                                    measured_seconds={"openvino:fp32": 1.0, "openvino:int8": int8_s})
        assert choice.precision == precision and choice.reason.count(f"BF16 failed to run here ({reason})") == 1
