"""ONNX Runtime backend: one class for the TensorRT, CUDA and CPU execution providers.

ONNX Runtime quietly falls back to the CPU when a GPU provider cannot load (missing CUDA/cuDNN,
no GPU): the session still works, only 50x slower. ``session.get_providers()`` says what really
runs, so we compare it with what was asked: ``load_backend`` refuses a provider asked for by name
that did not load, and ``--backend auto`` moves on to the next one.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

import numpy as np

from esrgan.errors import (
    BackendError,
    DependencyError,
    ModelError,
    ModelShapeError,
    OutOfMemoryError,
    first_line,
)
from esrgan.metadata import parse_metadata
from esrgan.native_output import debugging
from esrgan.runtime.backends.base import (
    IMAGE_CHANNELS,
    Backend,
    BackendInfo,
    check_batch,
    check_fixed_size,
    check_io,
    probe_scale,
)

# Registry name -> the ONNX Runtime provider it asks for first.
PROVIDERS = {
    "onnxruntime-trt": "TensorrtExecutionProvider",
    "onnxruntime-cuda": "CUDAExecutionProvider",
    "onnxruntime-cpu": "CPUExecutionProvider",
}
_OOM_MARKERS = ("out of memory", "failed to allocate memory", "cudaerrormemoryallocation", "bad_alloc")


def provider_list(kind: str, device_id: int = 0) -> list[str | tuple[str, dict[str, str]]]:
    """The provider chain for ``kind``: the requested one first, then the ones it may fall back to."""
    dev = {"device_id": str(device_id)}
    if kind == "onnxruntime-trt":
        trt = {**dev, "trt_fp16_enable": "True", "trt_engine_cache_enable": "True"}
        return [("TensorrtExecutionProvider", trt), ("CUDAExecutionProvider", dev), "CPUExecutionProvider"]
    if kind == "onnxruntime-cuda":
        return [("CUDAExecutionProvider", dev), "CPUExecutionProvider"]
    if kind == "onnxruntime-cpu":
        return ["CPUExecutionProvider"]
    raise ValueError(f"unknown ONNX Runtime backend {kind!r}")


def fallback_warning(kind: str, running: list[str]) -> str | None:
    """One line when the provider asked for is not the one running, else None."""
    wanted = PROVIDERS[kind]
    if running and running[0] == wanted:
        return None
    now = running[0] if running else "nothing"
    return (
        f"warning: {kind}: ONNX Runtime could not use {wanted} and runs on {now} instead "
        "(check the CUDA/TensorRT install, or pass --backend onnxruntime-cpu)"
    )


def quiet_native_logs(ort: object) -> None:
    """Silence ORT's C++ logger (provider load failures print a dozen lines) unless debugging."""
    if not debugging():
        ort.set_default_logger_severity(4)  # type: ignore[attr-defined]


def session_options(ort: object) -> object:  # -> ort.SessionOptions
    """SessionOptions whose log says nothing below errors, and nothing at all unless debugging.

    Every session the runtime opens starts here: a failed load or a graph optimisation
    ("Removing initializer ...") must not print native log lines beside our one-line error.
    """
    quiet_native_logs(ort)
    opts = ort.SessionOptions()  # type: ignore[attr-defined]
    opts.log_severity_level = 3 if debugging() else 4
    return opts


def nvidia_gpu_visible() -> bool:
    """Whether a CUDA device can exist here: on Linux the NVIDIA driver exposes /proc/driver/nvidia/gpus.

    ``--backend auto`` skips the GPU providers when it is absent: with onnxruntime-gpu installed on
    a machine without a GPU they cannot load, and trying costs time and log noise.
    """
    if sys.platform.startswith("linux"):
        gpus = Path("/proc/driver/nvidia/gpus")
        return gpus.is_dir() and any(gpus.iterdir())
    return True


def is_out_of_memory(message: str) -> bool:
    low = message.lower()
    return any(m in low for m in _OOM_MARKERS)


def _static(dim: object) -> int | None:
    """One dimension of an ONNX Runtime shape: an int when fixed, None when symbolic or unknown."""
    return dim if isinstance(dim, int) and dim > 0 else None


