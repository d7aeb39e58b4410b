"""PyTorch references behind the runtime's ``Backend`` interface.

Every speed-up in a report is relative to PyTorch eager FP32 on the same device: that is what a
user of the original code runs. On a GPU the report also carries PyTorch FP16 with channels_last
and ``torch.compile``, so that TensorRT is compared with the best PyTorch, not the slowest. torch
is imported lazily: ``esrgan.bench`` must stay importable for listing rows without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from esrgan.errors import DependencyError, install_hint
from esrgan.runtime.backends.base import Backend, BackendInfo


class TorchBackend(Backend):
    """An eval-mode generator run eagerly (or compiled) in FP32 or FP16."""

    def __init__(
        self, model: Any, device: str = "cpu", precision: str = "fp32", channels_last: bool = False,
        compile: bool = False, threads: int | None = None,
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(self.device, self.dtype).eval()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if compile else model
        spec = model.spec
        self.scale = spec.scale
        self.in_channels = spec.num_in_ch
        variant = "compile" if compile else "eager"
        self.info = BackendInfo(
            name=f"torch-{variant}", precision=precision, device=str(self.device),
            extra={"channels_last": str(channels_last), "torch": torch.__version__},
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            x = x.to(self.dtype).contiguous(memory_format=self.memory_format)
            y = self.model(x)
            return y.float().cpu().numpy()

    def sync(self) -> None:
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        raise DependencyError(f"PyTorch is needed for the reference rows: {install_hint('export')}") from None
    return bool(torch.cuda.is_available())
