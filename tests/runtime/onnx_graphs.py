"""Small ONNX graphs built with onnx.helper, as third parties export them: no esrgan.* metadata.

Torch-free. Used by the ONNX Runtime and the OpenVINO backend tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _save(nodes, path: Path, initializers=(), props: dict[str, str] | None = None, io=True,
          in_shape=("n", 3, "h", "w"), out_shape=("n", 3, "H", "W")) -> Path:
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_shape))] if io else []
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(out_shape))] if io else []
    graph = helper.make_graph(nodes, "graph", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    if props:
        helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


def _resize(scale: int, out: str = "output"):
    from onnx import TensorProto, helper

    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, float(scale), float(scale)])
    node = helper.make_node("Resize", ["input", "", "scales"], [out], mode="nearest",
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return node, scales


def resize_model(path: Path, scale: int = 2, props: dict[str, str] | None = None) -> Path:
    """Nearest-neighbour upscale by ``scale``, with no metadata unless ``props`` are given."""
    node, scales = _resize(scale)
    return _save([node], path, [scales], props)


def fixed_size_model(path: Path, size: tuple[int, int] = (64, 64), scale: int = 2) -> Path:
    """Nearest upscale whose input is fixed at 1x3xHxW, as some third-party exports are."""
    node, scales = _resize(scale)
    h, w = size
    return _save([node], path, [scales], in_shape=(1, 3, h, w), out_shape=(1, 3, h * scale, w * scale))


def depth_to_space_model(path: Path, scale: int = 2) -> Path:
    """A sub-pixel SR graph (1x1 conv to 3*s*s channels, DepthToSpace): nearest upscale, no Resize op."""
    from onnx import helper, numpy_helper

    weight = np.zeros((3 * scale * scale, 3, 1, 1), np.float32)
    for c in range(3):
        weight[c * scale * scale : (c + 1) * scale * scale, c] = 1.0  # CRD mode: channel-major blocks
    conv = helper.make_node("Conv", ["input", "w"], ["features"])
    d2s = helper.make_node("DepthToSpace", ["features"], ["output"], blocksize=scale, mode="CRD")
    return _save([conv, d2s], path, [numpy_helper.from_array(weight, "w")])


def broken_model(path: Path, kind: str, scale: int = 4) -> Path:
    """An upscaler with the esrgan metadata whose output is all NaN (``nan``: the square root of a
    negative number, which every backend computes as NaN) or one value (``constant``)."""
    from onnx import TensorProto, helper

    node, scales = _resize(scale, "up")
    if kind == "nan":
        one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
        nodes = [helper.make_node("Neg", ["up"], ["neg"]), helper.make_node("Sub", ["neg", "one"], ["below"]),
                 helper.make_node("Sqrt", ["below"], ["output"])]
        consts = [one]
    else:
        zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
        half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
        nodes = [helper.make_node("Mul", ["up", "zero"], ["zeroed"]), helper.make_node("Add", ["zeroed", "half"], ["output"])]
        consts = [zero, half]
    props = {"esrgan.scale": str(scale), "esrgan.precision": "fp32"}
    return _save([node, *nodes], path, [scales, *consts], props)


def empty_model(path: Path) -> Path:
    """A valid ONNX file whose graph has no nodes, inputs or outputs."""
    return _save([], path, io=False)
