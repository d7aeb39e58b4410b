"""Our loaded modules reproduce the original code's forward pass, checked against an independent
functional re-implementation that reads the ORIGINAL key names.

The references follow the published forward passes: xinntao/ESRGAN ``RRDBNet_arch.py`` (official
names), Real-ESRGAN/BasicSR ``RRDBNet`` with pixel-unshuffle for x2/x1, and PyTorch-GAN
``implementations/esrgan`` (``GeneratorRRDB`` on ImageNet-normalised images, ``denormalize`` after).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from esrgan.models import load_generator
from tests.models.published_layouts import gan_spec, random_model, rrdb_spec, to_official

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _conv(sd, name, x):
    return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=1)


def _lrelu(x, slope=0.2):
    return F.leaky_relu(x, slope)


def official_rrdbnet(sd, x, num_block, num_up):
    """RRDBNet_arch.py: fea = conv_first(x); trunk = trunk_conv(RRDB_trunk(fea)); fea += trunk;
    per x2: lrelu(upconv(nearest x2)); out = conv_last(lrelu(HRconv(fea)))."""

    def rdb(prefix, t):
        feats = [t]
        for j in range(1, 5):
            feats.append(_lrelu(_conv(sd, f"{prefix}.conv{j}", torch.cat(feats, 1))))
        return _conv(sd, f"{prefix}.conv5", torch.cat(feats, 1)) * 0.2 + t

    fea = _conv(sd, "conv_first", x)
    trunk = fea
    for n in range(num_block):
        block_in = trunk
        for k in (1, 2, 3):
            trunk = rdb(f"RRDB_trunk.{n}.RDB{k}", trunk)
        trunk = trunk * 0.2 + block_in
    fea = fea + _conv(sd, "trunk_conv", trunk)
    for i in range(1, num_up + 1):
        fea = _lrelu(_conv(sd, f"upconv{i}", F.interpolate(fea, scale_factor=2, mode="nearest")))
    return _conv(sd, "conv_last", _lrelu(_conv(sd, "HRconv", fea)))


def pytorch_gan_generator(sd, x, num_block, num_up):
    """GeneratorRRDB.forward with nn.LeakyReLU() defaults (slope 0.01) and PixelShuffle upsampling."""

    def dense(prefix, t):
        inputs = t
        for k in range(1, 6):
            out = _conv(sd, f"{prefix}.b{k}.0", inputs)
            if k < 5:
                out = _lrelu(out, 0.01)
            inputs = torch.cat([inputs, out], 1)
        return out * 0.2 + t

    out1 = _conv(sd, "conv1", x)
    h = out1
    for n in range(num_block):
        block_in = h
        for m in range(3):
            h = dense(f"res_blocks.{n}.dense_blocks.{m}", h)
        h = h * 0.2 + block_in
    out = out1 + _conv(sd, "conv2", h)
    for k in range(num_up):
        out = F.pixel_shuffle(_lrelu(_conv(sd, f"upsampling.{3 * k}", out), 0.01), 2)
    return _conv(sd, "conv3.2", _lrelu(_conv(sd, "conv3.0", out), 0.01))


@pytest.mark.parametrize("scale", [4, 8])
def test_official_rrdbnet_forward_matches_reference(tmp_path, scale):
    spec = rrdb_spec(scale)
    original = to_official(random_model(spec).state_dict())
    path = tmp_path / "official.pth"
    torch.save(original, path)
    x = torch.rand(1, 3, 6, 9)
    with torch.no_grad():
        ours = load_generator(path)(x)
        ref = official_rrdbnet(original, x, spec.num_block, spec.num_upsample)
    assert ours.shape == ref.shape == (1, 3, 6 * scale, 9 * scale)
    assert (ours - ref).abs().max().item() <= 1e-6


@pytest.mark.parametrize("scale", [1, 2])
def test_real_esrgan_unshuffle_forward_matches_reference(tmp_path, scale):
    """Real-ESRGAN x2/x1: pixel_unshuffle(x, 4 // scale), then the x4 trunk (BasicSR key names)."""
    spec = rrdb_spec(scale, unshuffle=True)
    original = random_model(spec).state_dict()
    path = tmp_path / "realesrgan.pth"
    torch.save({"params_ema": original}, path)
    x = torch.rand(1, 3, 8, 12)
    as_official = to_official(original)
    with torch.no_grad():
        ours = load_generator(path)(x)
        ref = official_rrdbnet(as_official, F.pixel_unshuffle(x, 4 // scale), spec.num_block, 2)
    assert ours.shape == ref.shape == (1, 3, 8 * scale, 12 * scale)
    assert (ours - ref).abs().max().item() <= 1e-6


def test_pytorch_gan_forward_matches_reference_with_imagenet_normalisation(tmp_path):
    spec = gan_spec(4, nb=2)
    original = random_model(spec).state_dict()
    path = tmp_path / "generator.pth"
    torch.save(original, path)
    x = torch.rand(1, 3, 7, 5)
    with torch.no_grad():
        ours = load_generator(path)(x)  # takes and returns [0, 1] images
        ref = pytorch_gan_generator(original, (x - MEAN) / STD, spec.num_block, spec.num_upsample) * STD + MEAN
    assert ours.shape == ref.shape == (1, 3, 28, 20)
    assert (ours - ref).abs().max().item() <= 1e-6
