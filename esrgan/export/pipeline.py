"""Checkpoints -> verified deployable artefacts: what ``esrgan-export``, the runtime's on-the-fly
export and the benchmarks all call.

Steps: load (and interpolate) -> model.safetensors -> model.onnx (FP32) -> model_fp16.onnx ->
model_int8.onnx (when calibration images are given) -> verify each against PyTorch -> record the
figures in each file's metadata -> optionally a TensorRT engine. Nothing is deleted when a check
fails: the files stay for inspection and a VerificationError names the artefact and its figure.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from esrgan import metadata as meta
from esrgan.elapsed import heartbeat
from esrgan.errors import DependencyError, UsageError, VerificationError
from esrgan.export.engine import (
    EngineOptions,
    build_command,
    build_engine,
    engine_runner,
    tensorrt_unavailable,
)
from esrgan.export.fp16 import convert_to_fp16
from esrgan.export.interpolate import interpolate_generators, resolve_alpha
from esrgan.export.onnx_export import export_onnx
from esrgan.export.onnx_metadata import read_metadata, update_metadata
from esrgan.export.options import ExportOptions
from esrgan.export.verify import (
    ParityReport,
    check_outputs,
    torch_reference,
    verification_inputs,
    verify_onnx,
)
from esrgan.hashing import file_sha256
from esrgan.models.build import spec_of
from esrgan.models.checkpoints import load_generator, save_generator
from esrgan.models.spec import AnySpec

CHECKPOINT_NAME = "model.safetensors"
FP32_NAME = "model.onnx"
FP16_NAME = "model_fp16.onnx"
INT8_NAME = meta.int8_companion(Path(FP32_NAME)).name  # model_int8.onnx

Progress = Callable[[str], None]


@dataclass
class ExportResult:
    """Paths of what was written, the parity report and the time each step took (seconds)."""

    out_dir: Path
    spec: AnySpec
    alpha: float | None
    checkpoint: Path
    onnx_fp32: Path
    onnx_fp16: Path | None = None
    onnx_int8: Path | None = None
    engine: Path | None = None
    report: ParityReport | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return self.report is not None and self.report.passed

    def artifacts(self) -> list[Path]:
        return [p for p in (self.checkpoint, self.onnx_fp32, self.onnx_fp16, self.onnx_int8, self.engine) if p]


def export_artifacts(
    gan_ckpt: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    psnr_ckpt: str | os.PathLike[str] | None = ExportOptions.psnr_ckpt,
    alpha: float | None = ExportOptions.alpha,
    fp16: bool = ExportOptions.fp16,
    verify: bool = ExportOptions.verify,
    opset: int = ExportOptions.opset,
    exporter: str = ExportOptions.exporter,
    int8_calib: str | os.PathLike[str] | None = ExportOptions.int8_calib,
    engine: EngineOptions | None = ExportOptions.engine,
    images: Sequence[np.ndarray] | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Write and verify every artefact in ``out_dir``.

    The keywords are ``ExportOptions``' fields, with its defaults (``esrgan-export``'s). With
    ``psnr_ckpt`` and no ``alpha`` the model is interpolated at ``DEFAULT_ALPHA`` (0.8), as the CLI
    does with ``--psnr``; without ``psnr_ckpt`` the GAN weights are exported as they are.
    Raises VerificationError (after writing everything) when an artefact fails its check, and
    DependencyError when ``engine`` is asked for where TensorRT or a GPU is missing (the ONNX
    files are then already written and verified; the message says how to build the engine later).
    """
    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    alpha = resolve_alpha(alpha, psnr_ckpt is not None)
    if engine is not None and not fp16:
        raise UsageError("--trt builds the engine from the FP16 ONNX file: drop --no-fp16")
    if engine is not None and (reason := tensorrt_unavailable()):
        # Said before minutes of export, not after: what will be written, and how this run ends.
        state = "written and verified" if verify else "written"
        say(f"{reason}: the ONNX files will be {state}, then the engine step stops (exit 2) with the "
            "command that builds it on a machine with TensorRT and a CUDA GPU")
    timings: dict[str, float] = {}

    with _step("load", timings, say, "loading checkpoints"):
        model, sources = load_models(gan_ckpt, psnr_ckpt, alpha)
    spec = spec_of(model)
    used_alpha = alpha if psnr_ckpt is not None else None
    props = {meta.ALPHA: "" if used_alpha is None else f"{used_alpha:g}", meta.SOURCE_SHA256: json.dumps(sources)}

    with _step("checkpoint", timings, say, f"writing {CHECKPOINT_NAME}"):
        ckpt = save_generator(model, out / CHECKPOINT_NAME, metadata=props)
    with _step("onnx_fp32", timings, say, f"exporting {FP32_NAME} ({exporter}, opset {opset})"):
        fp32 = export_onnx(model, out / FP32_NAME, opset=opset, exporter=exporter, metadata=props)
    result = ExportResult(out, spec, used_alpha, ckpt, fp32, timings=timings)
    if fp16:
        with _step("onnx_fp16", timings, say, f"converting to {FP16_NAME} (probing activations on photographs)"):
            result.onnx_fp16 = convert_to_fp16(fp32, out / FP16_NAME)
    if int8_calib is not None:
        from esrgan.export.int8 import quantize_int8

        with _step("onnx_int8", timings, say, f"quantising to {INT8_NAME} (calibrating on {int8_calib})"):
            result.onnx_int8 = quantize_int8(fp32, int8_calib, out / INT8_NAME)

    if verify:
        result.report = verify_artifacts(model, result, images, say, timings)
        raise_if_failed(result.report, out)
    if engine is not None:
        result.engine = _engine_step(model, result, engine, images if verify else None, say, timings)
    return result


