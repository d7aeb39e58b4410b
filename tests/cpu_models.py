"""Tiny ONNX models for the CPU-path tests (test_cpu_*, test_openvino_*, test_int8_*).

Exported with torch's TorchScript-based ONNX exporter, which takes a fraction of a second for a
1-block model, and stamped with the esrgan.* metadata the runtime reads.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from esrgan.models.spec import GeneratorSpec

TINY = GeneratorSpec(arch="rrdbnet", scale=4, num_feat=8, num_block=1, num_grow_ch=4)


def export_tiny_onnx(path: Path, spec: GeneratorSpec = TINY, seed: int = 0) -> Path:
    import torch

    from esrgan import metadata as meta
    from esrgan.export.onnx_metadata import update_metadata
    from esrgan.models.build import build_generator

    torch.manual_seed(seed)
    model = build_generator(spec).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.rand(1, spec.num_in_ch, 16, 16),), str(path), input_names=["input"],
            output_names=["output"], opset_version=18, dynamo=False,
            dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "oh", 3: "ow"}},
        )
    return update_metadata(path, {meta.SCALE: str(spec.scale), meta.PRECISION: "fp32", meta.SPEC: spec.to_json()})


def photo_batch(name: str = "astronaut", size: int = 32, y: int = 60, x: int = 180) -> np.ndarray:
    """A (1, 3, size, size) float32 crop of a scikit-image photograph."""
    from tests.conftest import photo

    crop = photo(name)[y : y + size, x : x + size].astype(np.float32) / 255.0
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None])
