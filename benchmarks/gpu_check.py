"""GPU readiness: every GPU row of esrgan-bench, parity and throughput, in one command and a few minutes.

    python -m benchmarks.gpu_check -o DIR            # on a CUDA machine: paper-size x4, the GPU rows
    python -m benchmarks.gpu_check -o DIR --dry-run  # anywhere: tiny x4, one small tile, CPU rows too

A thin driver over ``esrgan.bench``: it picks the rows (PyTorch FP32 eager, the GPU reference; FP16
channels_last; torch.compile; ONNX Runtime CUDA FP32/FP16 and its TensorRT provider; the TensorRT
engine), the model (the seeded random-weight paper-size x4 of ``--preset paper``: speed does not
depend on the weights, and parity is against PyTorch FP32 on the same inputs) and sizes that fit a
lent GPU session, then hands them to ``esrgan.bench.runner`` and ``esrgan.bench.report``: the same
loading, interleaved timing, parity and report.json/report.md as ``esrgan-bench``, plus a block
naming the GPU (``torch.cuda.get_device_name``), driver, CUDA and cuDNN versions, and the throughput
of esrgan-train's own training step in FP32 and AMP (BF16, FP16).

It needs only torch, numpy, onnx and onnxruntime, because lent GPU machines may have nothing else:
- ONNX Runtime and TensorRT rows need an exported model. It is exported only when ONNX Runtime has a
  GPU provider or TensorRT is usable (otherwise those rows are listed as skipped, with the reason),
  by the export pipeline (the ``export`` extra: safetensors, onnxconverter-common, scikit-image) or,
  without it, as the FP32 file alone (torch and onnx): the FP16 and engine rows then say why not.
- The TensorRT engine is built (from the FP16 ONNX file, for exactly the measured shapes) only where
  ``tensorrt`` is importable and a GPU is present.
- Inputs are scikit-image's photographs; without scikit-image, deterministic synthetic scenes (edges,
  gradients, rings of rising frequency; never noise), and the report says so.
- Plots need matplotlib; without it the report has none and says so. The training step needs the
  ``train`` extra (tqdm, Pillow, scikit-image are imported by the trainer); without it, the report says so.
``--dry-run`` runs that same flow on the CPU rows ``torch-fp32`` and ``ort-fp32`` with the tiny model,
so CI checks arguments, skips and report writing end to end; the GPU rows are listed as skipped with
their reasons where there is no GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, str(ROOT))

from esrgan.bench.config import BenchConfig, resolve_config  # noqa: E402
from esrgan.elapsed import timed  # noqa: E402
from esrgan.errors import DependencyError, EsrganError, UsageError, first_line, install_hint  # noqa: E402
from esrgan.export.options import EXPORTERS  # noqa: E402
from esrgan.native_output import DEBUG_ENV, debugging  # noqa: E402

#: CPU rows of --dry-run: the CPU counterparts of torch-cuda-fp32 (the reference) and ort-cuda-fp32.
DRY_RUN_CPU_ROWS = ("torch-fp32", "ort-fp32")
#: The settings of a GPU run: tiles from the runtime's small to its usual size, batches 1 and 4, enough
#: repetitions for a stable median. The paper-size x4 at 256 px x 4 is 9.4 TFLOP a call, so the timed
#: calls take well under a minute on an H100; torch.compile (once per shape family) and, with
#: onnxruntime-gpu, the export take most of the run, which must stay within a lent session's 10 minutes.
GPU_SETTINGS: dict[str, Any] = {"tiles": (64, 128, 256), "batches": (1, 4), "repeat": 10, "warmup": 3}
#: --dry-run: the flow in seconds, on a model of a few thousand parameters.
DRY_RUN_SETTINGS: dict[str, Any] = {"tiles": (16,), "batches": (1,), "repeat": 2, "warmup": 1}
GPU_PRESET, DRY_RUN_PRESET = "paper", "tiny"
#: Training step: BasicSR's ESRGAN x4 recipe (16 HR patches of 128 px), FP32 and both AMP precisions.
GPU_TRAIN: dict[str, Any] = {"batch": 16, "patch": 128, "modes": ("fp32", "amp-bf16", "amp-fp16")}
#: --dry-run on the CPU: AMP is for GPUs (esrgan-train refuses it on a CPU).
DRY_RUN_TRAIN: dict[str, Any] = {"batch": 2, "patch": 16, "modes": ("fp32",)}
SYNTHETIC_SIDE = 320  # px: larger than every default tile, so each crop is a centre crop, not padding


# ---- arguments ----------------------------------------------------------------------------------


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _keys(text: str) -> tuple[str, ...]:
    keys = tuple(k for k in text.replace(" ", "").split(",") if k)
    if not keys:
        raise argparse.ArgumentTypeError("expected comma-separated row keys")
    return keys


def build_parser() -> argparse.ArgumentParser:
    gpu = ", ".join(f"{k} {','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in GPU_SETTINGS.items())
    dry = ", ".join(f"{k} {','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in DRY_RUN_SETTINGS.items())
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check",
        description="Parity and throughput of every GPU row (PyTorch FP32/FP16 channels_last/compile, ONNX "
                    "Runtime CUDA, TensorRT where installed) and of the training step, into DIR/report.json "
                    f"and report.md. A GPU run: {GPU_PRESET}-size x4, {gpu}.",
    )
    p.add_argument("-o", "--out", required=True, type=Path, metavar="DIR", help="Output folder for the report.")
    p.add_argument("--dry-run", action="store_true",
                   help=f"Tiny model, CPU rows {', '.join(DRY_RUN_CPU_ROWS)} as well ({dry}): the whole flow "
                        "in seconds, without a GPU.")
    p.add_argument("--backends", type=_keys, help="Comma-separated rows (esrgan-bench --list); default: every "
                                                  "GPU row (plus the CPU rows with --dry-run).")
    p.add_argument("--tiles", type=_ints, help="Comma-separated input tile sizes in px.")
    p.add_argument("--batch", dest="batches", type=_ints, help="Comma-separated batch sizes.")
    p.add_argument("--repeat", type=int, help="Timed repetitions per case.")
    p.add_argument("--warmup", type=int, help="Untimed warm-up calls per case.")
    p.add_argument("--images", type=Path, metavar="DIR",
                   help="Folder of images (needs Pillow); default: scikit-image photographs, or synthetic "
                        "scenes where scikit-image is not installed.")
    p.add_argument("--exporter", choices=EXPORTERS,
                   help=f"ONNX exporter for the ONNX Runtime and TensorRT rows (default: {BenchConfig.exporter}, "
                        "or torchscript where onnxscript is not installed).")
    p.add_argument("--no-train", action="store_true",
                   help="Skip the training-step throughput (the trainer's PSNR-stage step, FP32 and AMP).")
    p.add_argument("--debug", action="store_true", help="Show tracebacks.")
    return p


def resolve(args: argparse.Namespace) -> tuple[BenchConfig, str]:
    """The bench config and preset: a flag given > the mode's settings > ``BenchConfig``'s defaults."""
    from esrgan.bench.rows import all_rows

    settings = DRY_RUN_SETTINGS if args.dry_run else GPU_SETTINGS
    gpu_rows = tuple(k for k, r in all_rows().items() if r.device == "cuda")
    backends = args.backends or ((*DRY_RUN_CPU_ROWS, *gpu_rows) if args.dry_run else gpu_rows)
    exporter = args.exporter
    if exporter is None and not _importable("onnxscript"):
        exporter = "torchscript"  # torch's dynamo exporter needs onnxscript
    flags = {
        "tiles": args.tiles, "batches": args.batches, "repeat": args.repeat, "warmup": args.warmup,
        "images": args.images, "backends": backends, "exporter": exporter,
    }
    config = resolve_config(flags, settings)
    if config.repeat < 1 or config.warmup < 0:
        raise UsageError("--repeat must be >= 1 and --warmup >= 0")
    if config.images is not None:  # said now, not after minutes of preparation
        if not config.images.is_dir():
            raise UsageError(f"--images {config.images}: not a folder")
        if not _importable("PIL"):
            raise DependencyError("--images needs Pillow (pip install pillow); without it, leave --images out")
    from esrgan.bench.report import check_report_folder

    check_report_folder(args.out)
    return config, (DRY_RUN_PRESET if args.dry_run else GPU_PRESET)


# ---- what this machine has -----------------------------------------------------------------------


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def cuda_info() -> dict[str, Any] | None:
    """The GPU as PyTorch sees it, with the driver from nvidia-smi; None without a CUDA GPU."""
    import torch

    from esrgan.bench.env import gpu_info

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    smi = gpu_info() or {}
    return {
        "device": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
        "capability": f"{props.major}.{props.minor}", "memory_gib": round(props.total_memory / 2**30, 1),
        "driver": smi.get("driver"), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        # PyTorch runs FP32 convolutions in TF32 by default: the "FP32" reference is then TF32.
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }


def ort_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def export_blockers(rows: list[Any]) -> dict[str, str]:
    """Rows that need an exported file but cannot run here, with the reason: nothing is exported for them.

    The engine row needs TensorRT and a GPU; the other GPU rows with a file are ONNX Runtime's and need a
    GPU provider. (Which provider each needs, and a failed load, is said by the row itself when loaded.)
    """
    from esrgan.export.engine import tensorrt_unavailable

    providers = ort_providers()
    gpu_providers = [p for p in providers if p != "CPUExecutionProvider"]
    blocked = {}
    for row in rows:
        if row.artifact == "engine":
            reason = tensorrt_unavailable()
            if reason:
                blocked[row.key] = reason
        elif row.artifact and row.device == "cuda" and not gpu_providers:
            have = ", ".join(providers) or "no onnxruntime"
            blocked[row.key] = f"ONNX Runtime here has no GPU provider ({have}); install onnxruntime-gpu"
    return blocked


# ---- model and inputs ---------------------------------------------------------------------------


def torch_only_model(preset: str) -> Any:
    """The preset's seeded checkpoint without any export (torch alone; .pth where safetensors is missing)."""
    from esrgan.bench.models import PreparedModel, cache_root, preset_checkpoint, preset_spec
    from esrgan.hashing import file_sha256

    suffix = ".safetensors" if _importable("safetensors") else ".pth"
    ckpt = preset_checkpoint(preset, cache_root(), suffix=suffix)
    return PreparedModel(name=f"{preset}_x4", spec=preset_spec(preset), checkpoint=ckpt, sha256=file_sha256(ckpt))


