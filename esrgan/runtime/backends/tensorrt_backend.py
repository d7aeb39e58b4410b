"""TensorRT backend: runs a serialized engine built by ``esrgan.tensorrt_engine.build_engine``.

All TensorRT and CUDA calls live in ``esrgan.tensorrt_engine`` (one module, type-checked in CI);
this class only adapts its ``EngineRunner`` to the ``Backend`` interface. Loading checks the
engine's JSON sidecar against the TensorRT version and GPU here, because an engine built elsewhere
either fails to deserialise or, worse, is refused with an obscure message.
"""

from __future__ import annotations

import os

import numpy as np

from esrgan.metadata import parse_metadata
from esrgan.runtime.backends.base import Backend, BackendInfo


class TensorRTBackend(Backend):
    def __init__(self, engine_path: str | os.PathLike[str], device_id: int = 0) -> None:
        from esrgan.tensorrt_engine import EngineRunner  # lazy: tensorrt and CUDA Python are optional

        self._runner = EngineRunner(engine_path, device_id=device_id)
        runner = self._runner
        self.scale = runner.scale
        self.in_channels = runner.in_channels
        sidecar_meta = dict(runner.sidecar.get("esrgan_metadata") or {})
        self.size_multiple = parse_metadata(sidecar_meta, str(engine_path), require_scale=False).size_multiple
        extra = {
            "tensorrt_version": runner.trt_version,
            "gpu": f"{runner.gpu.name} (compute capability {runner.gpu.compute_capability})",
            "built_with": f"TensorRT {runner.sidecar.get('tensorrt_version')} on {runner.sidecar.get('gpu_name')}",
            "profile": f"{runner.profile.min} .. {runner.profile.max} (opt {runner.profile.opt})",
        }
        extra.update({f"warning{i}": w for i, w in enumerate(runner.warnings)})
        lo, hi = runner.profile.min, runner.profile.max
        self.info = BackendInfo(
            name="tensorrt", precision=runner.precision, device=f"cuda:{device_id}",
            providers=(f"TensorRT {runner.trt_version}",),
            min_input=(lo[0], lo[2], lo[3]), max_input=(hi[0], hi[2], hi[3]), extra=extra,
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._runner.run(batch)

    def close(self) -> None:
        self._runner.close()
