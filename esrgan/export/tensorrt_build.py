"""Build a TensorRT engine from an FP16 ONNX file and write its JSON sidecar.

One of the two files with TensorRT calls (the other, ``esrgan.runtime.backends.tensorrt_backend``,
loads and runs engines, and owns the availability checks and the sidecar's reading): both are
type-checked in CI with mypy against ``tensorrt-stubs`` and their attribute names are checked against
the TensorRT 11 bindings. ``tensorrt`` is imported lazily, so that export works, and says what is
missing, on machines without it. The profile arithmetic lives in ``esrgan.runtime.tensorrt_profile``.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esrgan import metadata as md
from esrgan.atomic import write_atomic, write_bytes_atomic, write_text_atomic
from esrgan.errors import BackendError, ModelError, UsageError
from esrgan.hashing import model_sha256
from esrgan.runtime.backends import tensorrt_backend as trt_backend
from esrgan.runtime.backends.tensorrt_backend import GpuInfo, sidecar_path
from esrgan.runtime.tensorrt_profile import Profile, Shape, default_profile, validate_profile

if TYPE_CHECKING:
    import tensorrt as trt

SIDECAR_VERSION = 1


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
    onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str], *, min_shape: Shape | None = None,
    opt_shape: Shape | None = None, max_shape: Shape | None = None, workspace_gib: float = 4.0,
    opt_level: int = 3, timing_cache: str | os.PathLike[str] | None = None, device_id: int = 0,
) -> Path:
    """Build a TensorRT engine from ONNX, write it atomically with its JSON sidecar; return its path.

    The network is strongly typed: precision comes from the ONNX types (an FP16 ONNX gives an FP16
    engine), which is the only way in TensorRT 11 (BuilderFlag.FP16 is gone) and works in 10.x too.
    Shapes left as None come from ``default_profile`` for the ONNX input's channel count.
    """
    from esrgan.export.onnx_metadata import read_metadata  # lazy: onnx is needed only when building

    onnx_file, engine_file = Path(onnx_path), Path(engine_path)
    if not onnx_file.is_file():
        raise ModelError(f"{onnx_file}: no such ONNX file")
    if not 0 <= opt_level <= 5:
        raise UsageError(f"builder optimisation level must be 0-5, got {opt_level}")
    if workspace_gib <= 0:
        raise UsageError(f"workspace must be positive, got {workspace_gib} GiB")
    meta = read_metadata(onnx_file)
    trt_backend.require_tensorrt()
    import tensorrt as trt

    gpu = trt_backend.gpu_info(device_id)
    cudart = trt_backend.import_cudart()
    trt_backend.cuda_check(cudart, cudart.cudaSetDevice(device_id), "cudaSetDevice")

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
        "onnx_sha256": model_sha256(onnx_path),
        "esrgan_scale": int(scale) if scale and scale.isdigit() else None,
        "esrgan_metadata": {k: v for k, v in onnx_meta.items() if k.startswith(md.PREFIX)},
    }