def prepare(preset: str, rows: list[Any], config: BenchConfig, say: Any) -> tuple[Any, dict[str, str]]:
    """The model with the files the rows need; rows whose file could not be made, with the reason."""
    from esrgan.bench.models import prepare_model
    from esrgan.bench.rows import needed_artifacts

    needed = needed_artifacts(rows)
    if not needed:
        say(f"{preset} x4, random weights (seeded): no row here needs an exported file")
        return torch_only_model(preset), {}
    try:
        model = prepare_model(preset=preset, fp16=bool(needed & {"fp16", "engine"}), exporter=config.exporter,
                              progress=say)
    except (EsrganError, ImportError) as exc:
        if isinstance(exc, ImportError) and (exc.name or "").startswith("esrgan"):
            raise  # a missing esrgan module is a bug
        hint = f" ({install_hint('export')})" if isinstance(exc, ImportError) else ""
        reason = f"the ONNX export failed here: {first_line(exc)}{hint}"
        say(reason)
        model = torch_only_model(preset)
        if "fp32" in needed:  # the FP32 file alone needs only torch and onnx
            model.files["fp32"] = fp32_only_export(model, config.exporter, say)
        return model, {r.key: reason for r in rows if r.artifact and r.artifact not in model.files}
    skipped = {}
    if "engine" in needed:
        try:
            model.files["engine"] = build_engine(model, config, say)
        except EsrganError as exc:
            skipped.update({r.key: f"engine build failed: {first_line(exc)}" for r in rows if r.artifact == "engine"})
    return model, skipped