class OnnxRuntimeBackend(Backend):
    """An ONNX model in ONNX Runtime, on the provider ``kind`` names."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        threads: int | None = None,
        *,
        kind: str = "onnxruntime-cpu",
        device_id: int = 0,
        warn: bool = True,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DependencyError("onnxruntime is not installed: pip install onnxruntime") from None
        src = Path(path)
        if not src.is_file():
            raise ModelError(f"{src}: no such model file")
        if kind not in PROVIDERS:
            raise ValueError(f"unknown ONNX Runtime backend {kind!r}")
        available = ort.get_available_providers()
        if PROVIDERS[kind] not in available:
            raise DependencyError(
                f"{kind}: this onnxruntime build has no {PROVIDERS[kind]} (it has {', '.join(available)}); "
                "install onnxruntime-gpu or choose another --backend"
            )
        opts = session_options(ort)  # provider load failures are reported by our own one line
        # ORT_ENABLE_ALL adds the NCHWc layout transforms that make the convolutions fast on CPU.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        if kind == "onnxruntime-cpu":
            # Idle intra-op threads sleep instead of spinning. On a shared or busy CPU (and beside
            # esrgan-run's decode/encode workers) spinning threads steal the cores the work needs:
            # paper-size x4 on 2 cores under load, 2 threads took 3.5 s with spinning vs 1.8 s
            # without (benchmarks/reports/bench/paper_x4/ort_tuning.md); with 1 thread it changes nothing.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            # ORT print()s an "EP Error ... Falling back" banner when a GPU provider fails to load;
            # the one line below says the same, so the banner is swallowed.
            with contextlib.redirect_stdout(io.StringIO()):
                self.session = ort.InferenceSession(str(src), opts, providers=provider_list(kind, device_id))
        except Exception as exc:
            raise ModelError(f"{src}: ONNX Runtime cannot load it ({first_line(exc)})") from None
        running = list(self.session.get_providers())
        self.fallback_message = fallback_warning(kind, running)
        if warn and self.fallback_message:
            print(self.fallback_message, file=sys.stderr)
        meta = parse_metadata(dict(self.session.get_modelmeta().custom_metadata_map), str(src), require_scale=False)
        self.metadata = meta
        self.size_multiple = meta.size_multiple
        self.size_requirements = meta.size_requirements
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        check_io(str(src), inputs, outputs)
        inp = inputs[0]
        if len(inp.shape) != 4:
            raise ModelShapeError(f"{src}: the model's input has shape {inp.shape}; expected an NCHW image batch")
        self.input_name = inp.name
        self.output_name = outputs[0].name  # the image; OpenVINO's backend takes the first output too
        self.input_type = inp.type  # "tensor(float)" or "tensor(float16)"
        out_shape = outputs[0].shape if isinstance(outputs[0].shape, list) else []
        self.in_channels = _static(inp.shape[1]) or IMAGE_CHANNELS
        self.out_channels = _static(out_shape[1]) if len(out_shape) == 4 else None
        self.max_batch = check_batch(str(src), _static(inp.shape[0]))
        device = "cpu" if running[0] == "CPUExecutionProvider" else f"cuda:{device_id}"
        self.info = BackendInfo(
            name=kind, precision=meta.precision, device=device, providers=tuple(running),
        )
        static = tuple(inp.shape[2:]) if all(isinstance(d, int) for d in inp.shape[2:]) else None
        self.fixed_size = check_fixed_size(str(src), static)  # type: ignore[arg-type]
        self.scale = meta.scale if meta.scale is not None else probe_scale(self.run, self.in_channels, str(src), static)

    def run(self, batch: np.ndarray) -> np.ndarray:
        dtype = np.float16 if self.input_type == "tensor(float16)" else np.float32
        try:
            (out,) = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(batch, dtype=dtype)})
        except Exception as exc:
            line = first_line(exc)
            if is_out_of_memory(line):
                raise OutOfMemoryError(f"{self.info.name} ran out of memory on a {batch.shape} batch") from None
            raise BackendError(f"ONNX Runtime failed on a {batch.shape} batch: {line}") from None
        return out if out.dtype == np.float32 else out.astype(np.float32)

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