def load_models(
    gan_ckpt: str | os.PathLike[str], psnr_ckpt: str | os.PathLike[str] | None, alpha: float
) -> tuple[nn.Module, dict[str, str]]:
    """The model to export (interpolated when a PSNR checkpoint is given) and its sources' sha256."""
    gan = load_generator(gan_ckpt)
    sources = {"gan": file_sha256(gan_ckpt)}
    if psnr_ckpt is None:
        return gan, sources
    psnr = load_generator(psnr_ckpt)
    sources["psnr"] = file_sha256(psnr_ckpt)
    return interpolate_generators(psnr, gan, alpha), sources


def verify_artifacts(
    model: nn.Module, result: ExportResult, images: Sequence[np.ndarray] | None, say: Progress,
    timings: dict[str, float],
) -> ParityReport:
    """Verify each ONNX artefact and write its figures into its metadata."""
    report = ParityReport()
    targets = [(result.onnx_fp32, "fp32"), (result.onnx_fp16, "fp16"), (result.onnx_int8, "int8")]
    for path, precision in targets:
        if path is None:
            continue
        with _step(f"verify_{precision}", timings, say, f"verifying {path.name} against PyTorch"):
            checks = verify_onnx(model, path, images, precision)
        for line in checks.lines():
            say(f"  {line}")
        update_metadata(path, {meta.PARITY: json.dumps(merged_parity(read_metadata(path), checks))})
        report.extend(checks)
    return report


def merged_parity(props: dict[str, str], checks: ParityReport) -> dict:
    """The file's esrgan.parity with this verification's per-device figures added.

    The INT8 quantiser already stores its own figure (vs FP32 on held-out photographs) as top-level
    keys; per-device entries ("cpu", "cuda") sit next to them instead of replacing them.
    """
    try:
        existing = json.loads(props.get(meta.PARITY, "") or "{}")
    except json.JSONDecodeError:
        existing = {}
    return {**(existing if isinstance(existing, dict) else {}), **checks.figures()}


def raise_if_failed(report: ParityReport, out: Path) -> None:
    if report.passed:
        return
    failed = "; ".join(c.line() for c in report.failures)
    raise VerificationError(failed, kept=out)


def _engine_step(
    model: nn.Module, result: ExportResult, options: EngineOptions, images: Sequence[np.ndarray] | None,
    say: Progress, timings: dict[str, float],
) -> Path:
    assert result.onnx_fp16 is not None  # export_artifacts refuses --trt with --no-fp16 up front
    options = options.resolved(result.spec)
    reason = tensorrt_unavailable()
    if reason:
        state = "written and verified" if result.report is not None else "written (not verified)"
        raise DependencyError(
            f"{reason}: the ONNX files in {result.out_dir} are {state}; build the engine later on a machine "
            f"with TensorRT and a CUDA GPU: {build_command(result.onnx_fp16, options)}"
        )
    with _step("engine", timings, say, "building the TensorRT engine (minutes)"):
        path = build_engine(result.onnx_fp16, options)
    if result.report is not None:
        with _step("verify_engine", timings, say, f"verifying {path.name} on the GPU against PyTorch"):
            check = verify_engine(model, path, images)
        say(f"  {check.line()}")
        result.report.checks.append(check)
        raise_if_failed(result.report, result.out_dir)
    return path


def verify_engine(model: nn.Module, engine_path: Path, images: Sequence[np.ndarray] | None):  # noqa: ANN201
    """The engine's FP16 output against FP32 PyTorch (PSNR >= 45 dB, no non-finite value)."""
    inputs = verification_inputs(model, images)
    refs = torch_reference(model, inputs)
    return check_outputs(engine_path.name, "fp16", "tensorrt", inputs, refs, engine_runner(engine_path))


@contextlib.contextmanager
def _step(key: str, timings: dict[str, float], say: Progress, message: str) -> Iterator[None]:
    """Announce a step, time it, and store the seconds under ``key``; a step that takes long says every
    few seconds that it still runs (an exporter prints nothing for up to a minute)."""
    say(f"{message}...")
    start = time.perf_counter()
    try:
        with heartbeat(say, message):
            yield
    finally:
        timings[key] = time.perf_counter() - start
