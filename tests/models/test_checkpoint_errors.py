"""Untrusted and broken checkpoints end in one CheckpointError line that names expected vs found."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from esrgan.errors import CheckpointError
from esrgan.models import describe_checkpoint, load_generator
from tests.models.published_layouts import random_model, rrdb_spec, to_official, to_old_arch


class _RunsShell:
    """Unpickling this calls os.system: what a malicious checkpoint would do."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _error(path) -> str:
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path))
    return msg


@pytest.mark.parametrize("how", ["torch.save", "raw pickle"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, how):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    if how == "torch.save":
        torch.save({"conv_first.weight": torch.zeros(1), "x": _RunsShell(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"x": _RunsShell(marker)}, protocol=2))
    msg = _error(path)
    assert "refused" in msg and "blocked: posix.system" in msg
    with pytest.raises(CheckpointError):
        describe_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_truncated_file(tmp_path, suffix):
    model = random_model(rrdb_spec(4))
    path = tmp_path / f"cut{suffix}"
    if suffix == ".safetensors":
        save_file(model.state_dict(), str(path))
    else:
        torch.save(model.state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    msg = _error(path)
    assert ("not a readable safetensors" if suffix == ".safetensors" else "truncated or damaged") in msg


def test_random_bytes_are_not_called_pickled_code(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(bytes(range(256)) * 20)  # opcode 0x80 then garbage: no GLOBAL anywhere
    msg = _error(path)
    assert "pickled code" not in msg and "not a PyTorch checkpoint" in msg


def test_truncated_legacy_pth(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save(random_model(rrdb_spec(4)).state_dict(), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:200])
    assert "truncated" in _error(path)


def test_empty_file_folder_and_missing_file(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    assert "empty file" in _error(tmp_path / "empty.pth")
    assert "is a folder" in _error(tmp_path)
    assert "no such file" in _error(tmp_path / "nope.safetensors")


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    assert "expected a dict of tensors, found list" in _error(path)


def _tiny_resnet_state() -> dict[str, torch.Tensor]:
    """ResNet key names and layer types (torchvision's resnet18 takes seconds to import on 2 cores)."""
    from torch import nn

    net = nn.Module()
    net.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
    net.bn1 = nn.BatchNorm2d(8)
    block = nn.Module()
    block.conv1, block.bn1 = nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8)
    net.layer1 = nn.Sequential(block)
    net.fc = nn.Linear(8, 10)
    return net.state_dict()


def test_wrong_architecture_resnet(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(_tiny_resnet_state(), path)
    msg = _error(path)
    assert "unknown checkpoint layout" in msg and "conv1.weight" in msg and "bn1" in msg


def test_missing_tensor_named_in_the_files_layout(tmp_path):
    state = to_official(random_model(rrdb_spec(4)).state_dict())
    del state["RRDB_trunk.1.RDB2.conv3.weight"]
    path = tmp_path / "missing.pth"
    torch.save(state, path)
    msg = _error(path)
    assert "missing tensor 'RRDB_trunk.1.RDB2.conv3.weight'" in msg and "(4, 16, 3, 3)" in msg


def test_missing_old_arch_upconv_named_in_its_layout(tmp_path):
    spec = rrdb_spec(4)
    state = to_old_arch(random_model(spec).state_dict(), spec.num_block, spec.num_upsample)
    del state["model.1.sub.2.bias"]  # the trunk conv's bias (nb = 2)
    path = tmp_path / "old.pth"
    torch.save(state, path)
    assert "missing tensor 'model.1.sub.2.bias'" in _error(path)


def test_shape_mismatch_names_key_and_both_shapes(tmp_path):
    state = to_official(random_model(rrdb_spec(4)).state_dict())
    state["RRDB_trunk.0.RDB1.conv2.weight"] = torch.zeros(4, 11, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    msg = _error(path)
    assert "'RRDB_trunk.0.RDB1.conv2.weight' has shape (4, 11, 3, 3), expected (4, 12, 3, 3)" in msg


def test_unexpected_tensor(tmp_path):
    state = random_model(rrdb_spec(4)).state_dict()
    state["conv_extra.weight"] = torch.zeros(1)
    path = tmp_path / "extra.safetensors"
    save_file(state, str(path))
    assert "unexpected tensor 'conv_extra.weight'" in _error(path)


def test_esrgan_plus_is_refused(tmp_path):
    state = to_official(random_model(rrdb_spec(4)).state_dict())
    state["RRDB_trunk.0.RDB1.conv1x1.weight"] = torch.zeros(4, 8, 1, 1)
    path = tmp_path / "esrgan_plus.pth"
    torch.save(state, path)
    assert "ESRGAN+" in _error(path)


def test_pixel_shuffle_old_arch_is_refused(tmp_path):
    spec = rrdb_spec(4)
    state = to_old_arch(random_model(spec).state_dict(), spec.num_block, spec.num_upsample)
    # pixelshuffle_block: conv(nf -> 4 nf) at model.2 + 3i, then PixelShuffle, lrelu
    for old, new in (("model.3", "model.2"), ("model.6", "model.5")):
        state[f"{new}.weight"] = torch.zeros(32, 8, 3, 3)
        state[f"{new}.bias"] = torch.zeros(32)
        del state[f"{old}.weight"], state[f"{old}.bias"]
    path = tmp_path / "ps.pth"
    torch.save(state, path)
    assert "pixel-shuffle" in _error(path)


def test_unsupported_unshuffle_combination(tmp_path):
    state = random_model(rrdb_spec(4)).state_dict()
    state["conv_first.weight"] = torch.zeros(8, 12, 3, 3)  # x2 unshuffle input ...
    del state["conv_up2.weight"], state["conv_up2.bias"]  # ... but one upsampler
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    assert "pixel-unshuffle" in _error(path)


def test_loading_and_format_check_share_one_shape_check():
    """load_state_into and check_against_spec name a mis-shaped tensor the same way."""
    from esrgan.models.build import build_generator
    from esrgan.models.checkpoints import load_state_into
    from esrgan.models.formats import check_against_spec
    from esrgan.models.spec import GeneratorSpec

    spec = GeneratorSpec(arch="rrdbnet", scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    state = dict(build_generator(spec).state_dict())
    state["conv_first.weight"] = torch.zeros(8, 3, 1, 1)
    with pytest.raises(CheckpointError) as loading:
        load_state_into(build_generator(spec), state, "f")
    with pytest.raises(CheckpointError) as checking:
        check_against_spec(state, spec, "f")
    expected = "f: tensor 'conv_first.weight' has shape (8, 3, 1, 1), expected (8, 3, 3, 3)"
    assert str(loading.value) == expected and str(checking.value).startswith(expected + " for ")
