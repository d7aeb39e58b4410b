from esrgan.bench.env import collect_environment, parse_cpuinfo, peak_gflops

SAMPLE = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
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
    assert cpu.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu.logical_cores == 3 and cpu.physical_cores == 2  # two hyperthreads share core 0
    assert cpu.amx and cpu.has("avx512_bf16") and cpu.has("avx512_vnni")
    assert "fpu" not in cpu.flags and "sse2" not in cpu.flags  # only the flags that matter are kept
    assert cpu.mhz == 2000.0


def test_peak_depends_on_vector_units_and_threads():
    intel = parse_cpuinfo(SAMPLE)
    assert peak_gflops(intel, 1) == 64 * 2.0  # 64 FLOP/cycle x 2 GHz
    assert peak_gflops(intel, 8) == 2 * 64 * 2.0  # capped at the 2 physical cores
    amd = parse_cpuinfo(AVX2_ONLY)
    assert not amd.has("avx512f") and amd.physical_cores is None
    assert peak_gflops(amd, 1) == 32 * 2.25


def test_unknown_layout_gives_no_peak():
    cpu = parse_cpuinfo("Hardware\t: some board\nFeatures\t: neon\n")
    assert cpu.model == "some board" and cpu.flags == ()
    assert peak_gflops(cpu, 1) is None


def test_environment_block_has_what_reports_promise():
    env = collect_environment(1, {"name": "m"})
    assert env["cpu"]["model"] and env["cpu"]["logical_cores"] >= 1
    assert "numpy" in env["libraries"] and "esrgan" in env["libraries"]
    assert env["threads"]["per_library"] == 1 and env["model"] == {"name": "m"}
