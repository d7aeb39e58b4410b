"""PyTorch backend: the reference path (benchmarks compare the other backends with it).

torch is imported when this backend is constructed, never when the runtime is imported: the
runtime must work where torch is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from esrgan.errors import BackendError, DependencyError, ModelError, OutOfMemoryError
from esrgan.runtime.backends.base import Backend, BackendInfo


class TorchBackend(Backend):
    """A checkpoint (.pth/.safetensors) run by PyTorch in FP32."""

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None) -> None:
        try:
            import torch
        except ImportError:
            raise DependencyError("--backend torch needs PyTorch: pip install 'esrgan[train]'") from None
        from esrgan.models.checkpoints import load_generator

        src = Path(path)
        if not src.is_file():
            raise ModelError(f"{src}: no such checkpoint")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise DependencyError("--backend torch on CUDA: no CUDA GPU is visible to PyTorch")
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.model = load_generator(src, device)
        spec = getattr(self.model, "spec")  # noqa: B009 (set by every generator class; mypy sees Module)
        self.scale = spec.scale
        self.in_channels = spec.num_in_ch
        self.size_multiple = spec.size_multiple
        self.device = device
        self.info = BackendInfo(name="torch", precision="fp32", device=device, providers=(f"torch {torch.__version__}",))

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        try:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
                return self.model(x).float().cpu().numpy()
        except torch.cuda.OutOfMemoryError:
            raise OutOfMemoryError(f"torch ran out of memory on a {batch.shape} batch") from None
        except RuntimeError as exc:
            raise BackendError(f"torch failed on a {batch.shape} batch: {str(exc).splitlines()[0]}") from None

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
