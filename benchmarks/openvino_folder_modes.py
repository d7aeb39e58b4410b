"""Which OpenVINO request mode and batch make ``esrgan-run`` fastest over a folder on this CPU.

    python -m benchmarks.openvino_folder_modes --onnx MODEL.onnx [--reps 3]

The raw benchmark (cpu_inference.py) found streams 7 % ahead of one batched request on an idle machine
and 18 % behind on a loaded one, for 4 tiles of 64 px. What users get is the folder pipeline, so this
times ``Upscaler.upscale_folder`` itself (decode, tile, run, stitch, encode, write) over six
photographs with each (mode, batch) in turn, timed by ``esrgan.bench.timing.interleaved`` (one warm-up
pass each, then the configurations in turn, the order rotating), one loaded backend per mode, BF16 with the first conv in FP32 (the default CPU path). Writes
``benchmarks/reports/cpu/folder_modes.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from benchmarks.runtime_throughput import PHOTOS, make_folder
from esrgan.bench.timing import interleaved
from esrgan.runtime.backends.openvino_backend import OpenVinoBackend
from esrgan.runtime.cpu_features import probe_cpu_features
from esrgan.runtime.upscaler import Upscaler

OUT = Path(__file__).parent / "reports" / "cpu" / "folder_modes.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    backends = {mode: OpenVinoBackend(args.onnx, precision="bf16", mode=mode) for mode in ("latency", "throughput")}
    configs = [("latency", 1), ("latency", 2), ("throughput", 2), ("throughput", 4)]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        make_folder(src, args.size)

        upscalers = {(m, b): Upscaler(backend=backends[m], tile=args.tile, batch=b, say=None) for m, b in configs}

        def folder_pass(mode: str, batch: int) -> None:
            summary = upscalers[mode, batch].upscale_folder(src, Path(tmp) / f"out_{mode}_{batch}", overwrite=True, progress=False)
            assert summary.written == len(PHOTOS) and not summary.failed

        cases = [(f"{m} batch {b}", lambda m=m, b=b: folder_pass(m, b)) for m, b in configs]
        stats = interleaved(cases, repeat=args.reps, warmup=1)
    base = stats["latency batch 1"].median
    rows = [{"config": k, "median_s": v.median, "seconds": list(v.samples),
             "speed_vs_latency_batch_1": base / v.median} for k, v in stats.items()]
    report = {"cpu": probe_cpu_features().report_name, "cores": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
              "model": args.onnx.name, "images": len(PHOTOS), "input_size": args.size, "tile": args.tile,
              "streams": backends["throughput"].info.extra["streams"], "rows": rows}
    args.out.write_text(json.dumps(report, indent=1))
    for r in rows:
        print(f"{r['config']:20s} {r['median_s']:.2f} s  {r['speed_vs_latency_batch_1']:.2f}x")


if __name__ == "__main__":
    main()
