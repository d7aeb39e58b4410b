"""Prove an exported artefact against the PyTorch model it came from.

Every ONNX file is run by the runtime's ONNX Runtime backend on the CPU (and on CUDA when the
installed ONNX Runtime has a working CUDA provider) on crops of real photographs at two or more
sizes, one of them odd and non-square, and compared with the FP32 output of the runtime's PyTorch
backend using ``esrgan.parity``: the artefact is checked the way the runtime will run it.

What a CPU check of an FP16 file proves: ONNX Runtime's CPU provider has no FP16 Conv kernels on
x86, so it inserts casts and runs every node in FP32 with the FP16-rounded weights (measured with
ORT 1.32: the optimised graph keeps only the input cast; activations never pass through FP16).
The CPU figure therefore covers weight rounding and graph correctness, not FP16 accumulation or
activation overflow; the overflow guard (esrgan.export.fp16's activation probe) and the CUDA /
TensorRT checks on a GPU cover the rest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from esrgan.errors import ModelError
from esrgan.models.build import spec_of
from esrgan.parity import Parity, compare, passes, threshold_text, worst
from esrgan.photographs import photo_crops, to_nchw

# Odd non-square and even square, small enough for a paper-size model on 2 CPU cores.
DEFAULT_SIZES = ((37, 53), (48, 48))

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ArtifactCheck:
    """One artefact on one device: the worst figures over all input sizes."""

    artifact: str
    precision: str
    device: str
    shapes: tuple[tuple[int, ...], ...]
    parity: Parity
    passed: bool

    def line(self) -> str:
        verdict = "ok" if self.passed else f"FAILED (needs {threshold_text(self.precision)})"
        sizes = ", ".join("x".join(map(str, s)) for s in self.shapes)
        return f"{self.artifact} [{self.precision}, {self.device}]: {self.parity} on {sizes}: {verdict}"


@dataclass
class ParityReport:
    checks: list[ArtifactCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[ArtifactCheck]:
        return [c for c in self.checks if not c.passed]

    def extend(self, other: ParityReport) -> ParityReport:
        self.checks.extend(other.checks)
        return self

    def lines(self) -> list[str]:
        return [c.line() for c in self.checks]

    def figures(self, artifact: str | None = None) -> dict[str, dict[str, float | str | bool]]:
        """JSON-ready figures per device, for the artefact's metadata (``esrgan.parity``)."""
        return {
            c.device: {**c.parity.to_dict(), "passed": c.passed, "shapes": ";".join("x".join(map(str, s)) for s in c.shapes)}
            for c in self.checks if artifact is None or c.artifact == artifact
        }


def verify_images(channels: int = 3, sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES) -> list[np.ndarray]:
    """The default verification inputs: NCHW float32 crops of different photographs."""
    return photo_crops(sizes, channels)


def verification_inputs(model: nn.Module, images: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    """NCHW inputs for ``model``: ``images`` converted, else ``verify_images`` at the default sizes
    grown to what the network accepts (a multiple of its window, square...)."""
    spec = spec_of(model)
    if images:
        return [to_nchw(im, spec.num_in_ch) for im in images]
    return verify_images(spec.num_in_ch, [spec.size_requirements.fit(h, w) for h, w in DEFAULT_SIZES])


def verify_onnx(
    model: nn.Module,
    onnx_path: str | os.PathLike[str],
    images: Sequence[np.ndarray] | None,
    precision: str,
    *,
    devices: Sequence[str] | None = None,
) -> ParityReport:
    """Compare ``onnx_path`` run by ONNX Runtime with ``model`` (FP32 PyTorch) on each image.

    ``images``: HxWxC uint8 or NCHW float arrays; None uses ``verify_images()``. ``devices``:
    subset of ("cpu", "cuda"); default: CPU, plus CUDA when it works here.
    """
    inputs = verification_inputs(model, images)
    references = torch_reference(model, inputs)
    report = ParityReport()
    for device in devices or available_devices():
        run = _ort_runner(onnx_path, device)
        report.checks.append(check_outputs(Path(onnx_path).name, precision, device, inputs, references, run))
    return report


def torch_reference(model: nn.Module, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """FP32 PyTorch outputs (on the model's device): the reference every artefact is judged against."""
    from esrgan.runtime.backends.torch_backend import TorchBackend

    reference = TorchBackend(model, device=str(next(model.parameters()).device))
    return [reference.run(x) for x in inputs]


def check_outputs(
    artifact: str, precision: str, device: str, inputs: Sequence[np.ndarray], references: Sequence[np.ndarray],
    run: Runner,
) -> ArtifactCheck:
    """Run ``run`` on every input and judge the worst figures against ``precision``'s threshold."""
    parities = []
    for x, ref in zip(inputs, references, strict=True):
        out = np.asarray(run(x))
        if out.shape != ref.shape:
            raise ModelError(f"{artifact}: output shape {out.shape} for input {x.shape}, expected {ref.shape}")
        parities.append(compare(ref, out))
    overall = worst(parities)
    return ArtifactCheck(artifact, precision, device, tuple(x.shape for x in inputs), overall, passes(overall, precision))


def available_devices() -> list[str]:
    """"cpu", plus "cuda" when ONNX Runtime's CUDA provider is installed and a GPU answers."""
    import onnxruntime as ort

    devices = ["cpu"]
    if "CUDAExecutionProvider" in ort.get_available_providers() and _cuda_device_count() > 0:
        devices.append("cuda")
    return devices


def _cuda_device_count() -> int:
    import torch

    try:
        return torch.cuda.device_count()
    except Exception:  # a broken driver must not break a CPU export
        return 0


def _ort_runner(path: str | os.PathLike[str], device: str) -> Runner:
    """The runtime's ONNX Runtime backend on ``device``; a silent fall-back to the CPU is an error here."""
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(path, kind="onnxruntime-cuda" if device == "cuda" else "onnxruntime-cpu", warn=False)
    if backend.fallback_message:
        running = backend.info.providers[0]
        backend.close()
        raise ModelError(f"{path}: ONNX Runtime fell back from CUDAExecutionProvider to {running}")
    return backend.run
