"""Does an engine with native AVX-512 FP16 convolution kernels beat FP32 on x4plus? LiteRT's XNNPACK.

Why: on the project's Intel Xeon the AVX-512 FP16 FMA does 2.2x the FP32 FMA's multiply-adds per second
(``benchmarks/cpu_roofline.py``), so an engine computing x4plus's convolutions in FP16 could pass the
2.0x end-to-end target where every FP32 engine is bounded below it. OpenVINO and PyTorch convert FP16 to
FP32 for their convolutions there; XNNPACK (Google's CPU kernels, inside LiteRT, PyPI ``ai-edge-litert``)
has FP16 GEMM kernels written for AVX-512 FP16 and runs a float model in them when asked
(``TFLITE_XNNPACK_DELEGATE_FLAG_FORCE_FP16``, LiteRT's ``CpuOptions.xnnpack_flags``), with FP16
accumulation. This times PyTorch eager FP32, OpenVINO FP32 (the runtime's backend) and LiteRT's XNNPACK
in FP32 and in forced FP16 on one whole image, interleaved after a warm-up, and compares each output
with PyTorch's (``esrgan.parity.compare``).

LiteRT runs ``.tflite`` files, which nothing in this project writes: make one for a fixed size with
onnx2tf (PyPI ``onnx2tf``; it needs TensorFlow, and looks for its test images
``calibration_image_sample_data_20x128x128x3_float32.npy`` in the working folder before downloading
them, so put any 20 RGB 128x128 float images there). onnx2tf saves its fixed-shape graph over the file it
is given: convert a copy, never the esrgan cache's export (``esrgan.runtime.model_source`` exports a
changed cached file again). E.g. for a copy of the x4plus ONNX export and a 128x128 image:
``onnx2tf -i x4plus.onnx -o x4_128 -ois input:1,3,128,128 -n`` (about 7 minutes on 2 cores). Then:
``python -m benchmarks.litert_fp16 --tflite x4_128/<name>_float32.tflite`` (needs ``ai-edge-litert``).
Writes ``litert_fp16.md`` and ``.json`` under ``benchmarks/reports/cpu/``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.cpu_roofline import conv_macs

OUT_DIR = Path(__file__).parent / "reports" / "cpu"
ROOFLINE = OUT_DIR / "roofline" / "roofline.json"
# XNNPACK delegate flag: run FP32 operators in FP16 (tensorflow/lite/delegates/xnnpack/xnnpack_delegate.h).
FORCE_FP16 = 0x4


class LiteRtRunner:
    """A LiteRT compiled model on XNNPACK, taking and returning NCHW like the runtime's backends."""

    def __init__(self, path: Path, threads: int, xnnpack_flags: int) -> None:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.cpu_options import CpuOptions
        from ai_edge_litert.options import Options

        options = Options(cpu_options=CpuOptions(num_threads=threads, xnnpack_flags=xnnpack_flags))
        self.model = CompiledModel.from_file(str(path), options=options)
        self.inputs, self.outputs = self.model.create_input_buffers(0), self.model.create_output_buffers(0)

    def run(self, x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        self.inputs[0].write(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))  # onnx2tf's files are NHWC
        self.model.run_by_index(0, self.inputs, self.outputs)
        y = self.outputs[0].read(n * c * h * w * 16, np.float32)
        return y.reshape(n, 4 * h, 4 * w, c).transpose(0, 3, 1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflite", type=Path, required=True, help="x4plus as an FP32 .tflite file (see above)")
    parser.add_argument("--weights", type=Path, default=Path("/tmp/esrgan-real"), help="folder for real_weights")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()

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
    weights = real_x4plus(args.weights)
    fp32 = LiteRtRunner(args.tflite, args.threads, 0)
    h, w = fp32.inputs[0].get_tensor_details()["shape"][1:3]  # the file's fixed NHWC size
    x = np.ascontiguousarray(photograph("chelsea")[40 : 40 + h, 120 : 120 + w].transpose(2, 0, 1)[None],
                             dtype=np.float32) / 255.0
    torch_backend = TorchBackend(weights, threads=args.threads)
    macs = conv_macs(torch_backend.model, (h, w))
    engines = {
        "PyTorch eager FP32": torch_backend,
        "OpenVINO FP32": OpenVinoBackend(checkpoint_to_onnx(weights, say=print), "fp32", args.threads, cache_dir=""),
        "LiteRT XNNPACK FP32": fp32,
        "LiteRT XNNPACK forced FP16": LiteRtRunner(args.tflite, args.threads, FORCE_FP16),
    }
    outputs: dict[str, np.ndarray] = {}

    def runner(name, engine):
        return lambda: outputs.__setitem__(name, engine.run(x))

    print(f"timing {', '.join(engines)} on a {h}x{w} image, {args.reps} interleaved runs...", flush=True)
    stats = interleaved([(name, runner(name, e)) for name, e in engines.items()], args.reps, warmup=1)
    peaks = json.loads(ROOFLINE.read_text())["peaks"] if ROOFLINE.is_file() else {}
    reference = stats["PyTorch eager FP32"].median
    rows = []
    for name in engines:
        seconds = stats[name].median
        precision = "fp16" if "FP16" in name else "fp32"
        peak = peaks.get(precision, {}).get("gmac_s") if isinstance(peaks.get(precision), dict) else None
        rows.append({"engine": name, "seconds": seconds, "spread": stats[name].spread,
                     "speed_vs_pytorch": reference / seconds, "gmac_s": macs / seconds / 1e9,
                     "share_of_peak": macs / seconds / 1e9 / peak if peak else None,
                     "psnr_vs_pytorch_db": None if name == "PyTorch eager FP32"  # the reference
                     else compare(outputs["PyTorch eager FP32"], outputs[name]).psnr_db})
    report = {
        "cpu": features.report_name, "cores": os.cpu_count(), "threads": args.threads,
        "flags": sorted(f for f in features.flags if f.startswith(("avx", "amx")) or f in {"fma", "f16c"}),
        "load_avg_at_end": os.getloadavg(), "image": f"chelsea {h}x{w}", "conv_macs": macs, "reps": args.reps,
        "tflite": args.tflite.name, "engines": rows, "peaks_cited_from": str(ROOFLINE.relative_to(Path(__file__).parent.parent)),
        "seconds": round(time.time() - started),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "litert_fp16.json").write_text(json.dumps(report, indent=1))
    (args.out / "litert_fp16.md").write_text(markdown(report))
    print(markdown(report))


def markdown(r: dict) -> str:
    lines = [
        "# LiteRT's XNNPACK in FP16 on x4plus: native AVX-512 FP16 kernels against FP32 engines", "",
        f"CPU: **{r['cpu']}** ({r['cores']} cores, {r['threads']} threads used; flags {' '.join(r['flags'])}; load "
        f"average at the end {', '.join(f'{v:.1f}' for v in r['load_avg_at_end'])}). Model: Real-ESRGAN x4plus "
        f"(benchmarks/real_weights.py), one whole image ({r['image']}, {r['conv_macs'] / 1e9:.1f} G multiply-adds in "
        f"its convolutions), `{r['tflite']}` made by onnx2tf. Method: `benchmarks/litert_fp16.py`, median of "
        f"{r['reps']} interleaved runs after a warm-up. A result on this CPU kind, not a claim about others.", "",
        "| engine | seconds | speed vs PyTorch | GMAC/s | share of its instruction's peak | PSNR vs PyTorch |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["engines"]:
        share = f"{row['share_of_peak']:.0%}" if row["share_of_peak"] else "-"
        psnr = "reference" if row["psnr_vs_pytorch_db"] is None else f"{row['psnr_vs_pytorch_db']:.1f} dB"
        lines.append(f"| {row['engine']} | {row['seconds']:.2f} (spread {row['spread']:.0%}) | "
                     f"{row['speed_vs_pytorch']:.2f}x | {row['gmac_s']:.0f} | {share} | {psnr} |")
    lines += ["", f"Instruction peaks (FP32 FMA, FP16 FMA) cited from `{r['peaks_cited_from']}` (same CPU kind, an "
              "earlier run).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
