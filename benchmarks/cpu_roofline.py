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
from pathlib import Path

import numpy as np

from benchmarks.end_to_end import ISA_CAPS, PARITY_DB, TARGETS, cpu_kind

OUT_DIR = Path(__file__).parent / "reports" / "cpu" / "roofline"

# Multiply-accumulates per instruction on a 512-bit register, and the CPU flag each kind needs.
KINDS = {
    "fp32": ("_mm512_fmadd_ps(a[i], b, c)", 16, "avx512f", "FP32 FMA (vfmadd231ps zmm)"),
    "bf16": ("_mm512_dpbf16_ps(a[i], hb, hc)", 32, "avx512_bf16", "BF16 dot product (vdpbf16ps zmm)"),
    "int8": ("_mm512_dpbusd_epi32(q[i], ib, ic)", 64, "avx512_vnni", "INT8 dot product (vpdpbusd zmm)"),
}
AVX2_FP32 = ("_mm256_fmadd_ps(y[i], yb, yc)", 8, "fma", "FP32 FMA (vfmadd231ps ymm)")

PEAK_C = r"""
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
/* 12 independent accumulators per thread: enough to hide each instruction's latency on 2 ports. */
#define CHAINS 12
static long iters;
static void *run(void *out) {
    float s = 0;
#ifdef ONLY_YMM /* an AVX2 CPU: no 512-bit instruction may run */
    __m256 y[CHAINS];
    __m256 yb = _mm256_set1_ps(1.0000001f), yc = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) y[i] = _mm256_set1_ps((float)i);
#else
    __m512 a[CHAINS]; __m512i q[CHAINS];
    __m512 b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
    __m512bh hb = (__m512bh)_mm512_set1_epi16(0x3f80), hc = (__m512bh)_mm512_set1_epi16(0x3380);
    __m512i ib = _mm512_set1_epi8(1), ic = _mm512_set1_epi8(2);
    for (int i = 0; i < CHAINS; i++) { a[i] = _mm512_set1_ps((float)i); q[i] = _mm512_set1_epi32(i); }
#endif
    for (long n = 0; n < iters; n++) {
        #pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) OP;
    }
    for (int i = 0; i < CHAINS; i++) {
#ifdef ONLY_YMM
        float t[8]; _mm256_storeu_ps(t, y[i]); s += t[0];
#else
        s += _mm512_reduce_add_ps(a[i]) + (float)_mm512_reduce_add_epi32(q[i]);
#endif
    }
    *(float *)out = s; /* keeps the chains alive */
    return NULL;
}
int main(int argc, char **argv) {
    int threads = atoi(argv[1]); iters = atol(argv[2]);
    pthread_t t[256]; float out[256]; struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, run, &out[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.9f\n", (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
    return 0;
}
"""