def fp32_only_export(model: Any, exporter: str, say: Any) -> Path:
    """The FP32 ONNX file through ``export_onnx`` alone (torch and onnx), cached by checkpoint digest.

    For machines without the export extra: the export pipeline also writes a safetensors checkpoint and
    an FP16 file (onnxconverter-common, scikit-image's photographs); the FP32 rows need neither.
    """
    from esrgan.bench.models import cache_root
    from esrgan.export.onnx_export import export_onnx

    dest = cache_root() / "exports" / f"{model.name}-{model.sha256[:16]}-{exporter}-fp32" / "model.onnx"
    if dest.is_file():
        say(f"using the cached FP32 ONNX file {dest}")
        return dest
    say(f"exporting the FP32 ONNX file alone ({exporter}) to {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return export_onnx(model.torch_model(), dest, exporter=exporter)


def build_engine(model: Any, config: BenchConfig, say: Any) -> Path:
    """The TensorRT FP16 engine for exactly the measured tiles and batches (built once per shape set)."""
    from esrgan.export.engine import EngineOptions
    from esrgan.export.engine import build_engine as build
    from esrgan.runtime.tensorrt_profile import default_profile

    tiles, batches = sorted(config.tiles), sorted(config.batches)
    profile = default_profile(
        model.spec.num_in_ch, tile_min=tiles[0], tile_opt=tiles[-1], tile_max=tiles[-1], tile_pad=0,
        batch_min=batches[0], batch_opt=batches[-1], batch_max=batches[-1], multiple=model.spec.size_multiple,
    )
    fp16 = model.files["fp16"]
    dest = fp16.with_name(f"gpu_check_{'x'.join(map(str, profile.max))}.engine")
    if dest.is_file():
        say(f"using the cached TensorRT engine {dest}")
        return dest
    say(f"building the TensorRT FP16 engine for {profile.min} .. {profile.max} (minutes)")
    return build(fp16, EngineOptions(min_shape=profile.min, opt_shape=profile.opt, max_shape=profile.max), dest)


def synthetic_scenes(count: int, side: int = SYNTHETIC_SIDE) -> list[np.ndarray]:
    """Deterministic RGB test scenes for machines without scikit-image.

    Not noise (which says nothing about photographs): smooth gradients, hard-edged discs and bars at
    several angles, and rings whose frequency rises to the Nyquist limit, in saturated and dark
    colours; each scene shifts them, so every repetition sees a different input.
    """
    y, x = (np.mgrid[0:side, 0:side].astype(np.float32) + 0.5) / side
    scenes = []
    for k in range(count):
        cx, cy = 0.35 + 0.1 * k, 0.55 - 0.05 * k
        rings = 0.5 + 0.5 * np.cos(np.pi * side / 2 * ((x - cx) ** 2 + (y - cy) ** 2))
        disc = (((x - 0.7 + 0.05 * k) ** 2 + (y - 0.3) ** 2) < 0.03).astype(np.float32)
        bars = (np.sin(2 * np.pi * (6 + k) * (x * np.cos(k) + y * np.sin(k))) > 0).astype(np.float32)
        fade = np.clip(1.5 - 2 * y, 0, 1)
        rgb = np.stack([
            0.75 * x * (1 - disc) + 0.95 * disc,
            0.6 * rings * fade + 0.3 * (1 - fade) * bars,
            0.2 + 0.6 * y * (1 - disc) + 0.1 * bars * fade,
        ], axis=-1)
        scenes.append(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    return scenes


def inputs(config: BenchConfig) -> tuple[list[np.ndarray] | None, str]:
    """(images for the runner or None for its own, what the report calls them)."""
    if config.images is not None:
        return None, str(config.images)
    if _importable("skimage"):
        return None, "scikit-image photographs"
    label = f"synthetic test scenes ({SYNTHETIC_SIDE} px; scikit-image is not installed here)"
    return synthetic_scenes(max(1, config.repeat)), label


def training_throughput(preset: str, device: str, config: BenchConfig, settings: dict[str, Any]) -> dict[str, Any]:
    """Iterations per second of esrgan-train's own step, per precision, timed interleaved.

    One iteration as ``StageRun.run`` does it (``psnr_step``: forward, L1, backward, Adam; then the
    EMA update and the scheduler step) on a fixed batch already on the device, so data loading is
    not in it. Patches are crops of the benchmark's synthetic scenes (throughput does not depend on
    what they show). Returns {"skipped": reason} where the train extra is missing or the step fails.
    """
    try:
        import esrgan.train.trainer  # noqa: F401
    except ImportError as exc:
        if (exc.name or "").startswith("esrgan"):
            raise  # a missing esrgan module is a bug
        return {"skipped": f"needs the train extra ({install_hint('train')}): {first_line(exc)}"}
    try:
        return _training_throughput(preset, device, config, settings)
    except (EsrganError, RuntimeError) as exc:  # out of GPU memory, a non-finite loss: the report is still written
        return {"skipped": f"failed: {first_line(exc)}"}


def _training_throughput(preset: str, device: str, config: BenchConfig, settings: dict[str, Any]) -> dict[str, Any]:
    import torch

    from esrgan.bench.inputs import to_nchw
    from esrgan.bench.models import preset_spec
    from esrgan.bench.timing import interleaved
    from esrgan.train.config import TrainConfig
    from esrgan.train.distributed import DistInfo
    from esrgan.train.trainer import StageRun

    spec = preset_spec(preset)
    batch, patch = settings["batch"], settings["patch"]
    side = patch * ((SYNTHETIC_SIDE + patch - 1) // patch)
    crops = [scene[:patch, :patch] for scene in synthetic_scenes(batch, side=side)]
    hr = torch.from_numpy(to_nchw(crops)).to(device)
    lr = torch.nn.functional.avg_pool2d(hr, spec.scale)
    cases = []
    for mode in settings["modes"]:
        amp = mode.startswith("amp-")
        train_config = TrainConfig(spec=spec, batch_size=batch, patch_size=patch, amp=amp,
                                   amp_dtype=mode.removeprefix("amp-") if amp else TrainConfig.amp_dtype)
        run = StageRun(train_config, "psnr", torch.device(device), DistInfo(), None, [])  # type: ignore[arg-type]
        run.g.train()
        cases.append((mode, _train_step(run, lr, hr)))
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    stats = interleaved(cases, repeat=config.repeat, warmup=config.warmup, sync=sync)
    rows = [{
        "mode": mode, "batch": batch, "patch": patch, "step_ms": s.median * 1e3, "spread": s.spread,
        "iters_per_s": 1 / s.median, "hr_mpix_s": batch * patch * patch / s.median / 1e6, "repeats": len(s.samples),
    } for mode, s in stats.items()]
    return {"device": device, "model": spec.describe(), "rows": rows}


def _train_step(run: Any, lr: Any, hr: Any) -> Any:
    state = {"iteration": 0}

    def step() -> None:
        state["iteration"] += 1
        run.psnr_step(state["iteration"], lr, hr)
        run.ema.update(run.g)
        run.sched_g.step()

    return step


def training_md(training: dict[str, Any]) -> str:
    if "skipped" in training:
        return f"Training-step throughput: not measured ({training['skipped']})."
    lines = [f"Training-step throughput on {training['device']} (esrgan-train's PSNR-stage iteration without "
             f"data loading; {training['model']}):", "",
             "| mode | batch x patch | step (ms) | spread | it/s | HR MP/s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['batch']} x {r['patch']} px | {r['step_ms']:.1f} | {r['spread']:.0%} | "
              f"{r['iters_per_s']:.3g} | {r['hr_mpix_s']:.3g} |" for r in training["rows"]]
    return "\n".join(lines)


# ---- the run ------------------------------------------------------------------------------------


def notes_md(block: dict[str, Any]) -> str:
    cuda = block["cuda"]
    if cuda:
        gpu = (f"- GPU: **{cuda['device']}** ({cuda['count']} visible), compute capability {cuda['capability']}, "
               f"{cuda['memory_gib']} GiB; driver {cuda['driver'] or '?'}; PyTorch {cuda['torch']} built for CUDA "
               f"{cuda['torch_cuda']}, cuDNN {cuda['cudnn']}; TF32 convolutions "
               f"{'on (the FP32 reference runs in TF32)' if cuda['cudnn_allow_tf32'] else 'off'}")
    else:
        gpu = "- GPU: none visible to PyTorch (every GPU row is listed under *Not measured here*)"
    lines = [
        f"`python -m benchmarks.gpu_check` ({block['mode']}): {block['elapsed_s']:.0f} s in all.",
        "",
        gpu,
        f"- ONNX Runtime providers: {', '.join(block['ort_providers']) or 'onnxruntime not installed'}",
        f"- Inputs: {block['inputs']}",
        f"- Model: {block['preset']} preset (random weights, seeded); exporter for the ONNX rows: {block['exporter']}",
    ]
    if not block["plots"]:
        lines.append("- Plots: none (matplotlib is not installed here)")
    if block.get("training"):
        lines += ["", training_md(block["training"])]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    say = timed(lambda line: print(line, file=sys.stderr, flush=True))
    config, preset = resolve(args)
    from esrgan.bench.rows import select

    rows = select(list(config.backends) if config.backends else None)
    if any(r.device == "cpu" for r in rows):  # as esrgan-bench: before torch and ONNX Runtime start their pools
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(config.threads)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise DependencyError("benchmarks.gpu_check needs PyTorch (pip install torch)") from None
    from esrgan.bench.report import write_report
    from esrgan.bench.runner import run_benchmark

    cuda = cuda_info()
    if cuda is None and not args.dry_run:
        raise DependencyError("no CUDA GPU is visible to PyTorch: run this on a GPU machine, or try the flow "
                              "here with --dry-run")
    say(f"GPU: {cuda['device']}, driver {cuda['driver']}, CUDA {cuda['torch_cuda']}" if cuda else "GPU: none")
    skipped = export_blockers(rows)
    runnable = [r for r in rows if r.key not in skipped]
    model, failed = prepare(preset, runnable, config, say)
    skipped.update(failed)
    runnable = [r for r in runnable if r.key not in failed]
    images, label = inputs(config)
    say(f"measuring {', '.join(r.key for r in runnable)} on tiles {list(config.tiles)}, batches "
        f"{list(config.batches)} ({label})")
    data = run_benchmark(model, runnable, config, images=images)
    training = None
    if not args.no_train:
        say("timing the training step")
        device = "cuda" if cuda else "cpu"
        training = training_throughput(preset, device, config, DRY_RUN_TRAIN if args.dry_run else GPU_TRAIN)
    data["skipped"] = {**skipped, **data["skipped"]}
    data["config"]["images"] = label
    data["config"]["rows"] = [r.key for r in rows]
    plots = _importable("matplotlib")
    data["gpu_check"] = {
        "mode": "dry-run" if args.dry_run else "gpu", "preset": preset, "exporter": config.exporter, "cuda": cuda,
        "ort_providers": ort_providers(), "inputs": label, "plots": plots, "training": training,
        "elapsed_s": time.perf_counter() - start,
    }
    title = f"GPU check: {model.name} ({model.spec.describe()}) on {cuda['device'] if cuda else 'no GPU'}"
    doc = write_report(data, args.out, title, notes_md(data["gpu_check"]), plots=plots)
    summary(doc, args.out)
    return doc


def summary(doc: dict[str, Any], out: Path) -> None:
    for r in doc["results"]:
        speed = f"{r['speedup_vs_torch']:.2f}x FP32" if r["speedup_vs_torch"] is not None else "no reference"
        parity = "reference" if r["reference"] else ("parity ok" if r["parity_ok"] else "PARITY FAIL")
        print(f"{r['backend']:20s} tile {r['tile']:4d} batch {r['batch']}: {r['throughput_mpix_s']:.3g} MP/s, "
              f"{speed}, {parity}")
    for key, reason in doc["skipped"].items():
        print(f"{key:20s} skipped: {reason}")
    print(f"report: {Path(out) / 'report.md'}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.debug:
        os.environ[DEBUG_ENV] = "1"  # native libraries' output too, as the other commands' --debug
    debug = debugging()
    try:
        run(args)
    except EsrganError as exc:
        if debug:
            raise
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        if debug or (exc.name or "").startswith("esrgan"):
            raise  # a missing esrgan module is a bug
        print(f"error: {first_line(exc)} ({install_hint('export')} installs every module the benchmarks use)",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
