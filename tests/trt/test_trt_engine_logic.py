"""The logic around TensorRT, without TensorRT or a GPU: fake modules stand in for both."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from esrgan.errors import BackendError, DependencyError, ModelError, OutOfMemoryError, UsageError
from esrgan.export import tensorrt_build as trt_build
from esrgan.runtime import tensorrt_profile as profiles
from esrgan.runtime.backends import tensorrt_backend as trt_backend
from tests.trt.fake_trt import FakeCudart, FakeTensorRT


@pytest.fixture
def fakes(monkeypatch):
    trt, cudart = FakeTensorRT(), FakeCudart()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_backend, "import_cudart", lambda: cudart)
    return trt, cudart


@pytest.fixture
def onnx_file(tmp_path):
    """A real (tiny) ONNX file carrying the metadata export writes."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H", "W"])],
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, {"esrgan.scale": "4", "esrgan.precision": "fp16", "other": "x"})
    path = tmp_path / "model_fp16.onnx"
    onnx.save(model, str(path))
    return path


# ---- profile shapes ---------------------------------------------------------------------------------


def test_default_profile_covers_runtime_tiles_and_batches():
    p = profiles.default_profile()
    assert p.min == (1, 3, 64, 64)
    assert p.opt == (4, 3, 320, 320)  # 256 px tile + the runtime's 32 px pad each side
    assert p.max == (4, 3, 576, 576)
    assert p.accepts((2, 3, 64, 576)) and not p.accepts((5, 3, 64, 64)) and not p.accepts((1, 3, 63, 64))


def test_default_profile_rounds_to_the_models_size_multiple():
    p = profiles.default_profile(channels=1, tile_min=30, tile_max=100, tile_opt=50, tile_pad=3, multiple=4)
    assert p.min == (1, 1, 32, 32) and p.opt[2] == 56 and p.max[2] == 108
    assert all(s % 4 == 0 for shape in (p.min, p.opt, p.max) for s in shape[2:])


def test_parse_shape():
    assert profiles.parse_shape("4x3x532x532") == (4, 3, 532, 532)
    for bad in ("4x3x532", "4x3xAx5", "0x3x64x64", ""):
        with pytest.raises(UsageError, match="NxCxHxW"):
            profiles.parse_shape(bad)


def test_validate_profile_names_the_dimension():
    with pytest.raises(UsageError, match="dimension H: need min <= opt <= max, got 64, 32, 128"):
        profiles.validate_profile(profiles.Profile((1, 3, 64, 64), (1, 3, 32, 64), (1, 3, 128, 128)))


# ---- availability -----------------------------------------------------------------------------------


def test_availability_without_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import raises ImportError
    reason = trt_backend.availability()
    assert reason and reason.startswith("TensorRT is not installed") and "pip install" in reason


def test_availability_with_only_the_type_stubs(monkeypatch):
    import types

    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # what tensorrt-stubs gives
    assert "only its type stubs" in trt_backend.availability()


def test_availability_without_gpu(monkeypatch, fakes):
    fakes[1].devices = 0
    reason = trt_backend.availability()
    assert reason.startswith("no CUDA GPU is usable") and "cudaErrorInsufficientDriver" in reason
    assert "\n" not in reason


def test_availability_with_old_tensorrt(fakes):
    fakes[0].__version__ = "8.6.1"
    assert trt_backend.availability().startswith("TensorRT 8.6.1 is too old: 10.x or 11.x is needed")


