"""Files that are not generator checkpoints are named for what they are, in one line."""

from __future__ import annotations

import collections

import pytest
import torch
from PIL import Image

from esrgan.errors import CheckpointError
from esrgan.models import load_generator
from esrgan.models.build import build_generator
from esrgan.models.checkpoints import save_generator
from esrgan.models.spec import GeneratorSpec
from tests.models.published_layouts import random_model, rrdb_spec

TINY = GeneratorSpec(scale=4, num_feat=8, num_block=1, num_grow_ch=4)


def _error(path) -> str:
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path))
    assert "pickled code" not in msg and "Errno" not in msg
    return msg


@pytest.mark.parametrize("name", ["model.onnx", "model.pth", "model.safetensors"])
def test_an_onnx_model_is_named_whatever_its_file_name(tmp_path, name):
    from tests.runtime.conftest import write_nearest_onnx

    path = write_nearest_onnx(tmp_path / name)
    assert "this is an ONNX model" in _error(path) and "esrgan-run --model" in _error(path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_image_is_named_with_its_format(tmp_path, fmt):
    path = tmp_path / "photo.pth"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path, format=fmt)
    assert f"this is a {fmt} image, not a checkpoint" in _error(path)


def test_random_bytes_are_neither_onnx_nor_an_image(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(bytes(range(255, -1, -1)) * 8)
    msg = _error(path)
    assert "not a PyTorch checkpoint" in msg and "ONNX" not in msg and "image" not in msg


def test_a_safetensors_file_whose_header_length_starts_like_onnx_still_loads(tmp_path):
    """A u64 header length such as 0x..3a0008 begins with bytes an ONNX file can begin with."""
    path = save_generator(build_generator(TINY), tmp_path / "g.safetensors")
    data = path.read_bytes()
    assert data[8:9] == b"{"
    assert load_generator(path) is not None


def test_truncated_zip_checkpoint_names_no_errno(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save(random_model(rrdb_spec(4)).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or damaged PyTorch checkpoint" in _error(path)


@pytest.mark.parametrize("weights_exist", [True, False])
def test_a_training_state_points_to_the_generator_beside_it(tmp_path, weights_exist):
    """state_<stage>.pt (what esrgan-train resumes from) -> <stage>.safetensors in the same folder."""
    model = build_generator(TINY)
    opt = torch.optim.Adam(model.parameters())
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [5, 10])
    state = {"stage": "gan", "iter": 3, "spec": TINY.to_dict(), "g": model.state_dict(),
             "ema": {"model": model.state_dict(), "updates": 1, "decay": 0.999}, "opt_g": opt.state_dict(),
             "sched_g": sched.state_dict(), "counter": collections.Counter({5: 1})}
    path = tmp_path / "state_gan.pt"
    torch.save(state, path)
    if weights_exist:
        save_generator(model, tmp_path / "gan.safetensors")
    msg = _error(path)
    assert "training state" in msg and f"use {tmp_path / 'gan.safetensors'}" in msg
    assert ("written there when the stage finishes" in msg) is not weights_exist
