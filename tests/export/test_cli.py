"""esrgan-export end to end on tiny checkpoints (torchscript exporter: fast on the shared CPUs)."""

import json
import sys
import types

import onnx
import pytest
import torch
from click.testing import CliRunner

from esrgan import metadata as meta
from esrgan.export import cli, engine, pipeline
from esrgan.export.onnx_metadata import read_metadata, set_props
from esrgan.hashing import file_sha256
from esrgan.models.checkpoints import load_generator, save_generator
from tests.export.tiny import tiny_model


def _error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    save_generator(tiny_model("x4", seed=1), d / "psnr.safetensors")
    save_generator(tiny_model("x4", seed=2), d / "gan.safetensors")
    save_generator(tiny_model("x2u", seed=3), d / "other.safetensors")
    return d


@pytest.fixture(scope="module")
def trt_missing_run(ckpts, tmp_path_factory):
    """--psnr --gan --alpha 0.8 --trt on a machine without TensorRT: the README's export command."""
    out = tmp_path_factory.mktemp("out")
    torch.set_num_threads(1)
    args = ["--psnr", str(ckpts / "psnr.safetensors"), "--gan", str(ckpts / "gan.safetensors"), "--alpha", "0.8",
            "-o", str(out), "--trt", "--exporter", "torchscript"]
    return CliRunner().invoke(cli.main, args), out


def test_no_gpu_trt_path_writes_and_verifies_onnx_then_exits_2(trt_missing_run):
    result, out = trt_missing_run
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result)
    assert "TensorRT" in line and "esrgan-export --build-engine" in line and "model_fp16.onnx" in line
    assert "verified" in line
    assert "Traceback" not in result.output
    for name in ("model.safetensors", "model.onnx", "model_fp16.onnx"):
        assert (out / name).is_file()
    assert not (out / "model_fp16.engine").exists()


def test_interpolated_checkpoint_and_metadata(trt_missing_run, ckpts):
    _, out = trt_missing_run
    psnr = load_generator(ckpts / "psnr.safetensors").state_dict()
    gan = load_generator(ckpts / "gan.safetensors").state_dict()
    mixed = load_generator(out / "model.safetensors").state_dict()
    for key in ("conv_first.weight", "conv_last.bias"):
        torch.testing.assert_close(mixed[key], 0.2 * psnr[key] + 0.8 * gan[key])
    for name, precision in (("model.onnx", "fp32"), ("model_fp16.onnx", "fp16")):
        props = read_metadata(out / name)
        assert props[meta.PRECISION] == precision and props[meta.ALPHA] == "0.8" and props[meta.SCALE] == "4"
        assert json.loads(props[meta.SOURCE_SHA256]) == {
            "gan": file_sha256(ckpts / "gan.safetensors"), "psnr": file_sha256(ckpts / "psnr.safetensors")}
        parity = json.loads(props[meta.PARITY])["cpu"]
        assert parity["passed"] is True and "x" in parity["shapes"]
        if precision == "fp32":
            assert parity["max_abs_err"] <= 1e-4
        else:
            assert parity["psnr_db"] >= 45 and parity["nonfinite_fraction"] == 0


def test_progress_and_figures_are_reported(trt_missing_run):
    result, _ = trt_missing_run
    lines = result.stderr.splitlines()
    # that TensorRT is missing is said first, before minutes of export, with how the run will end
    assert "TensorRT" in lines[0] and "ONNX files will be written and verified" in lines[0], lines[:2]
    assert "exit 2" in lines[0] and "loading checkpoints" in lines[1]
    assert "model.onnx [fp32, cpu]: max abs err" in result.stderr
    assert "model_fp16.onnx [fp16, cpu]: max abs err" in result.stderr and "PSNR" in result.stderr


def test_broken_artefact_fails_verification_and_keeps_files(ckpts, tmp_path, monkeypatch):
    real = pipeline.convert_to_fp16

    def broken_fp16(src, dst, **kw):
        path = real(src, dst, **kw)
        proto = onnx.load(str(path))
        init = next(i for i in proto.graph.initializer if i.name == "conv_last.bias")
        arr = onnx.numpy_helper.to_array(init) + 0.05
        init.CopyFrom(onnx.numpy_helper.from_array(arr.astype(arr.dtype), init.name))
        onnx.save(proto, str(path))
        return path

    monkeypatch.setattr(pipeline, "convert_to_fp16", broken_fp16)
    result = CliRunner().invoke(cli.main, ["--gan", str(ckpts / "gan.safetensors"), "-o", str(tmp_path),
                                           "--exporter", "torchscript", "-q"])
    assert result.exit_code == 1, result.output
    (line,) = _error_lines(result)
    assert "model_fp16.onnx" in line and "PSNR 2" in line and "FAILED" in line and "model.onnx [" not in line
    assert (tmp_path / "model_fp16.onnx").is_file() and (tmp_path / "model.onnx").is_file()


