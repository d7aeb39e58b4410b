"""TensorRT backend: load a serialized engine with its JSON sidecar and run it on the GPU.

TensorRT cannot be installed where CI runs (its libraries download from NVIDIA's index only), so the
TensorRT calls live in two files only, this one (load and run) and ``esrgan.export.tensorrt_build``
(build), which CI type-checks with mypy against ``tensorrt-stubs`` and whose attribute names a test
checks against the TensorRT 11 bindings. Both ``tensorrt`` and the CUDA runtime are imported lazily,
and this module never imports torch, so the runtime can use it.

Device memory and streams use CUDA Python (``cuda-python``, the ``trt`` extra): TensorRT's Python API
does not allocate user buffers, and the runtime must not need torch just to copy arrays to the GPU.

Engines are not portable: an engine runs only with the TensorRT version that built it and on a GPU of
the same compute capability. The sidecar written next to each engine records both, and
``check_portability`` turns a mismatch into one clear line instead of an obscure deserialisation failure.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from esrgan.errors import (
    BackendError,
    DependencyError,
    ModelError,
    OutOfMemoryError,
    first_line,
    install_hint,
)
from esrgan.metadata import parse_metadata
from esrgan.runtime.backends.base import Backend, BackendInfo
from esrgan.runtime.tensorrt_profile import Profile

if TYPE_CHECKING:
    import tensorrt as trt

def _trt_install_hint() -> str:
    return ("install TensorRT 10/11 and CUDA Python on a machine with an NVIDIA GPU: "
            f"pip install tensorrt cuda-python (or {install_hint('trt')})")


# ---- availability ---------------------------------------------------------------------------------


def require_tensorrt() -> None:
    """Raise DependencyError unless the real ``tensorrt`` module imports.

    Callers then ``import tensorrt as trt`` themselves, so that mypy checks every call against the stubs.

    ``tensorrt-stubs`` alone makes ``import tensorrt`` succeed as an empty namespace package, so the
    check looks for the Builder class rather than trusting the import.
    """
    try:
        import tensorrt
    except ImportError as exc:
        raise DependencyError(f"TensorRT is not installed ({exc}); {_trt_install_hint()}") from None
    except OSError as exc:  # the bindings found, but libnvinfer could not be loaded
        raise DependencyError(f"TensorRT's libraries cannot be loaded ({exc}); {_trt_install_hint()}") from None
    if not hasattr(tensorrt, "Builder"):
        raise DependencyError(f"TensorRT is not installed (only its type stubs are); {_trt_install_hint()}")
    version = str(getattr(tensorrt, "__version__", "0"))
    if not version.split(".")[0].isdigit() or int(version.split(".")[0]) < 10:
        raise DependencyError(f"TensorRT {version} is too old: 10.x or 11.x is needed; {_trt_install_hint()}")


def import_cudart() -> ModuleType:
    """CUDA Python's runtime API (``cuda.bindings.runtime``; ``cuda.cudart`` before cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[import-not-found,import-untyped,no-redef,attr-defined,unused-ignore]
        except ImportError:
            raise DependencyError(
                "CUDA Python is not installed (TensorRT needs it here for GPU buffers): pip install cuda-python"
            ) from None
    return cudart  # type: ignore[no-any-return]


