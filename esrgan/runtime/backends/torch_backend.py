"""PyTorch backend: the reference path (benchmarks and export verification compare the others with it).

One class for every place PyTorch runs a generator: ``esrgan-run --backend torch`` on a checkpoint,
the benchmark's reference rows (eager FP32, and on a GPU FP16 channels_last and ``torch.compile``, so
that TensorRT is compared with the best PyTorch, not the slowest) and the FP32 output every exported
artefact is judged against. torch is imported when this backend is constructed, never when the
runtime is imported: the runtime must work where torch is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from esrgan.errors import (
    BackendError,
    DependencyError,
    ModelError,
    OutOfMemoryError,
    UsageError,
    first_line,
    install_hint,
)
from esrgan.runtime.backends.base import Backend, BackendInfo

PRECISIONS = ("fp32", "fp16", "bf16")


def import_torch(device: str = "cpu") -> Any:
    """The torch module, or the one-line DependencyError saying why it cannot run on ``device``."""
    try:
        import torch
    except ImportError:
        raise DependencyError(f"--backend torch needs PyTorch: {install_hint('train')}") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DependencyError("--backend torch on CUDA: no CUDA GPU is visible to PyTorch")
    return torch


class TorchBackend(Backend):
    """A generator run by PyTorch: ``source`` is a checkpoint (.pth/.safetensors) or a built generator.

    ``precision``: fp32; fp16 (weights and activations in FP16); bf16 (FP32 weights under
    ``torch.autocast``, which is how PyTorch runs BF16 on a CPU). ``threads`` is applied before every
    run, because torch's thread count is per process and another backend may have changed it.
    A generator passed in is moved to ``device`` and ``precision`` in place (``nn.Module.to``).
    """

    def __init__(
        self, source: str | os.PathLike[str] | Any, device: str = "cpu", threads: int | None = None, *,
        precision: str = "fp32", channels_last: bool = False, compile: bool = False,
    ) -> None:
        if precision not in PRECISIONS:
            raise UsageError(f"torch precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        torch = import_torch(device)
        if isinstance(source, (str, os.PathLike)):
            from esrgan.models.checkpoints import load_generator

            src = Path(source)
            if not src.is_file():
                raise ModelError(f"{src}: no such checkpoint")
            source = load_generator(src, device)
        self._torch = torch
        self.threads = threads
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.autocast = precision == "bf16"
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = source.to(self.device, self.dtype).eval()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if compile else model
        spec = getattr(model, "spec")  # noqa: B009 (set by every generator class; mypy sees Module)
        self.scale = spec.scale
        self.in_channels = spec.num_in_ch
        self.out_channels = spec.num_out_ch
        self.size_multiple = spec.size_multiple
        self.size_requirements = spec.size_requirements
        self.info = BackendInfo(
            name="torch-compile" if compile else "torch", precision=precision, device=str(self.device),
            providers=(f"torch {torch.__version__}",), extra={"channels_last": "True"} if channels_last else {},
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        if self.threads and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
                # A copy: some networks scale their input in place (RCAN: x *= rgb_range), which must
                # not change the caller's array (verification runs the same array through every backend).
                x = torch.from_numpy(np.array(batch, dtype=np.float32)).to(self.device)
                x = x.to(self.dtype).contiguous(memory_format=self.memory_format)
                return self.model(x).float().cpu().numpy()
        except torch.cuda.OutOfMemoryError:
            raise OutOfMemoryError(f"torch ran out of memory on a {batch.shape} batch") from None
        except RuntimeError as exc:
            raise BackendError(f"torch failed on a {batch.shape} batch: {first_line(exc)}") from None

    def sync(self) -> None:
        """Wait for queued GPU work (a timer calls this before it stops the clock)."""
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
