"""ONNX Runtime backend (CPU provider; GPU providers are added by the runtime issue)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from esrgan.errors import BackendError, DependencyError, ModelError
from esrgan.metadata import parse_metadata
from esrgan.runtime.backends.base import Backend, BackendInfo


class OnnxRuntimeBackend(Backend):
    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DependencyError("onnxruntime is not installed: pip install onnxruntime") from None
        src = Path(path)
        if not src.is_file():
            raise ModelError(f"{src}: no such model file")
        opts = ort.SessionOptions()
        # ORT_ENABLE_ALL adds the NCHWc layout transforms that make the convolutions fast on CPU.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{src}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
        meta = parse_metadata(dict(self.session.get_modelmeta().custom_metadata_map), str(src))
        self.scale = meta.scale
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.in_channels = int(inp.shape[1]) if isinstance(inp.shape[1], int) else 3
        self.info = BackendInfo(
            name="onnxruntime-cpu", precision=meta.precision, device="cpu",
            providers=tuple(self.session.get_providers()),
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            (out,) = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        except Exception as exc:
            raise BackendError(f"ONNX Runtime failed on a {batch.shape} batch: {str(exc).splitlines()[0]}") from None
        return out