def test_trt_path_with_fake_tensorrt(ckpts, tmp_path, monkeypatch):
    calls = {}

    def build_engine(onnx_path, engine_path, *, min_shape, opt_shape, max_shape, workspace_gib=4.0, opt_level=3,
                     timing_cache=None):
        calls.update(onnx=onnx_path, min=min_shape, opt=opt_shape, max=max_shape, ws=workspace_gib, lvl=opt_level,
                     cache=timing_cache)
        engine_path.write_bytes(b"engine")
        return engine_path

    monkeypatch.setattr(engine.tensorrt_backend, "availability", lambda: None)
    monkeypatch.setattr(engine.tensorrt_build, "build_engine", build_engine)
    import onnxruntime as ort

    def runner(engine_path):  # the engine stands in for the FP16 ONNX it was built from
        s = ort.InferenceSession(str(engine_path.with_name("model_fp16.onnx")), providers=["CPUExecutionProvider"])
        return lambda x: s.run(None, {"input": x})[0]

    monkeypatch.setattr(pipeline, "engine_runner", runner)
    result = CliRunner().invoke(cli.main, [
        "--gan", str(ckpts / "gan.safetensors"), "-o", str(tmp_path), "--exporter", "torchscript", "--trt",
        "--min-shape", "1x3x32x32", "--opt-shape", "2x3x128x96", "--max-shape", "4x3x256x256", "--workspace", "2",
        "--builder-opt-level", "5", "--timing-cache", str(tmp_path / "cache.bin")])
    assert result.exit_code == 0, result.output
    assert calls == dict(onnx=tmp_path / "model_fp16.onnx", min=(1, 3, 32, 32), opt=(2, 3, 128, 96),
                         max=(4, 3, 256, 256), ws=2.0, lvl=5, cache=tmp_path / "cache.bin")
    assert "model_fp16.engine [fp16, tensorrt]: max abs err" in result.stderr
    assert str(tmp_path / "model_fp16.engine") in result.stdout


def test_build_engine_later_without_tensorrt(trt_missing_run):
    _, out = trt_missing_run
    result = CliRunner().invoke(cli.main, ["--build-engine", str(out / "model_fp16.onnx")])
    assert result.exit_code == 2
    (line,) = _error_lines(result)
    assert "TensorRT" in line and "esrgan-export --build-engine" in line
    assert "building" not in result.stderr  # refused before announcing minutes of work
    wrong = CliRunner().invoke(cli.main, ["--build-engine", str(out / "model.onnx")])
    assert wrong.exit_code == 2 and "FP16" in _error_lines(wrong)[0]


def test_int8_calls_the_quantiser(ckpts, tmp_path, monkeypatch):
    seen = {}

    def quantize_int8(fp32_onnx_path, calib_dir, out_path):
        seen.update(src=fp32_onnx_path, calib=calib_dir)
        proto = onnx.load(str(fp32_onnx_path))
        set_props(proto, {meta.PRECISION: "int8", meta.PARITY: json.dumps({"psnr_db": 41.0, "method": "minmax"})})
        onnx.save(proto, str(out_path))
        return out_path

    fake = types.ModuleType("esrgan.export.int8")
    fake.quantize_int8 = quantize_int8
    monkeypatch.setitem(sys.modules, "esrgan.export.int8", fake)
    calib = tmp_path / "calib"
    calib.mkdir()
    result = CliRunner().invoke(cli.main, ["--gan", str(ckpts / "gan.safetensors"), "-o", str(tmp_path / "o"),
                                           "--exporter", "torchscript", "--no-fp16", "--int8", "--calib", str(calib)])
    assert result.exit_code == 0, result.output
    assert seen == {"src": tmp_path / "o" / "model.onnx", "calib": str(calib)}
    assert "model_int8.onnx [int8, cpu]" in result.stderr
    parity = json.loads(read_metadata(tmp_path / "o" / "model_int8.onnx")[meta.PARITY])
    assert parity["method"] == "minmax" and parity["psnr_db"] == 41.0  # the quantiser's own figure is kept
    assert parity["cpu"]["passed"] is True


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--alpha", "1.5"], "[0, 1]"),
        (["--psnr", "{other}"], "different architectures"),
        (["--int8"], "--calib"),
        (["--min-shape", "1x3x64"], "NxCxHxW"),
        (["--min-shape", "1x3x64x64"], "--max-shape"),
        (["--min-shape", "1x3x600x600", "--opt-shape", "1x3x64x64", "--max-shape", "1x3x600x600"], "min <= opt <= max"),
        (["--opset", "11"], "opset"),
        (["--trt", "--no-fp16"], "--no-fp16"),
    ],
)
def test_usage_errors_are_one_line(ckpts, tmp_path, args, expected):
    args = [a.format(other=ckpts / "other.safetensors") for a in args]
    result = CliRunner().invoke(cli.main, ["--gan", str(ckpts / "gan.safetensors"), "-o", str(tmp_path), *args, "-q"])
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result)
    assert expected in line and "Traceback" not in result.output


def test_inspect_and_missing_arguments(ckpts):
    result = CliRunner().invoke(cli.main, ["--inspect", str(ckpts / "gan.safetensors")])
    assert result.exit_code == 0 and "rrdbnet x4 nf8 nb1 gc4" in result.stdout
    assert CliRunner().invoke(cli.main, []).exit_code == 2
