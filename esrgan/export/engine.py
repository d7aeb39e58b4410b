"""The export side of TensorRT: engine options, shape parsing, and build + verify through the one
module that holds every TensorRT call (``esrgan.tensorrt_engine``, imported lazily so that export
works without TensorRT or a GPU).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esrgan.errors import DependencyError, UsageError

Shape = tuple[int, int, int, int]

# Tiles of 64-512 px, batch 1-4 (issue 5); 256 px is the runtime's usual tile.
DEFAULT_MIN = (1, 3, 64, 64)
DEFAULT_OPT = (1, 3, 256, 256)
DEFAULT_MAX = (4, 3, 512, 512)
ENGINE_NAME = "model_fp16.engine"


@dataclass(frozen=True)
class EngineOptions:
    """One optimisation profile and the builder settings (see ``esrgan.tensorrt_engine.build_engine``)."""

    min_shape: Shape = DEFAULT_MIN
    opt_shape: Shape = DEFAULT_OPT
    max_shape: Shape = DEFAULT_MAX
    workspace_gib: float = 4.0
    opt_level: int = 3
    timing_cache: Path | None = None

    def __post_init__(self) -> None:
        if not all(a <= b <= c for a, b, c in zip(self.min_shape, self.opt_shape, self.max_shape, strict=True)):
            raise UsageError(
                f"shapes must satisfy min <= opt <= max in every dimension, got min {format_shape(self.min_shape)}, "
                f"opt {format_shape(self.opt_shape)}, max {format_shape(self.max_shape)}"
            )
        if len({self.min_shape[1], self.opt_shape[1], self.max_shape[1]}) != 1:
            raise UsageError("--min-shape/--opt-shape/--max-shape must have the same channel count")
        if not 0 <= self.opt_level <= 5:
            raise UsageError(f"--builder-opt-level must be 0-5, got {self.opt_level}")
        if self.workspace_gib <= 0:
            raise UsageError(f"--workspace must be positive (GiB), got {self.workspace_gib}")

    def with_channels(self, channels: int) -> EngineOptions:
        """The same profile for a model with ``channels`` input channels (defaults assume RGB)."""
        def fix(s: Shape) -> Shape:
            return (s[0], channels, s[2], s[3])

        return EngineOptions(fix(self.min_shape), fix(self.opt_shape), fix(self.max_shape),
                             self.workspace_gib, self.opt_level, self.timing_cache)

    def cli_args(self) -> list[str]:
        args = ["--min-shape", format_shape(self.min_shape), "--opt-shape", format_shape(self.opt_shape),
                "--max-shape", format_shape(self.max_shape), "--workspace", f"{self.workspace_gib:g}",
                "--builder-opt-level", str(self.opt_level)]
        if self.timing_cache:
            args += ["--timing-cache", str(self.timing_cache)]
        return args


def parse_shape(text: str) -> Shape:
    """"1x3x256x256" -> (1, 3, 256, 256); anything else is a usage error."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) <= 0:
        raise UsageError(f"shape {text!r} is not NxCxHxW with positive integers (e.g. 1x3x256x256)")
    return dims  # type: ignore[return-value]


def format_shape(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def build_command(fp16_onnx: str | os.PathLike[str], options: EngineOptions) -> str:
    """The exact command that builds the engine later on a machine with TensorRT and a GPU."""
    return shlex.join(["esrgan-export", "--build-engine", str(fp16_onnx), *options.cli_args()])


def tensorrt_unavailable() -> str | None:
    """Why an engine cannot be built here (None when TensorRT and a CUDA GPU are both usable)."""
    try:
        from esrgan import tensorrt_engine
    except ImportError as exc:
        return f"TensorRT support cannot be loaded (esrgan.tensorrt_engine: {exc})"
    return tensorrt_engine.availability()


def build_engine(fp16_onnx: str | os.PathLike[str], options: EngineOptions, engine_path: str | os.PathLike[str] | None = None) -> Path:
    """Build ``model_fp16.engine`` next to the FP16 ONNX file (or at ``engine_path``)."""
    reason = tensorrt_unavailable()
    if reason:
        raise DependencyError(f"{reason}; build the engine on a GPU machine with: {build_command(fp16_onnx, options)}")
    from esrgan import tensorrt_engine

    dest = Path(engine_path) if engine_path else Path(fp16_onnx).with_name(ENGINE_NAME)
    return tensorrt_engine.build_engine(
        Path(fp16_onnx), dest, min_shape=options.min_shape, opt_shape=options.opt_shape,
        max_shape=options.max_shape, workspace_gib=options.workspace_gib, opt_level=options.opt_level,
        timing_cache=options.timing_cache,
    )


def engine_runner(engine_path: str | os.PathLike[str]):  # noqa: ANN201 - a Callable[[ndarray], ndarray]
    """Run the engine through the runtime's TensorRT backend (the same code users run)."""
    from esrgan.runtime.backends.registry import load_backend

    backend = load_backend(engine_path, backend="tensorrt")

    def run(x: np.ndarray) -> np.ndarray:
        return backend.run(x)

    return run
