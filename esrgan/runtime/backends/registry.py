"""Backend names, what ``--backend auto`` picks, and the one ``load_backend`` entry point.

Backends are registered by import path and imported only when chosen, so that e.g. the TensorRT
or torch backends cost nothing (and need nothing installed) until someone asks for them.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from esrgan.errors import (
    BackendError,
    CacheError,
    DependencyError,
    ModelError,
    ModelShapeError,
    UsageError,
    first_line,
)
from esrgan.hashing import missing_external_data
from esrgan.metadata import onnx_metadata, parse_metadata
from esrgan.runtime.backends.base import Backend, check_rgb

# name -> "module:Class". The ONNX Runtime names share one class (kind=name).
BACKENDS = {
    "tensorrt": "esrgan.runtime.backends.tensorrt_backend:TensorRTBackend",
    "onnxruntime-trt": "esrgan.runtime.backends.ort_backend:OnnxRuntimeBackend",
    "onnxruntime-cuda": "esrgan.runtime.backends.ort_backend:OnnxRuntimeBackend",
    "onnxruntime-cpu": "esrgan.runtime.backends.ort_backend:OnnxRuntimeBackend",
    "ncnn-vulkan": "esrgan.runtime.backends.ncnn_backend:NcnnBackend",
    "ncnn-cpu": "esrgan.runtime.backends.ncnn_backend:NcnnBackend",
    "openvino": "esrgan.runtime.backends.openvino_backend:OpenVinoBackend",
    "torch": "esrgan.runtime.backends.torch_backend:TorchBackend",
}
CHOICES = ("auto", *BACKENDS)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt")
NCNN_SUFFIXES = (".param",)  # ncnn's model files (the .bin beside it)
NCNN_BACKENDS = ("ncnn-vulkan", "ncnn-cpu")
# ``auto`` on an ONNX file: CUDA providers first, fastest first; then ncnn on a Vulkan GPU (AMD, Intel,
# Apple); then the CPU path.
_GPU_ORDER = ("onnxruntime-trt", "onnxruntime-cuda")


def model_kind(path: str | os.PathLike[str]) -> str:
    """"onnx", "engine", "checkpoint" or "ncnn", from the file name."""
    suffix = Path(path).suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    if suffix in NCNN_SUFFIXES:
        return "ncnn"
    raise ModelError(
        f"{path}: unknown model type {suffix!r}; expected .onnx, a TensorRT .engine, a .pth/.safetensors "
        "checkpoint or an ncnn .param"
    )


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; expected one of {', '.join(CHOICES)}")
    module, cls = BACKENDS[name].split(":")
    # The backend modules import their third-party package (openvino, tensorrt, torch) only when a
    # backend is constructed, where a missing one becomes a one-line DependencyError.
    return getattr(importlib.import_module(module), cls)


def _vulkan_gpu(device_id: int) -> str | None:
    """Vulkan device ``device_id`` if ncnn is installed and the device is a real GPU (a software
    rasterizer such as Mesa's lavapipe is slower than the CPU paths): its description, else None."""
    if not _importable("ncnn"):
        return None
    from esrgan.runtime.backends.ncnn_backend import hardware_vulkan_device

    device = hardware_vulkan_device(device_id)
    return device.describe() if device else None


def _gpu_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose_cpu(
    model_path: Path, precision: str, threads: int | None = None, say: Callable[[str], None] | None = None
) -> tuple[str, dict[str, Any], str | None, Path]:
    """The CPU path for ``--backend auto``: (backend name, its options, a line saying why, the file to run).

    ``cpu_parity.select_cpu_backend`` decides between OpenVINO and ONNX Runtime and their
    precisions from the CPU's features plus a cached parity and speed check on this model (and on its
    INT8 companion file, which is then the file to run).
    """
    from esrgan.runtime.cpu_parity import select_cpu_backend

    available = [name for name, mod in (("openvino", "openvino"), ("onnxruntime-cpu", "onnxruntime")) if _importable(mod)]
    choice = select_cpu_backend(model_path, precision, available, threads=threads, say=say)
    return choice.backend, dict(choice.backend_options()), choice.describe(), Path(choice.model or model_path)


def _onnx_precision(path: Path) -> str:
    """The file's ``esrgan.precision`` metadata (fp32 when it says nothing or cannot be read)."""
    try:
        return parse_metadata(onnx_metadata(path), str(path), require_scale=False).precision
    except Exception:
        return "fp32"


def _construct(
    name: str, path: Path, device_id: int, threads: int | None, warn: bool,
    say: Callable[[str], None] | None = None, **extra: Any,
) -> Backend:
    cls = backend_class(name)
    if name in NCNN_BACKENDS:
        return cls(path, threads, vulkan=name == "ncnn-vulkan", device_id=device_id, say=say, **extra)  # type: ignore[call-arg]
    if name.startswith("onnxruntime-"):
        return cls(path, threads, kind=name, device_id=device_id, warn=warn)  # type: ignore[call-arg]
    if name == "tensorrt":
        return cls(path, device_id=device_id)  # type: ignore[call-arg]
    if name == "torch":
        return cls(path, device="cpu" if device_id < 0 else _torch_device(device_id), threads=threads, **extra)  # type: ignore[call-arg]
    return cls(path, threads=threads, **extra)  # type: ignore[call-arg]


def _ncnn_vulkan_auto(
    path: Path, gpu: str, device_id: int, threads: int | None, say: Callable[[str], None], pinned: str | None = None
) -> Backend:
    """ncnn on Vulkan GPU ``gpu`` for ``auto``: fp16 where this model's measured fp16 parity on this
    device passes (``esrgan.runtime.vulkan_parity``), else fp32; the line says which and why.
    ``pinned``: the precision ``--precision`` asked for, used as it is."""
    if pinned:
        chosen = _construct("ncnn-vulkan", path, device_id, threads, True, say, precision=pinned)
        say(f"GPU backend: ncnn-vulkan {pinned} on {gpu} (--precision {pinned})")
        return chosen
    import ncnn

    from esrgan.runtime.vulkan_parity import vulkan_backend

    files = [path, path.with_suffix(".bin")] if model_kind(path) == "ncnn" else [path]
    backend, precision, why = vulkan_backend(
        lambda precision: _construct("ncnn-vulkan", path, device_id, threads, True, say, precision=precision),
        files, gpu, getattr(ncnn, "__version__", "?"), say)
    say(f"GPU backend: ncnn-vulkan {precision} on {gpu} ({why})")
    return backend


#: What ``--precision`` may pin, by backend; the others run the model file's own precision (an FP16
#: ONNX export, a TensorRT engine). Under ``auto`` only fp32: no reduced-precision path is measured or
#: taken (on the CPU, on a Vulkan GPU; a CUDA provider runs the file as it is).
PRECISION_CHOICES = {"auto": ("fp32",), "openvino": ("fp32", "bf16"), "ncnn-cpu": ("fp32", "fp16"),
                     "ncnn-vulkan": ("fp32", "fp16"), "torch": ("fp32", "fp16", "bf16")}


def check_precision(backend: str, precision: str) -> None:
    """Refuse, before any model loads, a ``--precision`` that ``--backend`` cannot run ("auto": its choice)."""
    if precision == "auto":
        return
    allowed = PRECISION_CHOICES.get(backend, ())
    if precision not in allowed:
        what = f"it takes {' or '.join(allowed)}" if allowed else "it runs the model file's own precision"
        where = "; ".join(f"{b}: {', '.join(p)}" for b, p in PRECISION_CHOICES.items())
        raise UsageError(f"--precision {precision} with --backend {backend}: {what} (--precision applies to {where})")
    if backend == "ncnn-cpu" and _importable("ncnn"):  # before a checkpoint's export; the backend checks again
        from esrgan.runtime.backends.ncnn_backend import check_cpu_precision

        check_cpu_precision(importlib.import_module("ncnn"), precision)


def _check_gpu_visible(name: str) -> None:
    """Refuse a GPU provider asked for by name on a machine without an NVIDIA GPU, before any export."""
    from esrgan.runtime.backends.ort_backend import PROVIDERS, nvidia_gpu_visible

    if name in _GPU_ORDER and not nvidia_gpu_visible():
        raise DependencyError(
            f"--backend {name}: no NVIDIA GPU is visible here, so ONNX Runtime cannot use {PROVIDERS[name]}; "
            "use --backend auto or onnxruntime-cpu"
        )


def _construct_named(
    name: str, path: Path, device_id: int, threads: int | None, say: Callable[[str], None] | None, **opts: Any
) -> Backend:
    """The backend asked for by name, or an error: never another one in its place.

    ONNX Runtime runs a session on the CPU when the GPU provider cannot load; a run that was asked
    for a GPU provider and would silently take 50x longer is refused instead (``auto`` falls back).
    """
    from esrgan.runtime.backends.ort_backend import PROVIDERS

    backend = _construct(name, path, device_id, threads, False, say, **opts)
    if getattr(backend, "fallback_message", None):
        running = backend.info.providers[0]
        backend.close()
        raise BackendError(
            f"--backend {name}: ONNX Runtime cannot use {PROVIDERS[name]} here and would run on {running}; "
            "check the CUDA/TensorRT install, or use --backend auto"
        )
    return backend


def _torch_device(device_id: int) -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return f"cuda:{device_id}" if torch.cuda.is_available() else "cpu"


def load_backend(
    model_path: str | os.PathLike[str],
    backend: str = "auto",
    *,
    device_id: int = 0,
    threads: int | None = None,
    say: Callable[[str], None] | None = None,
    export_checkpoint: Callable[[Path], Path] | None = None,
    **opts: Any,
) -> Backend:
    """Load ``model_path`` on ``backend`` (a name in ``CHOICES``) for the tiler: an RGB model.

    ``say`` receives the one-line notices (which CPU path auto chose, a provider fallback);
    default: stderr. ``export_checkpoint`` turns a checkpoint into an ONNX file for the non-torch
    backends (default: ``esrgan.runtime.model_source.checkpoint_to_onnx``).
    """
    say = say or (lambda line: print(line, file=sys.stderr))
    loaded = _load(Path(model_path), backend, device_id, threads, say, export_checkpoint, **opts)
    try:
        check_rgb(loaded, str(model_path))
    except ModelError:
        loaded.close()
        raise
    return loaded


def _load(
    path: Path, backend: str, device_id: int, threads: int | None, say: Callable[[str], None],
    export_checkpoint: Callable[[Path], Path] | None, **opts: Any,
) -> Backend:
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    kind = model_kind(path)
    if backend not in CHOICES:
        raise UsageError(f"unknown backend {backend!r}; expected one of {', '.join(CHOICES)}")
    _check_gpu_visible(backend)

    pinned = opts.pop("precision", None) if backend == "auto" else None  # --precision fp32 under auto
    if kind == "ncnn":
        if backend not in ("auto", *NCNN_BACKENDS):
            raise UsageError(f"{path.name} is an ncnn model: only --backend {' or '.join(NCNN_BACKENDS)} (or auto) runs it")
        if backend == "auto":
            gpu = _vulkan_gpu(device_id)
            if gpu is not None:
                return _ncnn_vulkan_auto(path, gpu, device_id, threads, say, pinned)
            from esrgan.runtime.backends.ncnn_backend import no_gpu_reason

            chosen = _construct("ncnn-cpu", path, device_id, threads, True, say, **opts)
            say(f"CPU backend: ncnn-cpu (an ncnn model, and no Vulkan GPU: {no_gpu_reason(device_id)})")
            return chosen
        return _construct(backend, path, device_id, threads, True, say, **opts)
    if kind == "engine":
        if backend not in ("auto", "tensorrt"):
            raise UsageError(f"{path.name} is a TensorRT engine: only --backend tensorrt (or auto) runs it")
        return _construct("tensorrt", path, device_id, threads, True)
    if kind == "checkpoint":
        if backend == "torch":
            return _construct("torch", path, device_id, threads, True, **opts)
        if export_checkpoint is None:
            from esrgan.runtime.model_source import checkpoint_to_onnx

            export_checkpoint = functools.partial(checkpoint_to_onnx, say=say)
        path = export_checkpoint(path)
    elif backend == "torch":
        raise UsageError("--backend torch runs checkpoints (.pth/.safetensors), not ONNX or engine files")
    if backend == "tensorrt":
        raise UsageError("--backend tensorrt runs TensorRT .engine files; build one with esrgan-export --trt")
    if (missing := missing_external_data(path)) is not None:
        raise ModelError(f"{path}: its weights are kept in {missing} (it must lie beside the .onnx file, "
                         "under that name)")

    if backend != "auto":
        return _construct_named(backend, path, device_id, threads, say, **opts)
    from esrgan.runtime.backends.ort_backend import PROVIDERS, nvidia_gpu_visible

    available = _gpu_providers() if nvidia_gpu_visible() else []

    for name in _GPU_ORDER:
        if PROVIDERS[name] not in available:
            continue
        try:
            candidate = _construct(name, path, device_id, threads, False)
        except (BackendError, DependencyError, ModelError):
            continue
        if getattr(candidate, "fallback_message", None) is None:
            return candidate
        candidate.close()  # the GPU provider did not load: try the next one, silently (that is auto)
    gpu = _vulkan_gpu(device_id)
    if gpu is not None:
        try:
            return _ncnn_vulkan_auto(path, gpu, device_id, threads, say, pinned)
        except (BackendError, CacheError, DependencyError, ModelError) as exc:
            say(f"ncnn-vulkan on {gpu} cannot run {path.name}: {exc}; using the CPU")
    fallback = functools.partial(_onnxruntime_instead, path, device_id, threads, say, **opts)
    try:
        if pinned:  # no reduced-precision path is measured or used
            name = "openvino" if _importable("openvino") else "onnxruntime-cpu"
            cpu_opts = {"precision": pinned} if name == "openvino" else {}
            why, run_path = f"CPU backend: {name} {pinned} (--precision {pinned})", path
        else:
            name, cpu_opts, why, run_path = choose_cpu(path, _onnx_precision(path), threads, say)
    except (BackendError, ModelError) as exc:  # auto's one-time measurement runs OpenVINO
        return fallback(exc)
    if why:
        say(why)
    try:
        return _construct(name, run_path, device_id, threads, True, **{**cpu_opts, **opts})
    except (BackendError, ModelError) as exc:
        if name != "openvino":
            raise
        return fallback(exc, failed=run_path)


def _onnxruntime_instead(path: Path, device_id: int, threads: int | None, say: Callable[[str], None],
                         exc: BaseException, failed: Path | None = None, **opts: Any) -> Backend:
    """``auto`` on the CPU when OpenVINO cannot read, compile or run a file: ONNX Runtime reads more
    operator sets (ai.onnx.ml, some custom domains), so the file may still run. A model no backend
    runs (``ModelShapeError``), or no ONNX Runtime, keeps OpenVINO's error."""
    if isinstance(exc, ModelShapeError) or not _importable("onnxruntime"):
        raise exc
    say(f"OpenVINO cannot run {(failed or path).name} ({first_line(exc)}); using ONNX Runtime on the CPU"
        + (f" with {path.name}" if failed not in (None, path) else ""))
    return _construct("onnxruntime-cpu", path, device_id, threads, True, **opts)
