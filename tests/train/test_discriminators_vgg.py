"""Discriminator output shapes and the VGG19 feature extractor (weights, missing-file message)."""

from __future__ import annotations

import pytest
import torch

from esrgan.errors import DependencyError
from esrgan.models.discriminators import PatchDiscriminator, VGGStyleDiscriminator, build_discriminator
from esrgan.models.vgg import VGG19_FILE, VGGFeatureExtractor


@pytest.mark.parametrize("size", [32, 64, 96, 128])
def test_vgg_style_discriminator_accepts_other_patch_sizes(size):
    d = VGGStyleDiscriminator(num_feat=4, input_size=size)
    assert d(torch.rand(2, 3, size, size)).shape == (2, 1)
    assert d.linear1.in_features == 4 * 8 * (size // 32) ** 2


def test_vgg_style_discriminator_has_basicsr_layout_at_128():
    d = VGGStyleDiscriminator(num_feat=64, input_size=128)
    shapes = {k: tuple(v.shape) for k, v in d.state_dict().items()}
    assert shapes["conv0_0.weight"] == (64, 3, 3, 3) and "conv0_0.bias" in shapes
    assert shapes["conv0_1.weight"] == (64, 64, 4, 4) and "conv0_1.bias" not in shapes
    assert shapes["conv4_1.weight"] == (512, 512, 4, 4) and shapes["bn4_1.weight"] == (512,)
    assert shapes["linear1.weight"] == (100, 512 * 4 * 4) and shapes["linear2.weight"] == (1, 100)
    assert "bn0_0.weight" not in shapes
    with pytest.raises(ValueError):
        VGGStyleDiscriminator(input_size=100)


@pytest.mark.parametrize(("h", "w"), [(128, 128), (64, 96), (32, 48)])
def test_patch_discriminator_output_shape(h, w):
    d = PatchDiscriminator((3, h, w), num_feat=4)
    assert d.output_shape == (1, h // 16, w // 16)
    assert d(torch.rand(2, 3, h, w)).shape == (2, *d.output_shape)
    assert "model.0.weight" in d.state_dict()  # PyTorch-GAN's names
    assert isinstance(build_discriminator("pytorch-gan", 64, 4), PatchDiscriminator)
    assert isinstance(build_discriminator("rrdbnet", 64, 4), VGGStyleDiscriminator)


def test_missing_vgg_weights_say_exactly_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(DependencyError) as err:
        VGGFeatureExtractor("auto")
    msg = str(err.value)
    assert str(tmp_path / "th" / "hub" / "checkpoints" / VGG19_FILE) in msg
    assert "--vgg-weights" in msg and "\n" not in msg
    with pytest.raises(DependencyError, match="no such file"):
        VGGFeatureExtractor(tmp_path / "nope.pth")


@pytest.fixture(scope="module")
def untrained() -> VGGFeatureExtractor:
    torch.manual_seed(0)
    return VGGFeatureExtractor("untrained")


def test_extractor_is_frozen_eval_conv5_4_pre_activation(untrained):
    ext = untrained
    assert len(ext.features) == 35 and isinstance(ext.features[34], torch.nn.Conv2d)
    assert ext.weights == "untrained"
    ext.train()
    assert not ext.training and not any(p.requires_grad for p in ext.parameters())
    out = ext(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 512, 2, 2)
    assert (out < 0).any()  # before the ReLU


def test_extractor_loads_torchvision_style_file_and_normalises(tmp_path, monkeypatch):
    # A file laid out like torchvision's (features.N.* plus classifier.*) in the TORCH_HOME cache;
    # only the first 3 layers (conv1_1, relu, conv1_2) to keep the file small.
    small = VGGFeatureExtractor("untrained", num_layers=3)
    state = {f"features.{k}": v.clone() + 0.01 for k, v in small.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "th" / "hub" / "checkpoints" / VGG19_FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    ext = VGGFeatureExtractor(num_layers=3)
    assert ext.weights == str(path)
    assert torch.equal(ext.features[2].weight, state["features.2.weight"])
    x = torch.rand(1, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(ext(x), ext.features((x - mean) / std))
