"""End-to-end ``esrgan-run`` folder throughput vs the raw model on the same tiles (CPU backends).

Why: decoding, tiling, stitching and encoding must not starve the model. "Raw" times only
``backend.run`` on exactly the batches the runtime makes for the folder (tiles prepared beforehand);
"end to end" is ``Upscaler.upscale_folder`` (what the CLI runs: decode, tile, run, stitch, encode,
atomic write). Both use one loaded backend and are timed by ``esrgan.bench.extras.pipeline_vs_raw``,
the measurement esrgan-bench's end-to-end check makes (one warm-up pass each, then raw and end to end
in turn, the order rotating), so that the shared machine's load hits both alike, and the ratio of
medians is reported.

Run: ``python -m benchmarks.runtime_throughput`` (ONNX Runtime, a small model; a few minutes on 2 cores)
or ``--backend auto --onnx MODEL.onnx`` (what ``esrgan-run`` picks on this CPU, e.g. OpenVINO BF16, on
a given model, e.g. the real paper-size weights of benchmarks/real_weights.py). Each backend's figures
go to ``throughput_<backend>.json``; README.md shows every such file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.tile_pad_psnr import build_model, export
from esrgan.bench.extras import pipeline_vs_raw
from esrgan.runtime import tiling
from esrgan.runtime.backends.registry import load_backend
from esrgan.runtime.cpu_features import probe_cpu_features

OUT_DIR = Path(__file__).parent / "reports" / "runtime"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry")


def read_spec_json(onnx_path: Path) -> str:
    from esrgan.export.onnx_metadata import read_metadata
    from esrgan.metadata import SPEC

    return read_metadata(onnx_path)[SPEC]


def make_folder(folder: Path, size: int) -> list[np.ndarray]:
    from esrgan.photographs import photograph

    arrays = []
    for i, name in enumerate(PHOTOS):
        crop = np.ascontiguousarray(photograph(name)[:size, :size])
        Image.fromarray(crop).save(folder / f"{i}_{name}.png" if i % 2 == 0 else folder / f"{i}_{name}.jpg")
        arrays.append(crop.astype(np.float32) / 255.0)
    return arrays


def report_lines(report: dict) -> list[str]:
    raws, e2es, ratio = report["raw_seconds"], report["e2e_seconds"], report["e2e_over_raw"]
    per_pass = [r / e for r, e in zip(raws, e2es, strict=True)]
    return [
        f"## {report.get('backend_line', 'ONNX Runtime CPU')}", "",
        f"CPU: {report['cpu']} ({report['cores']} cores; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in report['load_avg_at_end'])}); backend threads {report['ort_threads']}.",
        f"Model {report['model']}; {report['images']} scikit-image photographs ({report['input_size']}x"
        f"{report['input_size']} crops, PNG and JPEG), tile {report['tile']}, pad {report['tile_pad']}, batch "
        f"{report['batch']}: {report['tiles']} tiles per pass, raw and end-to-end passes interleaved after one "
        "warm-up pass each.", "",
        "| pass | raw model (s) | end to end (s) | end to end / raw |", "|---|---|---|---|",
        *[f"| {i} | {r:.2f} | {e:.2f} | {100 * q:.0f} % |" for i, (r, e, q) in enumerate(zip(raws, e2es, per_pass, strict=True))],
        "",
        f"Median raw {report['raw_input_mp_per_s']:.4f} input MP/s, end to end {report['e2e_input_mp_per_s']:.4f} "
        f"input MP/s: **end to end = {100 * ratio:.1f} % of raw** (target >= 85 %); per pass "
        f"{100 * min(per_pass):.0f}-{100 * max(per_pass):.0f} %.", "",
    ]


def write_readme(out: Path) -> None:
    sections = []
    for path in sorted(out.glob("throughput*.json")):
        sections += report_lines(json.loads(path.read_text()))
    (out / "README.md").write_text("\n".join([
        "# esrgan-run end-to-end vs raw model throughput", "",
        "\"Raw\" times only `backend.run` on exactly the batches the runtime makes for the folder; \"end to end\" "
        "is `Upscaler.upscale_folder` (decode, tile, run, stitch, encode, atomic write) with the same loaded "
        "backend. Method: `benchmarks/runtime_throughput.py`. Where the passes spread by about +-10 % whichever "
        "kind they are, the machine was shared and the overhead is below what it can resolve.", "",
        *sections,
    ]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, help="input crop side")
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--backend", default="onnxruntime-cpu", help="a runtime backend name, or auto")
    parser.add_argument("--onnx", type=Path, default=None, help="the model (default: a small random RRDBNet)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite README.md from the JSON files")
    args = parser.parse_args()
    if args.report_only:
        write_readme(args.out)
        return

    from esrgan.models.spec import GeneratorSpec

    spec = GeneratorSpec(scale=4, num_feat=32, num_block=6, num_grow_ch=16)
    pad = tiling.DEFAULT_TILE_PAD
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if args.onnx is not None:
            onnx = args.onnx
            model_line = f"{args.onnx.name} ({GeneratorSpec.from_json(read_spec_json(args.onnx)).describe()})"
        else:
            onnx = export(build_model(spec, "basicsr"), tmp_path / "small.onnx")
            model_line = f"{spec.describe()} (random weights: speed does not depend on them)"
        src = tmp_path / "in"
        src.mkdir()
        arrays = make_folder(src, args.size)
        said: list[str] = []
        backend = load_backend(onnx, args.backend, threads=args.threads, say=said.append)
        backend_line = f"{backend.info.name} {backend.info.precision}" + (
            f" ({backend.info.extra['bf16_layers']})" if backend.info.extra.get("bf16_layers", "none") != "none" else "")
        # One warm-up pass each (ORT builds its kernels for the window shapes), then interleaved passes.
        stats, n_windows = pipeline_vs_raw(backend, src, tmp_path / "out", arrays, args.tile, pad, args.batch, args.reps)
        raws, e2es = list(stats["raw"].samples), list(stats["pipeline"].samples)
        for rep, (r, e) in enumerate(zip(raws, e2es, strict=True)):
            print(f"rep {rep}: raw {r:.2f} s, end-to-end {e:.2f} s", flush=True)
    ratio = statistics.median(raws) / statistics.median(e2es)
    in_mp = sum(a.shape[0] * a.shape[1] for a in arrays) / 1e6
    report = {
        "cpu": probe_cpu_features().report_name, "cores": os.cpu_count(), "load_avg_at_end": os.getloadavg(), "ort_threads": args.threads,
        "backend_line": backend_line, "auto_said": said, "model": model_line, "images": len(PHOTOS), "input_size": args.size, "tile": args.tile, "tile_pad": pad,
        "batch": args.batch, "tiles": n_windows, "raw_seconds": raws, "e2e_seconds": e2es,
        "raw_input_mp_per_s": in_mp / statistics.median(raws), "e2e_input_mp_per_s": in_mp / statistics.median(e2es),
        "e2e_over_raw": ratio,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "throughput.json" if args.backend == "onnxruntime-cpu" else f"throughput_{args.backend}.json"
    (args.out / name).write_text(json.dumps(report, indent=1))
    write_readme(args.out)
    print(f"end to end / raw = {100 * ratio:.1f} %")


if __name__ == "__main__":
    main()
