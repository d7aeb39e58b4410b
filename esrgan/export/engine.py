"""The export side of TensorRT: engine options, the build-later command, build and verify.

The TensorRT calls live in ``esrgan.export.tensorrt_build`` (build) and
``esrgan.runtime.backends.tensorrt_backend`` (availability, load, run), the profile arithmetic in
``esrgan.runtime.tensorrt_profile``; this module only decides what to ask them for, so export works,
and says what is missing, on machines without TensorRT or a GPU.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from esrgan.errors import DependencyError, UsageError
from esrgan.export import tensorrt_build
from esrgan.models.spec import AnySpec
from esrgan.runtime.backends import tensorrt_backend
from esrgan.runtime.tensorrt_profile import Profile, Shape, default_profile, validate_profile

ENGINE_NAME = "model_fp16.engine"


@dataclass(frozen=True)
class EngineOptions:
    """Builder settings; shapes left None come from ``default_profile`` for the model being built."""

    min_shape: Shape | None = None
    opt_shape: Shape | None = None
    max_shape: Shape | None = None
    workspace_gib: float = 4.0
    opt_level: int = 3
    timing_cache: Path | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.opt_level <= 5:
            raise UsageError(f"--builder-opt-level must be 0-5, got {self.opt_level}")
        if self.workspace_gib <= 0:
            raise UsageError(f"--workspace must be positive (GiB), got {self.workspace_gib}")
        given = [s for s in (self.min_shape, self.opt_shape, self.max_shape) if s is not None]
        if given and len(given) != 3:
            raise UsageError("give all of --min-shape, --opt-shape and --max-shape, or none (defaults: runtime tiles)")
        if given:
            validate_profile(Profile(*given))  # type: ignore[arg-type]

    def resolved(self, spec: AnySpec) -> EngineOptions:
        """Concrete shapes: the defaults follow the model's channels and pixel-unshuffle multiple."""
        if self.min_shape is not None:
            if self.min_shape[1] != spec.num_in_ch:
                raise UsageError(f"profile shapes have {self.min_shape[1]} channels, the model takes {spec.num_in_ch}")
            return self
        profile = default_profile(spec.num_in_ch, multiple=spec.size_multiple)
        return replace(self, min_shape=profile.min, opt_shape=profile.opt, max_shape=profile.max)

    def cli_args(self) -> list[str]:
        args = []
        for flag, shape in (("--min-shape", self.min_shape), ("--opt-shape", self.opt_shape), ("--max-shape", self.max_shape)):
            if shape is not None:
                args += [flag, format_shape(shape)]
        args += ["--workspace", f"{self.workspace_gib:g}", "--builder-opt-level", str(self.opt_level)]
        if self.timing_cache:
            args += ["--timing-cache", str(self.timing_cache)]
        return args


def format_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def build_command(fp16_onnx: str | os.PathLike[str], options: EngineOptions) -> str:
    """The exact command that builds the engine later on a machine with TensorRT and a GPU."""
    return shlex.join(["esrgan-export", "--build-engine", str(fp16_onnx), *options.cli_args()])


def tensorrt_unavailable() -> str | None:
    """Why an engine cannot be built here (None when TensorRT and a CUDA GPU are both usable)."""
    return tensorrt_backend.availability()


def build_engine(fp16_onnx: str | os.PathLike[str], options: EngineOptions,
                 engine_path: str | os.PathLike[str] | None = None) -> Path:
    """Build ``model_fp16.engine`` (+ JSON sidecar) next to the FP16 ONNX file, or at ``engine_path``."""
    reason = tensorrt_unavailable()
    if reason:
        raise DependencyError(f"{reason}; build the engine on a GPU machine with: {build_command(fp16_onnx, options)}")
    dest = Path(engine_path) if engine_path else Path(fp16_onnx).with_name(ENGINE_NAME)
    return tensorrt_build.build_engine(
        Path(fp16_onnx), dest, min_shape=options.min_shape, opt_shape=options.opt_shape,
        max_shape=options.max_shape, workspace_gib=options.workspace_gib, opt_level=options.opt_level,
        timing_cache=options.timing_cache,
    )


def engine_runner(engine_path: str | os.PathLike[str]) -> Callable[[np.ndarray], np.ndarray]:
    """Run an engine on NCHW float32 batches (the runtime's own TensorRT backend)."""
    return tensorrt_backend.TensorRTBackend(Path(engine_path)).run
