"""esrgan-run with a TensorRT engine, through the TensorRT backend and fake TensorRT/CUDA modules."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from esrgan.runtime.backends import tensorrt_backend as trt_backend
from esrgan.runtime.cli import main
from tests.runtime.conftest import gradient, save

trt_build = pytest.importorskip("esrgan.export.tensorrt_build")  # needs onnx
fake_trt = pytest.importorskip("tests.trt.fake_trt")


@pytest.fixture
def engine_file(tmp_path, monkeypatch, nearest_onnx):
    trt, cudart = fake_trt.FakeTensorRT(), fake_trt.FakeCudart()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_backend, "import_cudart", lambda: cudart)
    engine = tmp_path / "model.engine"
    trt_build.build_engine(nearest_onnx, engine, min_shape=(1, 3, 8, 8), opt_shape=(2, 3, 16, 16), max_shape=(2, 3, 32, 32))
    return engine


def test_engine_runs_a_folder_within_its_profile(tmp_path, engine_file):
    big, small = gradient(50, 70), gradient(5, 6)
    save(tmp_path / "in" / "big.png", big)
    save(tmp_path / "in" / "small.png", small)
    r = CliRunner().invoke(main, [str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(engine_file),
                                  "--tile-pad", "4", "--batch", "8"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "backend: tensorrt" in r.output and "profile" in r.output  # batch 8 clamped to 2, said once
    for name, arr in (("big.png", big), ("small.png", small)):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / name)), arr.repeat(4, 0).repeat(4, 1))


def test_engine_profile_too_small_for_the_pad_is_a_usage_error(tmp_path, engine_file):
    save(tmp_path / "in" / "a.png", gradient(8, 8))
    r = CliRunner().invoke(main, [str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(engine_file)])
    assert r.exit_code == 2 and "--tile-pad" in r.output
