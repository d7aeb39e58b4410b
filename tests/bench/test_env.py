from esrgan.bench.env import collect_environment, cpu_block, fp32_flops_per_cycle, peak_gflops
from esrgan.runtime.cpu_features import parse_cpuinfo, probe_cpu_features

# the keys docs/benchmarks.md documents for a report's environment.cpu
CPU_KEYS = {"model", "vendor", "logical_cores", "physical_cores", "mhz", "flags", "family", "model_number"}

SAMPLE = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
cpu MHz\t\t: 2000.000
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model name\t: Intel(R) Xeon(R) Platinum 8480+
cpu MHz\t\t: 2000.000
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8

processor\t: 2
vendor_id\t: GenuineIntel
cpu family\t: 6
model name\t: Intel(R) Xeon(R) Platinum 8480+
cpu MHz\t\t: 2000.000
physical id\t: 0
core id\t\t: 1
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8
"""

AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model name\t: AMD EPYC 7B12
cpu MHz\t\t: 2250.000
flags\t\t: fpu sse2 avx avx2 fma
"""


def test_parse_cpuinfo_reads_model_cores_and_relevant_flags():
    cpu = parse_cpuinfo(SAMPLE)
    assert cpu.model == "Intel(R) Xeon(R) Platinum 8480+" and cpu.vendor == "GenuineIntel" and cpu.family == 6
    assert cpu.cores == 3 and cpu.physical_cores == 2  # two hyperthreads share core 0
    assert cpu.mhz == 2000.0
    assert cpu.model_number == 143 and cpu.report_name == "Intel(R) Xeon(R) Platinum 8480+ (family 6, model 143)"
    block = cpu_block(cpu)
    assert set(block) == CPU_KEYS
    assert block["logical_cores"] == 3 and block["physical_cores"] == 2
    # only the flags that matter are reported, in RELEVANT_FLAGS order
    assert block["flags"] == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]


def test_peak_depends_on_vector_units_and_threads():
    intel = parse_cpuinfo(SAMPLE)
    assert peak_gflops(intel, 1) == 64 * 2.0  # 64 FLOP/cycle x 2 GHz
    assert peak_gflops(intel, 8) == 2 * 64 * 2.0  # capped at the 2 physical cores
    amd = parse_cpuinfo(AVX2_ONLY)
    assert amd.vendor == "AuthenticAMD" and amd.family == 23
    assert "avx512f" not in amd.flags and amd.physical_cores is None
    assert amd.model_number is None and amd.report_name == "AMD EPYC 7B12 (family 23)"
    assert peak_gflops(amd, 1) == 32 * 2.25


def test_zen4_avx512_counts_as_256_bit_datapaths():
    zen4 = parse_cpuinfo(AVX2_ONLY.replace("cpu family\t: 23", "cpu family\t: 25").replace("fma", "fma avx512f"))
    assert zen4.family == 25 and fp32_flops_per_cycle(zen4) == 32.0
    zen5 = parse_cpuinfo(AVX2_ONLY.replace("cpu family\t: 23", "cpu family\t: 26").replace("fma", "fma avx512f"))
    assert fp32_flops_per_cycle(zen5) == 64.0


def test_unknown_layout_gives_no_peak():
    cpu = parse_cpuinfo("Hardware\t: some board\nFeatures\t: neon\n")
    assert cpu.model == "some board" and cpu_block(cpu)["flags"] == [] and cpu.mhz is None
    assert peak_gflops(cpu, 1) is None


def test_missing_cpuinfo_gives_a_block_without_peak(tmp_path):
    cpu = probe_cpu_features(str(tmp_path / "missing"), capabilities=lambda: frozenset())
    block = cpu_block(cpu)
    assert set(block) == CPU_KEYS and block["logical_cores"] >= 1
    assert block["vendor"] == "unknown" and block["physical_cores"] is None and block["mhz"] is None
    assert peak_gflops(cpu, 1) is None


def test_environment_block_has_what_reports_promise():
    env = collect_environment(1, {"name": "m"})
    assert set(env["cpu"]) == CPU_KEYS
    assert env["cpu"]["model"] and env["cpu"]["logical_cores"] >= 1
    assert "numpy" in env["libraries"] and "esrgan" in env["libraries"]
    assert env["threads"]["per_library"] == 1 and env["model"] == {"name": "m"}
