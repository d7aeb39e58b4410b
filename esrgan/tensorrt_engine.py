"""Every TensorRT API call of the project: build an engine from ONNX, write its sidecar, load and run it.

Why one module: TensorRT cannot be installed where CI runs (its libraries download from NVIDIA's index
only), so the calls are kept in one file that CI type-checks with mypy against ``tensorrt-stubs`` and
whose attribute names a test checks against the TensorRT 11 bindings. Both ``tensorrt`` and the CUDA
runtime are imported lazily; this module never imports torch, so the runtime can use it.

Device memory and streams use CUDA Python (``cuda-python``, the ``trt`` extra): TensorRT's Python API
does not allocate user buffers, and the runtime must not need torch just to copy arrays to the GPU.

Engines are not portable: an engine runs only with the TensorRT version that built it and on a GPU of
the same compute capability. The JSON sidecar written next to each engine records both, and
``check_portability`` turns a mismatch into one clear line instead of a deserialisation failure.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from esrgan import metadata as md
from esrgan.atomic import write_atomic, write_bytes_atomic, write_text_atomic
from esrgan.errors import BackendError, DependencyError, ModelError, OutOfMemoryError, UsageError
from esrgan.hashing import file_sha256
from esrgan.runtime.tiling import DEFAULT_TILE_PAD as RUNTIME_TILE_PAD

if TYPE_CHECKING:
    import tensorrt as trt

Shape = tuple[int, int, int, int]
SIDECAR_VERSION = 1
TRT_INSTALL_HINT = (
    "install TensorRT 10/11 and CUDA Python on a machine with an NVIDIA GPU: "
    "pip install tensorrt cuda-python (or pip install \"esrgan[trt]\")"
)

# Default profile: the runtime's tiles are 64-512 px plus tile_pad on each side, batches of 1-4.
DEFAULT_TILE_MIN, DEFAULT_TILE_OPT, DEFAULT_TILE_MAX = 64, 256, 512
DEFAULT_TILE_PAD = RUNTIME_TILE_PAD  # the runtime's pad, so its windows always fit the default profile
DEFAULT_BATCH_MIN, DEFAULT_BATCH_OPT, DEFAULT_BATCH_MAX = 1, 4, 4


# ---- optimisation profile: pure functions ---------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """One TensorRT optimisation profile for the NCHW input: the shapes the engine accepts."""

    min: Shape
    opt: Shape
    max: Shape

    def accepts(self, shape: Sequence[int]) -> bool:
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True))

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def default_profile(
    channels: int = 3, *, tile_min: int = DEFAULT_TILE_MIN, tile_opt: int = DEFAULT_TILE_OPT,
    tile_max: int = DEFAULT_TILE_MAX, tile_pad: int = DEFAULT_TILE_PAD, batch_min: int = DEFAULT_BATCH_MIN,
    batch_opt: int = DEFAULT_BATCH_OPT, batch_max: int = DEFAULT_BATCH_MAX, multiple: int = 1,
) -> Profile:
    """Shapes for the runtime's tiles: the smallest tile alone, up to the largest padded tile x batch_max.

    ``min`` has no padding (an image smaller than a tile is one tile of its own size, padded up to the
    minimum by the runtime); ``opt``/``max`` include ``tile_pad`` on both sides. Sizes are rounded up to
    ``multiple`` (the model's pixel-unshuffle factor) so every accepted size is valid for the network.
    """
    def side(tile: int, pad: int) -> int:
        return _round_up(tile + 2 * pad, multiple)

    return validate_profile(Profile(
        min=(batch_min, channels, _round_up(tile_min, multiple), _round_up(tile_min, multiple)),
        opt=(batch_opt, channels, side(tile_opt, tile_pad), side(tile_opt, tile_pad)),
        max=(batch_max, channels, side(tile_max, tile_pad), side(tile_max, tile_pad)),
    ))


def parse_shape(text: str) -> Shape:
    """``"4x3x532x532"`` -> (4, 3, 532, 532); what --min-shape/--opt-shape/--max-shape take."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"shape {text!r}: expected NxCxHxW with integers, e.g. 1x3x64x64") from None
    if len(dims) != 4 or min(dims) <= 0:
        raise UsageError(f"shape {text!r}: expected four positive integers NxCxHxW, e.g. 1x3x64x64")
    return dims  # type: ignore[return-value]


def validate_profile(profile: Profile) -> Profile:
    """min <= opt <= max in every dimension and one channel count, or one line saying which differs."""
    names = ("N", "C", "H", "W")
    for shape in (profile.min, profile.opt, profile.max):
        if len(shape) != 4 or min(shape) <= 0:
            raise UsageError(f"profile shape {shape}: expected four positive integers NxCxHxW")
    for i, name in enumerate(names):
        lo, mid, hi = profile.min[i], profile.opt[i], profile.max[i]
        if not lo <= mid <= hi:
            raise UsageError(f"profile dimension {name}: need min <= opt <= max, got {lo}, {mid}, {hi}")
    if profile.min[1] != profile.max[1]:
        raise UsageError(f"profile channels differ: min {profile.min[1]}, max {profile.max[1]}")
    return profile


# ---- availability ---------------------------------------------------------------------------------


def _require_tensorrt() -> None:
    """Raise DependencyError unless the real ``tensorrt`` module imports.

    Callers then ``import tensorrt as trt`` themselves, so that mypy checks every call against the stubs.

    ``tensorrt-stubs`` alone makes ``import tensorrt`` succeed as an empty namespace package, so the
    check looks for the Builder class rather than trusting the import.
    """
    try:
        import tensorrt
    except ImportError as exc:
        raise DependencyError(f"TensorRT is not installed ({exc}); {TRT_INSTALL_HINT}") from None
    except OSError as exc:  # the bindings found, but libnvinfer could not be loaded
        raise DependencyError(f"TensorRT's libraries cannot be loaded ({exc}); {TRT_INSTALL_HINT}") from None
    if not hasattr(tensorrt, "Builder"):
        raise DependencyError(f"TensorRT is not installed (only its type stubs are); {TRT_INSTALL_HINT}")
    version = str(getattr(tensorrt, "__version__", "0"))
    if not version.split(".")[0].isdigit() or int(version.split(".")[0]) < 10:
        raise DependencyError(f"TensorRT {version} is too old: 10.x or 11.x is needed; {TRT_INSTALL_HINT}")


def _import_cudart() -> ModuleType:
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


def _check(cudart: ModuleType, result: Any, what: str) -> Any:
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
    cudart = _import_cudart()
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or not count:
        reason = getattr(err, "name", str(err)) if err != cudart.cudaError_t.cudaSuccess else "0 devices"
        raise DependencyError(f"no CUDA GPU is usable ({reason}); TensorRT needs an NVIDIA GPU and driver")
    if not 0 <= device_id < count:
        raise DependencyError(f"CUDA device {device_id} does not exist ({count} device(s))")
    props = _check(cudart, cudart.cudaGetDeviceProperties(device_id), "cudaGetDeviceProperties")
    raw = props.name
    name = raw.split(b"\0")[0].decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return GpuInfo(name=name, compute_capability=f"{props.major}.{props.minor}")


def availability(device_id: int = 0) -> str | None:
    """None when TensorRT and a CUDA GPU are usable, else one line saying what is missing."""
    try:
        _require_tensorrt()
        gpu_info(device_id)
    except DependencyError as exc:
        return str(exc)
    return None


# ---- building ---------------------------------------------------------------------------------------


def sidecar_path(engine_path: str | Path) -> Path:
    engine = Path(engine_path)
    return engine.with_name(engine.name + ".json")


def read_onnx_metadata(onnx_path: Path) -> dict[str, str]:
    """The ONNX file's metadata_props (esrgan.scale, esrgan.precision, ...), without loading weights."""
    try:
        import onnx
    except ImportError:
        return {}
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{onnx_path}: not a readable ONNX file ({str(exc).splitlines()[0]})") from None
    return {p.key: p.value for p in model.metadata_props}


def _parser_errors(parser: trt.OnnxParser) -> list[str]:
    """Each parser error with the ONNX node it concerns (index, name, operator)."""
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        where = f"node {err.node()}"
        if err.node_name():
            where += f" {err.node_name()!r}"
        if err.node_operator():
            where += f" ({err.node_operator()})"
        lines.append(f"{where}: {err.desc()}")
    return lines




def build_engine(
    onnx_path: str | Path, engine_path: str | Path, *, min_shape: Shape | None = None,
    opt_shape: Shape | None = None, max_shape: Shape | None = None, workspace_gib: float = 4.0,
    opt_level: int = 3, timing_cache: str | Path | None = None, device_id: int = 0,
) -> Path:
    """Build a TensorRT engine from ONNX, write it atomically with its JSON sidecar; return its path.

    The network is strongly typed: precision comes from the ONNX types (an FP16 ONNX gives an FP16
    engine), which is the only way in TensorRT 11 (BuilderFlag.FP16 is gone) and works in 10.x too.
    Shapes left as None come from ``default_profile`` for the ONNX input's channel count.
    """
    onnx_file, engine_file = Path(onnx_path), Path(engine_path)
    if not onnx_file.is_file():
        raise ModelError(f"{onnx_file}: no such ONNX file")
    if not 0 <= opt_level <= 5:
        raise UsageError(f"builder optimisation level must be 0-5, got {opt_level}")
    if workspace_gib <= 0:
        raise UsageError(f"workspace must be positive, got {workspace_gib} GiB")
    meta = read_onnx_metadata(onnx_file)
    _require_tensorrt()
    import tensorrt as trt

    gpu = gpu_info(device_id)
    cudart = _import_cudart()
    _check(cudart, cudart.cudaSetDevice(device_id), "cudaSetDevice")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        errors = _parser_errors(parser) or ["no details from the parser"]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ModelError(f"{onnx_file}: TensorRT cannot parse it: {errors[0]}{more}")
    if network.num_inputs != 1:
        raise ModelError(f"{onnx_file}: expected one input, found {network.num_inputs}")
    net_input = network.get_input(0)
    channels = int(net_input.shape[1]) if int(net_input.shape[1]) > 0 else 3
    default = default_profile(channels)
    profile = validate_profile(Profile(min_shape or default.min, opt_shape or default.opt, max_shape or default.max))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    config.builder_optimization_level = opt_level
    cache_file = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_file.read_bytes() if cache_file and cache_file.is_file() else b""
    config.set_timing_cache(config.create_timing_cache(cache_bytes), False)
    trt_profile = builder.create_optimization_profile()
    trt_profile.set_shape(net_input.name, trt.Dims(list(profile.min)), trt.Dims(list(profile.opt)),
                          trt.Dims(list(profile.max)))
    config.add_optimization_profile(trt_profile)

    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - started
    if serialized is None:
        raise BackendError(f"{onnx_file}: TensorRT could not build an engine (see its log above)")
    with write_atomic(engine_file) as tmp:
        tmp.write_bytes(bytes(memoryview(serialized)))
    if cache_file is not None:
        write_bytes_atomic(cache_file, bytes(memoryview(config.get_timing_cache().serialize())))

    sidecar = make_sidecar(
        trt_version=str(trt.__version__), gpu=gpu, profile=profile, input_name=str(net_input.name),
        onnx_path=onnx_file, onnx_meta=meta, build_seconds=seconds, workspace_gib=workspace_gib,
        opt_level=opt_level,
    )
    write_text_atomic(sidecar_path(engine_file), json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return engine_file


def make_sidecar(
    *, trt_version: str, gpu: GpuInfo, profile: Profile, input_name: str, onnx_path: Path,
    onnx_meta: dict[str, str], build_seconds: float, workspace_gib: float, opt_level: int,
) -> dict[str, Any]:
    """What an engine needs next to it: what built it, for which GPU, which shapes, which model."""
    scale = onnx_meta.get(md.SCALE)
    return {
        "sidecar_version": SIDECAR_VERSION,
        "tensorrt_version": trt_version,
        "gpu_name": gpu.name,
        "compute_capability": gpu.compute_capability,
        "input_name": input_name,
        "profile": profile.to_dict(),
        "precision": onnx_meta.get(md.PRECISION, "from the ONNX types (strongly typed network)"),
        "strongly_typed": True,
        "workspace_gib": workspace_gib,
        "builder_optimization_level": opt_level,
        "build_seconds": round(build_seconds, 3),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "onnx_file": onnx_path.name,
        "onnx_sha256": file_sha256(onnx_path),
        "esrgan_scale": int(scale) if scale and scale.isdigit() else None,
        "esrgan_metadata": {k: v for k, v in onnx_meta.items() if k.startswith(md.PREFIX)},
    }


# ---- loading and running ------------------------------------------------------------------------------


def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise ModelError(
            f"{engine_path}: its sidecar {path.name} is missing; rebuild the engine with "
            "esrgan-export --build-engine MODEL_FP16.onnx so that its TensorRT version, GPU and scale are recorded"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a readable engine sidecar ({exc})") from None
    missing = [k for k in ("tensorrt_version", "compute_capability", "profile") if k not in data] if isinstance(data, dict) else []
    if not isinstance(data, dict) or missing:
        raise ModelError(f"{path}: engine sidecar lacks {', '.join(missing) or 'a JSON object'}")
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


def _dims(dims: Any) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple of ints (the stubs give Dims no __iter__)."""
    return tuple(int(dims[i]) for i in range(len(dims)))


_NUMPY_TYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BF16": None}


class EngineRunner:
    """A deserialised engine with one execution context, a CUDA stream and reusable device buffers."""

    def __init__(self, engine_path: str | Path, device_id: int = 0) -> None:
        path = Path(engine_path)
        if not path.is_file():
            raise ModelError(f"{path}: no such engine file")
        self.sidecar = read_sidecar(path)
        _require_tensorrt()
        import tensorrt as trt

        self._cudart = _import_cudart()
        self.gpu = gpu_info(device_id)
        self.trt_version = str(trt.__version__)
        self.warnings = check_portability(self.sidecar, trt_version=self.trt_version, gpu=self.gpu, engine=str(path))
        _check(self._cudart, self._cudart.cudaSetDevice(device_id), "cudaSetDevice")
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
        self._stream = _check(self._cudart, self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)

    def _scale_from_shapes(self, path: Path) -> int:
        """Output/input size at the profile's minimum shape, cross-checked with the sidecar's scale."""
        if not self._context.set_input_shape(self.input_name, self.profile.min):
            raise ModelError(f"{path}: TensorRT refused the engine's own minimum shape {self.profile.min}")
        out_w = _dims(self._context.get_tensor_shape(self.output_name))[-1]
        scale = out_w // self.profile.min[-1]
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
                _check(self._cudart, self._cudart.cudaFree(ptr), "cudaFree")
                self._buffers.pop(name)
            ptr = int(_check(self._cudart, self._cudart.cudaMalloc(nbytes), f"cudaMalloc({nbytes} bytes)"))
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
        _check(cudart, cudart.cudaMemcpyAsync(
            d_in, host_in.ctypes.data, host_in.nbytes, kinds.cudaMemcpyHostToDevice, self._stream), "copy to GPU")
        self._context.set_tensor_address(self.input_name, d_in)
        self._context.set_tensor_address(self.output_name, d_out)
        if not self._context.execute_async_v3(int(self._stream)):
            raise BackendError(f"TensorRT failed to run a {batch.shape} batch (see its log above)")
        _check(cudart, cudart.cudaMemcpyAsync(
            host_out.ctypes.data, d_out, host_out.nbytes, kinds.cudaMemcpyDeviceToHost, self._stream), "copy from GPU")
        _check(cudart, cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
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
        del self._context
