"""The one interface every inference backend implements.

The tiler and the pipeline only ever see ``Backend``: load a model file, run an NCHW float32
batch in [0, 1], report what it is. Keeping it this small is what lets ONNX Runtime, OpenVINO,
TensorRT and PyTorch be swapped without the rest of the runtime knowing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class BackendInfo:
    """What a loaded backend reports about itself (shown to users, written into reports)."""

    name: str  # e.g. "onnxruntime-cpu", "openvino", "tensorrt", "torch"
    precision: str  # "fp32" | "fp16" | "bf16" | "int8"
    device: str  # "cpu", "cuda:0", ...
    providers: tuple[str, ...] = ()  # what actually runs (ONNX Runtime execution providers, ...)
    # Largest input the model/engine accepts, (N, H, W); None where any size works.
    max_input: tuple[int, int, int] | None = None
    min_input: tuple[int, int, int] | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Backend(ABC):
    """A loaded model that upscales NCHW float32 batches.

    Subclasses set ``scale``, ``in_channels`` and ``info`` when they load.
    """

    scale: int
    in_channels: int
    info: BackendInfo

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale ``batch`` (N, C, H, W float32 in [0, 1]) to (N, C_out, H*scale, W*scale) float32.

        Raises ``esrgan.errors.OutOfMemoryError`` when the device cannot fit the batch, so that the
        caller can retry with smaller tiles, and ``BackendError`` for any other failure.
        """

    def close(self) -> None:
        """Release device memory and sessions; the backend is unusable afterwards."""
        return None  # most backends free everything when garbage-collected

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
