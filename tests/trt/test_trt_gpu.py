"""A real TensorRT engine, built and run on a GPU (skipped, with its reason, everywhere else).

The ONNX graph is tiny and written with onnx.helper (no torch): FP32 input, Cast to FP16, nearest
Resize x2, Cast back to FP32, the boundary casts an FP16 export has. A strongly typed network then
computes in FP16 and the output must equal numpy's nearest-neighbour upsampling exactly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from esrgan.export import tensorrt_build as trt_build
from esrgan.runtime.backends import tensorrt_backend as trt_backend

pytestmark = pytest.mark.gpu


@pytest.fixture
def fp16_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    nodes = [
        helper.make_node("Cast", ["input"], ["x16"], to=TensorProto.FLOAT16),
        helper.make_node("Resize", ["x16", "", "scales"], ["y16"], mode="nearest"),
        helper.make_node("Cast", ["y16"], ["output"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes, "up2", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H2", "W2"])], [scales],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"esrgan.scale": "2", "esrgan.precision": "fp16"})
    path = tmp_path / "up2_fp16.onnx"
    onnx.save(model, str(path))
    return path


def test_real_engine_builds_and_runs(fp16_onnx, tmp_path):
    reason = trt_backend.availability()
    if reason:
        pytest.skip(reason)
    from esrgan.runtime.backends.tensorrt_backend import TensorRTBackend

    engine = trt_build.build_engine(fp16_onnx, tmp_path / "up2.engine", min_shape=(1, 3, 8, 8),
                             opt_shape=(2, 3, 32, 32), max_shape=(4, 3, 64, 64),
                             timing_cache=tmp_path / "timing.cache", workspace_gib=1.0)
    side = json.loads(trt_backend.sidecar_path(engine).read_text())
    assert side["esrgan_scale"] == 2 and side["precision"] == "fp16"
    assert (tmp_path / "timing.cache").stat().st_size > 0
    with TensorRTBackend(engine) as backend:
        assert backend.scale == 2
        x = np.random.default_rng(0).random((3, 3, 17, 40), dtype=np.float32)
        out = backend.run(x)
    expected = x.astype(np.float16).astype(np.float32).repeat(2, 2).repeat(2, 3)
    np.testing.assert_array_equal(out, expected)