def cuda_check(cudart: ModuleType, result: Any, what: str) -> Any:
    """Unpack a CUDA Python ``(err, *values)`` tuple; raise on any error (OutOfMemory for allocations)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        name = getattr(err, "name", str(err))
        if "MemoryAllocation" in name:
            raise OutOfMemoryError(f"CUDA out of memory in {what}")
        raise BackendError(f"CUDA error in {what}: {name}")
    return values[0] if len(values) == 1 else tuple(values)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.9"


def gpu_info(device_id: int = 0) -> GpuInfo:
    """Name and compute capability of a CUDA device, or DependencyError when there is none."""
    cudart = import_cudart()
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or not count:
        reason = getattr(err, "name", str(err)) if err != cudart.cudaError_t.cudaSuccess else "0 devices"
        raise DependencyError(f"no CUDA GPU is usable ({reason}); TensorRT needs an NVIDIA GPU and driver")
    if not 0 <= device_id < count:
        raise DependencyError(f"CUDA device {device_id} does not exist ({count} device(s))")
    props = cuda_check(cudart, cudart.cudaGetDeviceProperties(device_id), "cudaGetDeviceProperties")
    raw = props.name
    name = raw.split(b"\0")[0].decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return GpuInfo(name=name, compute_capability=f"{props.major}.{props.minor}")


def availability(device_id: int = 0) -> str | None:
    """None when TensorRT and a CUDA GPU are usable, else one line saying what is missing."""
    try:
        require_tensorrt()
        gpu_info(device_id)
    except DependencyError as exc:
        return str(exc)
    return None


# ---- the sidecar ------------------------------------------------------------------------------------


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    engine = Path(engine_path)
    return engine.with_name(engine.name + ".json")


# How every sidecar problem ends: the one command that writes a good engine and sidecar again.
REBUILD = "rebuild the engine with esrgan-export --build-engine MODEL_FP16.onnx"


def read_sidecar(engine_path: str | os.PathLike[str]) -> dict[str, Any]:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise ModelError(
            f"{engine_path}: its sidecar {path.name} is missing; rebuild the engine with "
            "esrgan-export --build-engine MODEL_FP16.onnx so that its TensorRT version, GPU and scale are recorded"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path}: not a readable engine sidecar ({first_line(exc)}); {REBUILD}") from None
    missing = [k for k in ("tensorrt_version", "compute_capability", "profile") if k not in data] if isinstance(data, dict) else []
    if not isinstance(data, dict) or missing:
        raise ModelError(f"{path}: engine sidecar lacks {', '.join(missing) or 'a JSON object'}; {REBUILD}")
    return data


def check_portability(sidecar: dict[str, Any], *, trt_version: str, gpu: GpuInfo, engine: str) -> list[str]:
    """Raise when the engine cannot run here; return warnings for what may still work.

    TensorRT engines are tied to the exact TensorRT version and to the GPU's compute capability
    (TensorRT documents both; version/hardware-compatible engines are not built here). A different GPU
    model with the same compute capability usually works, with lower or different performance.
    """
    built_with = str(sidecar.get("tensorrt_version"))
    if built_with != trt_version:
        raise ModelError(
            f"{engine}: engine built with TensorRT {built_with}, this machine has {trt_version}; engines are not "
            "portable across TensorRT versions: rebuild it here (esrgan-export --build-engine MODEL_FP16.onnx)"
        )
    cc = str(sidecar.get("compute_capability"))
    if cc != gpu.compute_capability:
        raise ModelError(
            f"{engine}: engine built for a GPU of compute capability {cc} ({sidecar.get('gpu_name')}), this GPU "
            f"is {gpu.compute_capability} ({gpu.name}); engines are not portable across GPUs: rebuild it here"
        )
    warnings = []
    if sidecar.get("gpu_name") and sidecar.get("gpu_name") != gpu.name:
        warnings.append(f"engine built on {sidecar.get('gpu_name')}, running on {gpu.name} (same compute capability)")
    return warnings


# ---- loading and running ------------------------------------------------------------------------------


def _dims(dims: Any) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple of ints (the stubs give Dims no __iter__)."""
    return tuple(int(dims[i]) for i in range(len(dims)))


_NUMPY_TYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BF16": None}


