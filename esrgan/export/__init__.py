"""Export: checkpoints -> verified ONNX FP32/FP16 (and INT8, TensorRT) files, and ``esrgan-export``.

``export_artifacts`` runs the whole pipeline; its steps are usable alone. Modules: onnx_export,
fp16, int8, interpolate (network interpolation), onnx_metadata (the files' ``esrgan.*`` keys),
verify (parity against PyTorch), engine and tensorrt_build (TensorRT), pipeline, cli. Attributes
are imported lazily, so that ``import esrgan.export`` pulls in neither torch nor onnx.
"""

from __future__ import annotations

from esrgan.lazy import lazy_exports

_LAZY = {
    "export_artifacts": "esrgan.export.pipeline",
    "ExportResult": "esrgan.export.pipeline",
    "export_onnx": "esrgan.export.onnx_export",
    "convert_to_fp16": "esrgan.export.fp16",
    "quantize_int8": "esrgan.export.int8",
    "interpolate_generators": "esrgan.export.interpolate",
    "read_metadata": "esrgan.export.onnx_metadata",
    "EngineOptions": "esrgan.export.engine",
    "build_engine": "esrgan.export.engine",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
