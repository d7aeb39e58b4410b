import shlex

import pytest

from esrgan.errors import DependencyError, UsageError
from esrgan.export import engine
from esrgan.export.engine import EngineOptions, build_command
from esrgan.models.spec import GeneratorSpec
from esrgan.runtime.tensorrt_profile import parse_shape


def test_parse_shape():
    assert parse_shape("1x3x64x96") == (1, 3, 64, 96)
    for bad in ("1x3x64", "1x3x0x4", "axbxcxd", ""):
        with pytest.raises(UsageError):
            parse_shape(bad)


def test_defaults_follow_the_model():
    rgb = EngineOptions().resolved(GeneratorSpec(scale=4, num_feat=8, num_block=1, num_grow_ch=4))
    assert rgb.min_shape == (1, 3, 64, 64) and rgb.max_shape[0] == 4 and rgb.max_shape[2] >= 512
    grey_x2 = EngineOptions().resolved(
        GeneratorSpec(scale=2, num_feat=8, num_block=1, num_grow_ch=4, num_in_ch=1, num_out_ch=1, pixel_unshuffle=True))
    assert grey_x2.opt_shape[1] == 1 and all(s % 2 == 0 for s in grey_x2.max_shape[2:])


@pytest.mark.parametrize(
    "kwargs",
    [dict(min_shape=(2, 3, 64, 64), opt_shape=(1, 3, 64, 64), max_shape=(4, 3, 64, 64)), dict(opt_level=6),
     dict(workspace_gib=0), dict(min_shape=(1, 3, 64, 64))],
)
def test_invalid_options(kwargs):
    with pytest.raises(UsageError):
        EngineOptions(**kwargs)


def test_channel_mismatch_with_the_model():
    o = EngineOptions((1, 1, 64, 64), (1, 1, 64, 64), (1, 1, 64, 64))
    with pytest.raises(UsageError, match="channels"):
        o.resolved(GeneratorSpec(scale=4, num_feat=8, num_block=1, num_grow_ch=4))


def test_build_command_round_trips_the_options(tmp_path):
    o = EngineOptions((1, 3, 32, 32), (1, 3, 128, 128), (2, 3, 256, 256), 1.5, 4, tmp_path / "t c.bin")
    cmd = shlex.split(build_command(tmp_path / "model_fp16.onnx", o))
    assert cmd[:3] == ["esrgan-export", "--build-engine", str(tmp_path / "model_fp16.onnx")]
    assert cmd[cmd.index("--max-shape") + 1] == "2x3x256x256" and cmd[cmd.index("--workspace") + 1] == "1.5"
    assert cmd[cmd.index("--timing-cache") + 1] == str(tmp_path / "t c.bin")


def test_build_engine_without_tensorrt_names_the_command(monkeypatch, tmp_path):
    monkeypatch.setattr(engine.tensorrt_backend, "availability", lambda: "no CUDA GPU found")
    with pytest.raises(DependencyError, match="no CUDA GPU found; build the engine on a GPU machine with: esrgan-export"):
        engine.build_engine(tmp_path / "model_fp16.onnx", EngineOptions())
