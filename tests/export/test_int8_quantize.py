"""INT8 export on a tiny model: calibrated on real photographs, run by ONNX Runtime and OpenVINO."""

from __future__ import annotations

import json

import numpy as np
import pytest

from esrgan.errors import ModelError, UsageError
from esrgan.parity import compare
from tests.cpu_models import export_tiny_onnx, photo_batch

pytest.importorskip("onnxruntime.quantization")


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("calib")
    for name in ("astronaut", "chelsea", "rocket", "coffee"):  # rocket (4th in name order) is held out
        Image.fromarray(getattr(data, name)()[100:164, 100:164, :3]).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, calib_dir):
    from esrgan.export.int8 import quantize_int8

    work = tmp_path_factory.mktemp("int8")
    fp32 = export_tiny_onnx(work / "tiny.onnx")
    out = quantize_int8(fp32, calib_dir, work / "out" / "model_int8.onnx", crop=32, crops_per_image=2, threads=1)
    return fp32, out


def test_file_is_int8_with_parity_in_metadata(quantized):
    import onnx

    fp32, out = quantized
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["esrgan.precision"] == "int8" and meta["esrgan.scale"] == "4"
    parity = json.loads(meta["esrgan.parity"])
    assert parity["held_out"] and parity["held_out"][0].endswith("rocket.png")
    assert np.isfinite(parity["psnr_db"]) and parity["psnr_db"] > 30.0
    assert parity["method"] == "minmax" and parity["calibration_crops"] == 6
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert [p.name for p in out.parent.iterdir()] == ["model_int8.onnx"]  # nothing half-written left


def test_kept_convs_stay_fp32_and_the_trunk_is_quantised(quantized):
    import onnx

    _, out = quantized
    graph = onnx.load(str(out)).graph
    producers = {o: n for n in graph.node for o in n.output}
    initializers = {i.name for i in graph.initializer}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}

    def weight_is_dequantized(node) -> bool:
        src = producers.get(node.input[1])
        return src is not None and src.op_type == "DequantizeLinear"

    kept = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["esrgan.parity"])["kept_fp32"]
    assert len(kept) == 5  # conv_first, conv_up1, conv_up2, conv_hr, conv_last
    for name in kept:
        assert convs[name].input[1] in initializers and not weight_is_dequantized(convs[name])
    trunk = [n for name, n in convs.items() if name not in kept]
    assert trunk and all(weight_is_dequantized(n) for n in trunk)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_int8_model_runs_close_to_fp32(quantized, engine, tmp_path):
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    fp32, out = quantized
    x = photo_batch("chelsea", size=24)
    ref = OnnxRuntimeBackend(fp32, threads=1).run(x)
    if engine == "openvino":
        pytest.importorskip("openvino")
        from esrgan.runtime.backends.openvino_backend import OpenVinoBackend

        backend = OpenVinoBackend(out, threads=1, cache_dir=tmp_path, mode="latency")
        assert backend.info.precision == "int8"
    else:
        backend = OnnxRuntimeBackend(out, threads=1)
    y = backend.run(x)
    assert y.shape == ref.shape
    parity = compare(ref, y)
    assert 30.0 < parity.psnr_db < 200.0  # close, and not a silent FP32 copy


def test_bad_inputs_are_user_errors(quantized, tmp_path, calib_dir):
    from esrgan.export.int8 import quantize_int8

    fp32, out = quantized
    with pytest.raises(UsageError):
        quantize_int8(fp32, calib_dir, tmp_path / "x.onnx", method="kl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError):
        quantize_int8(fp32, tmp_path / "empty", tmp_path / "x.onnx")
    with pytest.raises(ModelError):
        quantize_int8(out, calib_dir, tmp_path / "x.onnx")  # already INT8


def test_a_grey_model_is_calibrated_on_grey_photographs(tmp_path, calib_dir):
    """The calibration fed RGB crops to any model: a 1-channel one ended in ONNX Runtime's traceback."""
    from esrgan.export.int8 import quantize_int8
    from esrgan.models.spec import GeneratorSpec

    grey = GeneratorSpec(scale=2, num_feat=8, num_block=1, num_grow_ch=4, num_in_ch=1, num_out_ch=1)
    fp32 = export_tiny_onnx(tmp_path / "grey.onnx", grey)
    out = quantize_int8(fp32, calib_dir, tmp_path / "grey_int8.onnx", crop=32, crops_per_image=2, threads=1)
    assert out.is_file()
