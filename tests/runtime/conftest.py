"""Tiny models for the runtime tests: a torch-free nearest x4 graph and a tiny exported RRDBNet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_nearest_onnx(path: Path, scale: int = 4) -> Path:
    """A model that repeats each pixel scale x scale times: exact, fast, no torch needed."""
    import onnx
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "H", "W"])
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, float(scale), float(scale)])
    node = helper.make_node("Resize", ["input", "", "scales"], ["output"], mode="nearest",
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    graph = helper.make_graph([node], "nearest", [inp], [out], initializer=[scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    helper.set_model_props(model, {"esrgan.scale": str(scale), "esrgan.precision": "fp32"})
    onnx.save(model, str(path))
    return path


def export_tiny(model, path: Path) -> Path:
    """FP32 ONNX with the esrgan metadata, by torch's TorchScript exporter (TorchScript: fast for tiny models)."""
    from esrgan.export.onnx_export import export_onnx

    return export_onnx(model, path, exporter="torchscript")


@pytest.fixture(scope="session")
def nearest_onnx(tmp_path_factory) -> Path:
    return write_nearest_onnx(tmp_path_factory.mktemp("models") / "nearest_x4.onnx")


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory):
    """(checkpoint, onnx) of a tiny x4 RRDBNet (nf 8, nb 1, gc 4) with weights that use their context."""
    import torch

    from esrgan.models.build import build_generator
    from esrgan.models.checkpoints import save_generator
    from esrgan.models.spec import GeneratorSpec

    torch.manual_seed(0)
    model = build_generator(GeneratorSpec(scale=4, num_feat=8, num_block=1, num_grow_ch=4)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 4:
                # Variance-preserving weights: far context matters, as in a trained model.
                torch.nn.init.kaiming_normal_(p, a=0.2)
    folder = tmp_path_factory.mktemp("tiny")
    ckpt = save_generator(model, folder / "tiny.safetensors")
    return ckpt, export_tiny(model, folder / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model_files) -> Path:
    return tiny_model_files[1]


def loaded(path: Path) -> Image.Image:
    """The image at ``path``, read and its file closed."""
    with Image.open(path) as img:
        img.load()
    return img


def save(path: Path, arr: np.ndarray, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **params)
    return path


def gradient(h: int = 20, w: int = 28, channels: int = 3) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x * 9 + y * 3) % 256, (y * 11) % 256, ((x + y) * 7) % 256, (x * 13 + 40) % 256][:channels]
    arr = np.stack(planes, axis=-1).astype(np.uint8)
    return arr[..., 0] if channels == 1 else arr


def write_default_sidecar(folder: Path, gain: float = 0.8) -> None:
    spec = {"arch": "rrdbnet", "scale": 4, "num_feat": 32, "num_block": 2, "num_grow_ch": 16}
    held_out = {"psnr_y": 26.3, "bicubic_psnr_y": 26.3 - gain}
    (folder / "default_x4.json").write_text(json.dumps({"spec": spec, "held_out": held_out}))
