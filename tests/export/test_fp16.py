"""FP16 conversion: FP32 I/O, parity on a real photograph, and the overflow guard."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from esrgan import metadata as meta
from esrgan.export.fp16 import FP32_NODES_KEY, convert_to_fp16, fragile_nodes, probe_activation_ranges
from esrgan.export.onnx_export import export_onnx
from esrgan.export.onnx_metadata import read_metadata
from esrgan.export.verify import verify_onnx
from esrgan.photographs import photo_crops
from tests.export.tiny import tiny_model


@pytest.mark.parametrize("kind", ["x4", "gan", "x2u"])
def test_fp16_parity_on_photograph(kind, tmp_path):
    model = tiny_model(kind)
    fp32 = export_onnx(model, tmp_path / "m.onnx", exporter="torchscript")
    fp16 = convert_to_fp16(fp32, tmp_path / "m16.onnx")
    session = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)" and session.get_outputs()[0].type == "tensor(float)"
    weights = [i for i in onnx.load(str(fp16)).graph.initializer if len(i.dims) == 4]
    assert weights and all(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
    report = verify_onnx(model, fp16, photo_crops([(21, 35), (24, 24)]), "fp16")
    assert report.passed, report.lines()
    assert report.checks[0].parity.nonfinite_fraction == 0
    props = read_metadata(fp16)
    assert props[meta.PRECISION] == "fp16" and json.loads(props[FP32_NODES_KEY]) == []
    assert props[meta.SPEC] == read_metadata(fp32)[meta.SPEC]


def _hot_model():
    """A tiny x4 model whose first upsampling conv produces activations far beyond FP16's range."""
    model = tiny_model("x4")
    with torch.no_grad():
        model.conv_up1.weight.mul_(0.0).add_(50.0)
        model.conv_up1.bias.fill_(1e5)
    return model


def test_overflowing_upsampler_is_kept_in_fp32(tmp_path):
    model = _hot_model()
    fp32 = export_onnx(model, tmp_path / "m.onnx", exporter="torchscript")
    proto = onnx.load(str(fp32))
    ranges = probe_activation_ranges(proto, photo_crops([(16, 16)]))
    assert max(ranges.values()) > 65504
    keep = fragile_nodes(proto, ranges, 65504 / 4)
    up_conv = next(n for n in proto.graph.node if n.op_type == "Conv" and any("conv_up1" in i for i in n.input))
    assert up_conv.name in keep
    fp16 = convert_to_fp16(fp32, tmp_path / "m16.onnx", probe_images=photo_crops([(16, 16)]))
    assert json.loads(read_metadata(fp16)[FP32_NODES_KEY]) == keep
    half = onnx.load(str(fp16))
    inits = {i.name: i for i in half.graph.initializer}
    kept = next(n for n in half.graph.node if n.name == up_conv.name)
    assert inits[kept.input[1]].data_type == onnx.TensorProto.FLOAT  # weights of the guarded conv stay FP32
    out = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"]).run(
        None, {"input": photo_crops([(12, 20)])[0]})[0]
    assert np.isfinite(out).all()


def test_fragile_nodes_counts_inputs_and_outputs_and_nan():
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["a"], ["b"], name="n1"), onnx.helper.make_node("Relu", ["b"], ["c"], name="n2"),
         onnx.helper.make_node("Relu", ["c"], ["d"], name="n3")],
        "g", [], [])
    proto = onnx.helper.make_model(graph)
    assert fragile_nodes(proto, {"a": 1, "b": 1e6, "c": 1, "d": 1}, 100) == ["n1", "n2"]
    assert fragile_nodes(proto, {"a": 1, "b": 1, "c": 1, "d": float("nan")}, 100) == ["n3"]
    assert fragile_nodes(proto, {"a": 1, "b": 1, "c": 1, "d": 1}, 100) == []