class TensorRTBackend(Backend):
    """A deserialised engine with one execution context, a CUDA stream and reusable device buffers."""

    def __init__(self, engine_path: str | os.PathLike[str], device_id: int = 0) -> None:
        path = Path(engine_path)
        if not path.is_file():
            raise ModelError(f"{path}: no such engine file")
        self.sidecar = read_sidecar(path)
        require_tensorrt()
        import tensorrt as trt

        self._cudart = import_cudart()
        self.gpu = gpu_info(device_id)
        self.trt_version = str(trt.__version__)
        self.warnings = check_portability(self.sidecar, trt_version=self.trt_version, gpu=self.gpu, engine=str(path))
        cuda_check(self._cudart, self._cudart.cudaSetDevice(device_id), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ModelError(f"{path}: TensorRT cannot deserialise this engine (see its log above)")
        self._engine: trt.ICudaEngine | None = engine
        self._context: trt.IExecutionContext = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path}: expected one input and one output tensor, found {inputs} and {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self._dtypes = {n: self._numpy_dtype(engine.get_tensor_dtype(n), n, path) for n in (inputs[0], outputs[0])}
        lo, opt, hi = (_dims(d) for d in engine.get_tensor_profile_shape(self.input_name, 0))
        self.profile = Profile(lo, opt, hi)  # type: ignore[arg-type]  # 4-D by construction
        self.in_channels = self.profile.max[1]
        self.scale = self._scale_from_shapes(path)
        self.precision = str(self.sidecar.get("precision", "fp16"))
        sidecar_meta = dict(self.sidecar.get("esrgan_metadata") or {})
        parsed = parse_metadata(sidecar_meta, str(path), require_scale=False)
        self.size_multiple = parsed.size_multiple
        self.size_requirements = parsed.size_requirements
        self._stream = cuda_check(self._cudart, self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self.info = self._describe(device_id)

    def _describe(self, device_id: int) -> BackendInfo:
        profile, sidecar = self.profile, self.sidecar
        extra = {
            "tensorrt_version": self.trt_version,
            "gpu": f"{self.gpu.name} (compute capability {self.gpu.compute_capability})",
            "built_with": f"TensorRT {sidecar.get('tensorrt_version')} on {sidecar.get('gpu_name')}",
            "profile": f"{profile.min} .. {profile.max} (opt {profile.opt})",
        }
        extra.update({f"warning{i}": w for i, w in enumerate(self.warnings)})
        lo, hi = profile.min, profile.max
        return BackendInfo(
            name="tensorrt", precision=self.precision, device=f"cuda:{device_id}",
            providers=(f"TensorRT {self.trt_version}",),
            min_input=(lo[0], lo[2], lo[3]), max_input=(hi[0], hi[2], hi[3]), extra=extra,
        )

    def _scale_from_shapes(self, path: Path) -> int:
        """Output/input size at the profile's minimum shape, cross-checked with the sidecar's scale."""
        if not self._context.set_input_shape(self.input_name, self.profile.min):
            raise ModelError(f"{path}: TensorRT refused the engine's own minimum shape {self.profile.min}")
        out_shape = _dims(self._context.get_tensor_shape(self.output_name))
        self.out_channels = out_shape[1] if len(out_shape) == 4 else None
        scale = out_shape[-1] // self.profile.min[-1]
        recorded = self.sidecar.get("esrgan_scale")
        if recorded and int(recorded) != scale:
            raise ModelError(f"{path}: engine upscales x{scale} but its sidecar says x{recorded}")
        return scale

    @staticmethod
    def _numpy_dtype(trt_dtype: Any, name: str, path: Path) -> Any:
        key = getattr(trt_dtype, "name", str(trt_dtype)).split(".")[-1]
        dtype = _NUMPY_TYPES.get(key)
        if dtype is None:
            raise ModelError(f"{path}: tensor {name!r} has type {key}; expected FLOAT or HALF")
        return dtype

    def _device_buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                cuda_check(self._cudart, self._cudart.cudaFree(ptr), "cudaFree")
                self._buffers.pop(name)
            ptr = int(cuda_check(self._cudart, self._cudart.cudaMalloc(nbytes), f"cudaMalloc({nbytes} bytes)"))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale an NCHW float32 batch in [0, 1]; raises OutOfMemoryError when the GPU is full."""
        if not self.profile.accepts(batch.shape):
            raise BackendError(
                f"TensorRT engine accepts inputs from {self.profile.min} to {self.profile.max}, got {batch.shape}; "
                "use tiles/batches inside that range or rebuild the engine with other --min/--max-shape"
            )
        cudart, kinds = self._cudart, self._cudart.cudaMemcpyKind
        host_in = np.ascontiguousarray(batch, dtype=self._dtypes[self.input_name])
        if not self._context.set_input_shape(self.input_name, tuple(host_in.shape)):
            raise BackendError(f"TensorRT refused input shape {host_in.shape}")
        out_shape = _dims(self._context.get_tensor_shape(self.output_name))
        host_out = np.empty(out_shape, dtype=self._dtypes[self.output_name])
        d_in = self._device_buffer(self.input_name, host_in.nbytes)
        d_out = self._device_buffer(self.output_name, host_out.nbytes)
        cuda_check(cudart, cudart.cudaMemcpyAsync(
            d_in, host_in.ctypes.data, host_in.nbytes, kinds.cudaMemcpyHostToDevice, self._stream), "copy to GPU")
        self._context.set_tensor_address(self.input_name, d_in)
        self._context.set_tensor_address(self.output_name, d_out)
        if not self._context.execute_async_v3(int(self._stream)):
            raise BackendError(f"TensorRT failed to run a {batch.shape} batch (see its log above)")
        cuda_check(cudart, cudart.cudaMemcpyAsync(
            host_out.ctypes.data, d_out, host_out.nbytes, kinds.cudaMemcpyDeviceToHost, self._stream), "copy from GPU")
        cuda_check(cudart, cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return host_out.astype(np.float32, copy=False)

    def close(self) -> None:
        """Free device buffers and the stream; drop the context and engine (TensorRT frees them)."""
        cudart = self._cudart
        for ptr, _ in self._buffers.values():
            cudart.cudaFree(ptr)
        self._buffers.clear()
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self._engine = None  # TensorRT frees the engine and its context when they are released
        if hasattr(self, "_context"):
            del self._context