def instruction_peaks(flags: frozenset[str], threads: int, iters: int = 100_000_000, reps: int = 3) -> dict:
    """GMAC/s of each instruction kind the CPU lists, on ``threads`` threads (best of ``reps``)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return {"skipped": "gcc is not installed (apt-get install gcc)"}
    kinds = {k: v for k, v in KINDS.items() if v[2] in flags}
    if "avx512f" not in flags and "fma" in flags:
        kinds = {"fp32": AVX2_FP32}  # an AVX2-only CPU: 256-bit FMA is its peak
    peaks = {}
    avx512 = "avx512f" in flags
    isa = ["-mavx512f", "-mavx512bw", "-mavx512bf16", "-mavx512vnni", "-mfma", "-mavx2"] if avx512 else [
        "-mfma", "-mavx2", "-DONLY_YMM"]
    with tempfile.TemporaryDirectory(prefix="esrgan-peak-") as tmp:
        src = Path(tmp, "peak.c")
        src.write_text(PEAK_C)
        for key, (op, per_instruction, _flag, name) in kinds.items():
            exe = Path(tmp, key)
            target = op.split("(")[1].split(",")[0]  # the accumulator: a[i], q[i] or y[i]
            subprocess.run([gcc, "-O2", *isa, "-pthread", f"-DOP={target} = {op}", str(src), "-o", str(exe)],
                           check=True)
            best = min(float(subprocess.run([str(exe), str(threads), str(iters)], capture_output=True, text=True,
                                            check=True).stdout) for _ in range(reps))
            peaks[key] = {"instruction": name, "gmac_s": iters * 12 * per_instruction * threads / best / 1e9}
    return peaks


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
    if args.int8:
        engines["OpenVINO INT8 file"] = ("int8", OpenVinoBackend(args.int8, "fp32", args.threads, cache_dir=""))
    outputs = {}

    def runner(name, backend):
        return lambda: outputs.__setitem__(name, backend.run(x))

    print(f"timing {', '.join(engines)} on a {h}x{w} image, {args.reps} interleaved runs...", flush=True)
    stats = interleaved([(name, runner(name, b)) for name, (_, b) in engines.items()], args.reps, warmup=1)
    reference = outputs["PyTorch eager FP32"]
    rows = []
    for name, (precision, _) in engines.items():
        seconds = stats[name].median
        gmac_s = macs / seconds / 1e9
        peak = peaks.get(precision, {}).get("gmac_s") if isinstance(peaks.get(precision), dict) else None
        rows.append({"engine": name, "precision": precision, "seconds": seconds, "spread": stats[name].spread,
                     "gmac_s": gmac_s, "share_of_peak": gmac_s / peak if peak else None,
                     "psnr_vs_pytorch_db": compare(reference, outputs[name]).psnr_db})
    report = {
        "cpu": features.model, "cores": os.cpu_count(), "threads": args.threads,
        "flags": sorted(f for f in features.flags if f.startswith(("avx", "amx")) or f in {"fma", "f16c"}),
        "load_avg_at_end": os.getloadavg(), "model": "Real-ESRGAN x4plus (benchmarks/real_weights.py)",
        "image": f"chelsea {h}x{w}", "conv_macs": macs, "reps": args.reps, "peaks": peaks, "engines": rows,
        "int8_file": str(args.int8) if args.int8 else None, "seconds": round(time.time() - started),
        "isa_cap": ISA_CAPS.get(args.max_isa),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "roofline.json").write_text(json.dumps(report, indent=1))
    (args.out / "README.md").write_text(markdown(report))
    print(markdown(report))


def markdown(r: dict) -> str:
    peaks = r["peaks"]
    torch_row = next(e for e in r["engines"] if e["engine"] == "PyTorch eager FP32")
    lines = [
        "# CPU roofline: instruction peaks against what each engine reaches on x4plus", "",
        f"CPU: **{r['cpu']}** ({r['cores']} cores, {r['threads']} threads used; flags {' '.join(r['flags'])}; "
        f"load average at the end {', '.join(f'{v:.1f}' for v in r['load_avg_at_end'])}). Model: {r['model']}, "
        f"one whole image ({r['image']}, {r['conv_macs'] / 1e9:.1f} G multiply-adds in its convolutions). "
        f"Method: `benchmarks/cpu_roofline.py` (instruction peaks: best of 3 runs of 12 independent chains per "
        f"thread; engines: median of {r['reps']} interleaved runs after a warm-up). "
        "A result on this CPU kind, not a claim about others."
        + (f" INT8 file: `{Path(r['int8_file']).name}` (given with `--int8`)." if r.get("int8_file") else ""), "",
    ]
    if r.get("isa_cap"):
        lines += [f"**Proxy:** engines and peaks capped at an older instruction set "
                  f"({', '.join(f'`{k}={v}`' for k, v in r['isa_cap'].items())}, and only that set's FMA timed); "
                  "cores, caches and clocks stay this CPU's.", ""]
    if "skipped" in peaks:
        lines += [f"Instruction peaks not measured: {peaks['skipped']}.", ""]
    else:
        lines += ["| instruction | peak GMAC/s | x FP32 FMA | ceiling over PyTorch eager FP32 |", "|---|---|---|---|"]
        for p in peaks.values():
            lines.append(f"| {p['instruction']} | {p['gmac_s']:.0f} | {p['gmac_s'] / peaks['fp32']['gmac_s']:.2f}x | "
                         f"{p['gmac_s'] / torch_row['gmac_s']:.2f}x |")
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
    if target is not None and "fp32" in peaks:
        fp32 = peaks["fp32"]["gmac_s"]
        best = max((e for e in r["engines"] if e["precision"] == "fp32" and e is not torch_row),
                   key=lambda e: e["gmac_s"], default=None)
        faithful = [e["engine"] + (f" (its instruction's ceiling: {peaks[e['precision']]['gmac_s'] / torch_row['gmac_s']:.2f}x)"
                                   if e["precision"] in peaks else "")
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