def test_modules_do_not_import_torch_onnx_or_tensorrt():
    import subprocess

    code = ("import sys, esrgan.export.tensorrt_build, esrgan.runtime.backends.tensorrt_backend; "
            "assert not {'torch', 'onnx', 'tensorrt'} & set(sys.modules), 'torch, onnx or tensorrt imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_availability_ok(fakes):
    assert trt_backend.availability() is None


def test_availability_on_this_machine_is_one_line():
    reason = trt_backend.availability()
    assert reason is None or (reason and "\n" not in reason)


# ---- building ----------------------------------------------------------------------------------------


def test_build_engine_settings_and_sidecar(fakes, onnx_file, tmp_path):
    trt, _ = fakes
    engine = tmp_path / "out" / "model_fp16.engine"
    cache = tmp_path / "timing.cache"
    result = trt_build.build_engine(onnx_file, engine, workspace_gib=2.0, opt_level=5, timing_cache=cache)
    assert result == engine and engine.read_bytes().startswith(b"ENGINE")
    assert trt.calls["network_flags"] == 1 << 1  # strongly typed, nothing else
    assert trt.calls["pool"] == (trt.MemoryPoolType.WORKSPACE, 2 * 2**30)
    assert trt.calls["opt_level"] == 5
    assert trt.calls["profile"]["max"] == (4, 3, 576, 576)
    assert cache.read_bytes() == b"+"  # timing cache written ...
    trt_build.build_engine(onnx_file, engine, timing_cache=cache)
    assert trt.calls["timing_cache_in"] == b"+"  # ... and read back on the next build
    side = json.loads(trt_backend.sidecar_path(engine).read_text())
    assert side["tensorrt_version"] == "11.4.0.106"
    assert side["gpu_name"] == "NVIDIA H200" and side["compute_capability"] == "9.0"
    assert side["profile"] == {"min": [1, 3, 64, 64], "opt": [4, 3, 320, 320], "max": [4, 3, 576, 576]}
    assert side["precision"] == "fp16" and side["esrgan_scale"] == 4 and side["strongly_typed"] is True
    assert side["esrgan_metadata"] == {"esrgan.scale": "4", "esrgan.precision": "fp16"}
    assert side["build_seconds"] >= 0 and side["onnx_file"] == "model_fp16.onnx" and len(side["onnx_sha256"]) == 64
    assert not [p for p in engine.parent.iterdir() if p.name.endswith(".tmp")]


def test_build_engine_explicit_shapes(fakes, onnx_file, tmp_path):
    trt_build.build_engine(onnx_file, tmp_path / "e.engine", min_shape=(1, 3, 32, 32), opt_shape=(2, 3, 64, 64),
                    max_shape=(2, 3, 128, 128))
    assert fakes[0].calls["profile"] == {"name": "input", "min": (1, 3, 32, 32), "opt": (2, 3, 64, 64),
                                         "max": (2, 3, 128, 128)}


def test_parser_errors_name_the_node(fakes, onnx_file, tmp_path):
    fakes[0].parse_errors = [(7, "/body/Conv_3", "Conv", "unsupported dtype"), (9, "x", "Add", "other")]
    with pytest.raises(ModelError) as err:
        trt_build.build_engine(onnx_file, tmp_path / "e.engine")
    assert "node 7 '/body/Conv_3' (Conv): unsupported dtype (and 1 more)" in str(err.value)
    assert not (tmp_path / "e.engine").exists()


def test_build_errors(fakes, onnx_file, tmp_path):
    with pytest.raises(UsageError, match="0-5"):
        trt_build.build_engine(onnx_file, tmp_path / "e.engine", opt_level=6)
    with pytest.raises(ModelError, match="no such ONNX file"):
        trt_build.build_engine(tmp_path / "missing.onnx", tmp_path / "e.engine")
    fakes[1].devices = 0
    with pytest.raises(DependencyError, match="no CUDA GPU"):
        trt_build.build_engine(onnx_file, tmp_path / "e.engine")


# ---- portability and loading ------------------------------------------------------------------------


def _sidecar(**over):
    side = {"tensorrt_version": "11.4.0.106", "gpu_name": "NVIDIA H200", "compute_capability": "9.0",
            "profile": {}, "esrgan_scale": 4}
    side.update(over)
    return side


def test_portability_checks():
    here = trt_backend.GpuInfo("NVIDIA H200", "9.0")
    with pytest.raises(ModelError, match=r"built with TensorRT 10\.13\.0, this machine has 11\.4\.0\.106.*rebuild"):
        trt_backend.check_portability(_sidecar(tensorrt_version="10.13.0"), trt_version="11.4.0.106", gpu=here, engine="e")
    with pytest.raises(ModelError, match=r"compute capability 8\.9 .*this GPU is 9\.0"):
        trt_backend.check_portability(_sidecar(compute_capability="8.9"), trt_version="11.4.0.106", gpu=here, engine="e")
    warnings = trt_backend.check_portability(_sidecar(gpu_name="NVIDIA H100"), trt_version="11.4.0.106", gpu=here, engine="e")
    assert warnings == ["engine built on NVIDIA H100, running on NVIDIA H200 (same compute capability)"]


def test_missing_or_broken_sidecar(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE{}")
    with pytest.raises(ModelError, match="sidecar m.engine.json is missing"):
        trt_backend.read_sidecar(engine)
    trt_backend.sidecar_path(engine).write_text("{")
    with pytest.raises(ModelError, match="not a readable engine sidecar"):
        trt_backend.read_sidecar(engine)


@pytest.mark.parametrize("text", ["{bad", "[]", "{}", '{"profile": 1}', "[" * 100_000, b"\xff\xfe"])
def test_every_sidecar_problem_names_the_rebuild_command(tmp_path, text):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ENGINE{}")
    side = trt_backend.sidecar_path(engine)
    side.write_bytes(text) if isinstance(text, bytes) else side.write_text(text)
    with pytest.raises(ModelError) as err:
        trt_backend.read_sidecar(engine)
    msg = str(err.value)
    assert "\n" not in msg and msg.endswith("esrgan-export --build-engine MODEL_FP16.onnx"), msg


@pytest.fixture
def built_engine(fakes, onnx_file, tmp_path):
    engine = tmp_path / "model_fp16.engine"
    trt_build.build_engine(onnx_file, engine, min_shape=(1, 3, 8, 8), opt_shape=(2, 3, 16, 16), max_shape=(2, 3, 32, 32))
    return engine


def test_backend_runs_the_engine(built_engine, fakes):
    from esrgan.runtime.backends.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(built_engine)
    assert backend.scale == 4 and backend.in_channels == 3
    assert backend.info.name == "tensorrt" and backend.info.precision == "fp16" and backend.info.device == "cuda:0"
    assert backend.info.max_input == (2, 32, 32) and backend.info.min_input == (1, 8, 8)
    x = np.random.default_rng(0).random((2, 3, 9, 13), dtype=np.float32)
    out = backend.run(x)
    assert out.dtype == np.float32 and out.shape == (2, 3, 36, 52)
    np.testing.assert_array_equal(out, x.repeat(4, 2).repeat(4, 3))
    with pytest.raises(BackendError, match=r"accepts inputs from \(1, 3, 8, 8\) to \(2, 3, 32, 32\)"):
        backend.run(np.zeros((3, 3, 8, 8), np.float32))
    backend.close()
    assert fakes[1].memory == {} and fakes[1].streams == 0


def test_backend_refuses_an_engine_from_another_tensorrt(built_engine, fakes):
    from esrgan.runtime.backends.tensorrt_backend import TensorRTBackend

    fakes[0].__version__ = "11.5.0.1"
    with pytest.raises(ModelError, match="not portable across TensorRT versions"):
        TensorRTBackend(built_engine)


def test_scale_mismatch_with_sidecar(built_engine, fakes):
    fakes[0].scale = 2
    with pytest.raises(ModelError, match="upscales x2 but its sidecar says x4"):
        trt_backend.TensorRTBackend(built_engine)


def test_out_of_memory_is_reported_as_such(built_engine, fakes):
    runner = trt_backend.TensorRTBackend(built_engine)
    fakes[1].fail_malloc = True
    with pytest.raises(OutOfMemoryError):
        runner.run(np.zeros((1, 3, 8, 8), np.float32))


def test_corrupt_engine(built_engine, fakes):
    built_engine.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot deserialise"):
        trt_backend.TensorRTBackend(built_engine)
