"""How fast could any CPU path be here? Instruction peaks against what each engine reaches on x4plus.

Why: the end-to-end targets (esrgan-run >= 2.0x PyTorch eager FP32 on AVX-512-BF16/AMX CPUs, >= 1.6x on
AVX2 ones) are only reachable if the CPU can multiply-accumulate that much faster than PyTorch already
does. This measures the ceiling instead of guessing it from flags: a small C program (written and
compiled here with gcc; no download) times long chains of independent multiply-accumulate instructions
on every core, one instruction kind at a time (FP32 FMA, AVX-512 BF16 ``vdpbf16ps``, VNNI INT8
``vpdpbusd``, each only where the CPU lists it), and the same process times PyTorch eager FP32 and the
project's own OpenVINO backends (FP32, BF16 where native, and an INT8 file if given) on real x4plus
weights at a whole-image size, interleaved after a warm-up. Each engine's multiply-adds per second
(conv MACs counted from the network at that size) over the matching instruction peak says how much
headroom is left; the peak over PyTorch's figure bounds any engine's speed-up at that precision.

Run: ``python -m benchmarks.cpu_roofline`` (about 3 minutes on 2 cores); ``--int8 FILE`` adds an INT8
ONNX file of the same model (``esrgan-export --int8``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.end_to_end import ISA_CAPS, PARITY_DB, TARGETS, cpu_kind

OUT_DIR = Path(__file__).parent / "reports" / "cpu" / "roofline"

# Independent accumulator chains per thread: enough to hide each instruction's latency on two ports.
CHAINS = 12


@dataclass(frozen=True)
class Kind:
    """One multiply-accumulate instruction to time: the CPU flag it needs, what one instruction does,
    and the C that declares, runs and sums its accumulators (only its own: a kernel that also carried
    another kind's registers made gcc move them every iteration, halving the INT8 figure)."""

    flag: str
    macs: int  # multiply-accumulates per instruction
    name: str
    gcc_flags: tuple[str, ...]
    acc_type: str
    consts: str
    init: str
    op: str
    total: str


KINDS = {
    "fp32": Kind("avx512f", 16, "FP32 FMA (vfmadd231ps zmm)", ("-mavx512f",), "__m512",
                 "__m512 b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);", "_mm512_set1_ps((float)i)",
                 "_mm512_fmadd_ps(acc[i], b, c)", "_mm512_reduce_add_ps(acc[i])"),
    "fp16": Kind("avx512_fp16", 32, "FP16 FMA (vfmadd231ph zmm)", ("-mavx512f", "-mavx512fp16"), "__m512h",
                 "__m512h b = _mm512_set1_ph((_Float16)1.0f), c = _mm512_set1_ph((_Float16)0.0001f);",
                 "_mm512_set1_ph((_Float16)i)", "_mm512_fmadd_ph(acc[i], b, c)",
                 "(float)_mm512_reduce_add_ph(acc[i])"),
    "bf16": Kind("avx512_bf16", 32, "BF16 dot product (vdpbf16ps zmm)", ("-mavx512f", "-mavx512bw", "-mavx512bf16"),
                 "__m512", "__m512bh b = (__m512bh)_mm512_set1_epi16(0x3f80), c = (__m512bh)_mm512_set1_epi16(0x3380);",
                 "_mm512_set1_ps((float)i)", "_mm512_dpbf16_ps(acc[i], b, c)", "_mm512_reduce_add_ps(acc[i])"),
    "int8": Kind("avx512_vnni", 64, "INT8 dot product (vpdpbusd zmm)", ("-mavx512f", "-mavx512bw", "-mavx512vnni"),
                 "__m512i", "__m512i b = _mm512_set1_epi8(1), c = _mm512_set1_epi8(2);", "_mm512_set1_epi32(i)",
                 "_mm512_dpbusd_epi32(acc[i], b, c)", "(float)_mm512_reduce_add_epi32(acc[i])"),
}
# An AVX2 CPU (no 512-bit instruction may run): 256-bit FMA, and AVX-VNNI's INT8 dot product where listed.
AVX2_KINDS = {
    "fp32": Kind("fma", 8, "FP32 FMA (vfmadd231ps ymm)", ("-mavx2", "-mfma"), "__m256",
                 "__m256 b = _mm256_set1_ps(1.0000001f), c = _mm256_set1_ps(1e-7f);", "_mm256_set1_ps((float)i)",
                 "_mm256_fmadd_ps(acc[i], b, c)", "_mm256_cvtss_f32(acc[i])"),
    "int8": Kind("avx_vnni", 32, "INT8 dot product (vpdpbusd ymm, AVX-VNNI)", ("-mavx2", "-mavxvnni"), "__m256i",
                 "__m256i b = _mm256_set1_epi8(1), c = _mm256_set1_epi8(2);", "_mm256_set1_epi32(i)",
                 "_mm256_dpbusd_avx_epi32(acc[i], b, c)", "(float)_mm256_extract_epi32(acc[i], 0)"),
}

PEAK_C = r"""
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define CHAINS @CHAINS@
static long iters;
static void *run(void *out) {
    @ACC@ acc[CHAINS];
    @CONSTS@
    for (int i = 0; i < CHAINS; i++) acc[i] = @INIT@;
    for (long n = 0; n < iters; n++) {
        #pragma GCC unroll @CHAINS@
        for (int i = 0; i < CHAINS; i++) acc[i] = @OP@;
    }
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += @TOTAL@;
    *(float *)out = s; /* keeps the chains alive */
    return NULL;
}
int main(int argc, char **argv) {
    int threads = atoi(argv[1]); iters = atol(argv[2]);
    pthread_t *t = calloc(threads, sizeof *t); float *out = calloc(threads, sizeof *out);
    struct timespec t0, t1;
    if (!t || !out) return 1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, run, &out[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.9f\n", (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
    return 0;
}
"""


def kernel_source(kind: Kind) -> str:
    """The C program that times ``kind`` alone."""
    fields = {"CHAINS": str(CHAINS), "ACC": kind.acc_type, "CONSTS": kind.consts, "INIT": kind.init, "OP": kind.op,
              "TOTAL": kind.total}
    text = PEAK_C
    for key, value in fields.items():
        text = text.replace(f"@{key}@", value)
    return text


def kinds_for(flags: frozenset[str]) -> dict[str, Kind]:
    """The instruction kinds this CPU lists (an AVX2-only CPU's are the 256-bit ones)."""
    table = KINDS if "avx512f" in flags else AVX2_KINDS
    return {key: kind for key, kind in table.items() if kind.flag in flags}


PEAK_REPS = 3  # each instruction kind's program is run this many times; the fastest run counts


def instruction_peaks(flags: frozenset[str], threads: int, iters: int = 100_000_000, reps: int = PEAK_REPS) -> dict:
    """GMAC/s of each instruction kind the CPU lists, on ``threads`` threads (best of ``reps``); a kind
    that this gcc cannot compile or this CPU cannot run is recorded with the reason."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return {"skipped": "gcc is not installed (apt-get install gcc)"}
    peaks: dict = {}
    with tempfile.TemporaryDirectory(prefix="esrgan-peak-") as tmp:
        for key, kind in kinds_for(flags).items():
            src, exe = Path(tmp, f"{key}.c"), Path(tmp, key)
            src.write_text(kernel_source(kind))
            try:
                subprocess.run([gcc, "-O2", *kind.gcc_flags, "-pthread", str(src), "-o", str(exe)], check=True,
                               capture_output=True, text=True)
                best = min(float(subprocess.run([str(exe), str(threads), str(iters)], capture_output=True, text=True,
                                                check=True).stdout) for _ in range(reps))
            except (subprocess.CalledProcessError, OSError, ValueError) as exc:
                detail = getattr(exc, "stderr", "") or str(exc)
                peaks[key] = {"instruction": kind.name, "skipped": (detail.strip().splitlines() or ["failed"])[-1][:200]}
                continue
            peaks[key] = {"instruction": kind.name, "gmac_s": iters * CHAINS * kind.macs * threads / best / 1e9}
    return peaks


class HalfTorch:
    """PyTorch eager on a half-precision copy of the model: FP16 weights and activations on the CPU."""

    def __init__(self, model) -> None:
        import copy

        import torch

        self.torch, self.model = torch, copy.deepcopy(model).half()

    def run(self, x: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(x).half()).float().numpy()


def conv_macs(model, size: tuple[int, int]) -> int:
    """Multiply-accumulates of every convolution of ``model`` on a 1x3xHxW input."""
    import torch

    total = 0

    def count(module, inputs, output) -> None:
        nonlocal total
        w = module.weight
        total += output.numel() * (w.shape[1] * w.shape[2] * w.shape[3])

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, *size))
    for h in hooks:
        h.remove()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("/tmp/esrgan-real"), help="folder for real_weights")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--size", default="128x150", help="HxW of the whole image the engines run")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--int8", type=Path, help="an INT8 ONNX file of x4plus (esrgan-export --int8)")
    parser.add_argument("--max-isa", choices=sorted(ISA_CAPS), help="cap this CPU at an older instruction set "
                        "(engines and peaks; a proxy for such a CPU, as in benchmarks/end_to_end.py)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--report-only", action="store_true", help="only rewrite README.md from roofline.json")
    args = parser.parse_args()
    if args.report_only:
        (args.out / "README.md").write_text(markdown(json.loads((args.out / "roofline.json").read_text())))
        return

    os.environ.update(ISA_CAPS.get(args.max_isa, {}))  # before torch and OpenVINO load

    from benchmarks.real_weights import real_x4plus
    from esrgan.bench.timing import interleaved
    from esrgan.parity import compare
    from esrgan.photographs import photograph
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend
    from esrgan.runtime.backends.torch_backend import TorchBackend
    from esrgan.runtime.cpu_features import probe_cpu_features
    from esrgan.runtime.model_source import checkpoint_to_onnx

    started = time.time()
    features = probe_cpu_features()
    print("timing the multiply-accumulate instructions...", flush=True)
    flags = frozenset({"avx2", "fma"}) if args.max_isa == "avx2" else features.flags
    peaks = instruction_peaks(flags, args.threads)
    weights = real_x4plus(args.weights)
    onnx_path = checkpoint_to_onnx(weights, say=print)
    h, w = (int(v) for v in args.size.split("x"))
    x = np.ascontiguousarray(photograph("chelsea")[40 : 40 + h, 120 : 120 + w].transpose(2, 0, 1)[None],
                             dtype=np.float32) / 255.0
    torch_backend = TorchBackend(weights, threads=args.threads)
    macs = conv_macs(torch_backend.model, (h, w))
    engines = {"PyTorch eager FP32": ("fp32", torch_backend)}
    engines["OpenVINO FP32"] = ("fp32", OpenVinoBackend(onnx_path, "fp32", args.threads, cache_dir=""))
    if features.bf16_native and not args.max_isa:
        engines["OpenVINO BF16 (first conv FP32)"] = ("bf16", OpenVinoBackend(onnx_path, "bf16", args.threads,
                                                                              cache_dir="", bf16_layout="head"))
    if "avx512_fp16" in features.flags and not args.max_isa:
        # does any engine here compute in FP16 (the instruction's peak is above)? PyTorch's own half path
        engines["PyTorch eager FP16 (half weights)"] = ("fp16", HalfTorch(torch_backend.model))
    if args.int8:
        engines["OpenVINO INT8 file"] = ("int8", OpenVinoBackend(args.int8, "fp32", args.threads, cache_dir=""))
    outputs = {}

    def runner(name, backend):
        return lambda: outputs.__setitem__(name, backend.run(x))

    print(f"timing {', '.join(engines)} on a {h}x{w} image, {args.reps} interleaved runs...", flush=True)
    stats = interleaved([(name, runner(name, b)) for name, (_, b) in engines.items()], args.reps, warmup=1)
    # timed again after the engines, the faster figure of each kind kept: a burst of other work during
    # one of the two would otherwise lower a ceiling (seen: 63 instead of 84-88 GMAC/s for ymm FMA)
    print("timing the multiply-accumulate instructions again...", flush=True)
    for key, again in instruction_peaks(flags, args.threads).items():
        if "gmac_s" in again and again["gmac_s"] > peaks.get(key, {}).get("gmac_s", 0):
            peaks[key] = again
    reference = outputs["PyTorch eager FP32"]
    rows = []
    for name, (precision, _) in engines.items():
        seconds = stats[name].median
        gmac_s = macs / seconds / 1e9
        peak = peaks.get(precision, {}).get("gmac_s") if isinstance(peaks.get(precision), dict) else None  # None: not timed
        rows.append({"engine": name, "precision": precision, "seconds": seconds, "spread": stats[name].spread,
                     "gmac_s": gmac_s, "share_of_peak": gmac_s / peak if peak else None,
                     "psnr_vs_pytorch_db": compare(reference, outputs[name]).psnr_db})
    report = {
        "cpu": features.report_name, "cores": os.cpu_count(), "threads": args.threads,
        "flags": sorted(f for f in features.flags if f.startswith(("avx", "amx")) or f in {"fma", "f16c"}),
        "load_avg_at_end": os.getloadavg(), "model": "Real-ESRGAN x4plus (benchmarks/real_weights.py)",
        "image": f"chelsea {h}x{w}", "conv_macs": macs, "reps": args.reps, "peaks": peaks, "engines": rows,
        "peak_method": {"chains": CHAINS, "best_of": 2 * PEAK_REPS},
        "int8_file": str(args.int8) if args.int8 else None, "seconds": round(time.time() - started),
        "isa_cap": ISA_CAPS.get(args.max_isa),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "roofline.json").write_text(json.dumps(report, indent=1))
    (args.out / "README.md").write_text(markdown(report))
    print(markdown(report))


def markdown(r: dict) -> str:
    peaks = r["peaks"]
    method = r.get("peak_method", {"chains": CHAINS, "best_of": 2 * PEAK_REPS})
    torch_row = next(e for e in r["engines"] if e["engine"] == "PyTorch eager FP32")
    timed = {k: p["gmac_s"] for k, p in peaks.items() if isinstance(p, dict) and "gmac_s" in p}
    lines = [
        "# CPU roofline: instruction peaks against what each engine reaches on x4plus", "",
        f"CPU: **{r['cpu']}** ({r['cores']} cores, {r['threads']} threads used; flags {' '.join(r['flags'])}; "
        f"load average at the end {', '.join(f'{v:.1f}' for v in r['load_avg_at_end'])}). Model: {r['model']}, "
        f"one whole image ({r['image']}, {r['conv_macs'] / 1e9:.1f} G multiply-adds in its convolutions). "
        f"Method: `benchmarks/cpu_roofline.py` (instruction peaks: best of {method['best_of']} runs, before and "
        f"after the engines, of {method['chains']} independent accumulator chains per thread, one instruction kind "
        "per program; engines: "
        f"median of {r['reps']} interleaved runs after a warm-up). "
        "A result on this CPU kind, not a claim about others."
        + (f" INT8 file: `{Path(r['int8_file']).name}` (given with `--int8`)." if r.get("int8_file") else ""), "",
    ]
    if r.get("isa_cap"):
        lines += [f"**Proxy:** engines and peaks capped at an older instruction set "
                  f"({', '.join(f'`{k}={v}`' for k, v in r['isa_cap'].items())}, and only that set's instructions timed); "
                  "cores, caches and clocks stay this CPU's.", ""]
    if "skipped" in peaks:
        lines += [f"Instruction peaks not measured: {peaks['skipped']}.", ""]
    else:
        lines += ["| instruction | peak GMAC/s | x FP32 FMA | ceiling over PyTorch eager FP32 |", "|---|---|---|---|"]
        for key, p in peaks.items():
            if key not in timed:
                lines.append(f"| {p['instruction']} | not measured: {p['skipped']} | | |")
                continue
            relative = f"{timed[key] / timed['fp32']:.2f}x" if "fp32" in timed else "-"
            lines.append(f"| {p['instruction']} | {timed[key]:.0f} | {relative} | {timed[key] / torch_row['gmac_s']:.2f}x |")
        lines.append("")
    lines += ["| engine | seconds | GMAC/s | share of its instruction peak | PSNR vs PyTorch |", "|---|---|---|---|---|"]
    for e in r["engines"]:
        share = f"{e['share_of_peak']:.0%}" if e["share_of_peak"] is not None else "-"
        psnr = "reference" if e is torch_row else f"{e['psnr_vs_pytorch_db']:.1f} dB"
        lines.append(f"| {e['engine']} | {e['seconds']:.2f} (spread {e['spread']:.0%}) | {e['gmac_s']:.0f} | {share} | "
                     f"{psnr} |")
    lines += ["", "The last column of the first table bounds any engine's speed-up over PyTorch at that "
              "precision on this CPU: an engine that ran every multiply-add at the instruction's peak, with no "
              "memory traffic, would reach it and no more. (An algorithm that does fewer multiply-adds, such as "
              "Winograd convolution, is not bounded by it.)", ""]
    kind = "avx2" if r.get("isa_cap") else cpu_kind(frozenset(r["flags"]))
    target = TARGETS.get(kind)
    if target is not None and "fp32" in timed:
        fp32 = timed["fp32"]
        best = max((e for e in r["engines"] if e["precision"] == "fp32" and e is not torch_row),
                   key=lambda e: e["gmac_s"], default=None)
        faithful = [e["engine"] + (f" (its instruction's ceiling: {timed[e['precision']] / torch_row['gmac_s']:.2f}x)"
                                   if e["precision"] in timed else "")
                    for e in r["engines"] if e["precision"] != "fp32" and e["psnr_vs_pytorch_db"] >= PARITY_DB]
        lines += [
            f"**The end-to-end target for this CPU kind ({kind}): >= {target}x PyTorch eager FP32 at >= "
            f"{PARITY_DB:.0f} dB.** In FP32 it needs an engine at {target * torch_row['gmac_s'] / fp32:.0%} of the "
            "FP32 FMA peak over the whole network, start-up and image handling included"
            + (f"; the best measured here runs at {best['share_of_peak']:.0%} ({best['engine']})" if best else "")
            + ". Reduced precisions within the parity target here: "
            + (", ".join(faithful) if faithful else "none") + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
