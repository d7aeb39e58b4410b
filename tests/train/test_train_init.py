"""Initialisation as BasicSR does it, compared numerically with a port of its procedure.

BasicSR (basicsr/archs/arch_util.py, ``default_init_weights(module_list, scale=1, bias_fill=0)``): for
every Conv2d / Linear in the given modules, ``init.kaiming_normal_(weight)`` (defaults: fan-in, gain
sqrt(2)), then ``weight *= scale`` and ``bias.fill_(bias_fill)``. basicsr/archs/rrdbnet_arch.py calls it
in ``ResidualDenseBlock.__init__`` on conv1..conv5 with scale 0.1; RRDBNet's other convs keep PyTorch's
default. basicsr/archs/discriminator_arch.py (VGGStyleDiscriminator) calls no initialisation at all:
PyTorch's default for every layer, built in the order conv0_0, conv0_1, bn0_1, conv1_0, bn1_0, conv1_1,
bn1_1, ..., conv4_1, bn4_1, linear1, linear2. The ports below are written from that description.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from esrgan.models.discriminators import VGGStyleDiscriminator
from esrgan.models.rrdbnet import ResidualDenseBlock, RRDBNet


@torch.no_grad()
def basicsr_default_init_weights(modules: list[nn.Module], scale: float = 1.0, bias_fill: float = 0.0) -> None:
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                m.weight.data *= scale
                if m.bias is not None:
                    m.bias.data.fill_(bias_fill)


def basicsr_dense_block_convs(nf: int, gc: int) -> list[nn.Conv2d]:
    convs = [nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, 1, 1) for i in range(5)]
    basicsr_default_init_weights(list(convs), 0.1)
    return convs


def basicsr_vgg_discriminator_state(num_in_ch: int, nf: int) -> dict[str, torch.Tensor]:
    layers: dict[str, nn.Module] = {
        "conv0_0": nn.Conv2d(num_in_ch, nf, 3, 1, 1, bias=True),
        "conv0_1": nn.Conv2d(nf, nf, 4, 2, 1, bias=False),
        "bn0_1": nn.BatchNorm2d(nf, affine=True),
    }
    widths = [nf, nf * 2, nf * 4, nf * 8, nf * 8]
    for i in range(1, 5):
        layers[f"conv{i}_0"] = nn.Conv2d(widths[i - 1], widths[i], 3, 1, 1, bias=False)
        layers[f"bn{i}_0"] = nn.BatchNorm2d(widths[i], affine=True)
        layers[f"conv{i}_1"] = nn.Conv2d(widths[i], widths[i], 4, 2, 1, bias=False)
        layers[f"bn{i}_1"] = nn.BatchNorm2d(widths[i], affine=True)
    layers["linear1"] = nn.Linear(nf * 8 * 4 * 4, 100)
    layers["linear2"] = nn.Linear(100, 1)
    return {f"{name}.{k}": v for name, layer in layers.items() for k, v in layer.state_dict().items()}


def test_dense_blocks_are_initialised_exactly_as_basicsr():
    for nf, gc in ((64, 32), (8, 4)):
        torch.manual_seed(7)
        ours = ResidualDenseBlock(nf, gc)
        torch.manual_seed(7)
        ref = basicsr_dense_block_convs(nf, gc)
        for i, conv in enumerate(ref, start=1):
            assert torch.equal(getattr(ours, f"conv{i}").weight, conv.weight)
            assert torch.equal(getattr(ours, f"conv{i}").bias, conv.bias)


def test_paper_generator_initial_statistics():
    torch.manual_seed(0)
    model = RRDBNet()  # paper x4: nf 64, nb 23, gc 32
    for name, conv in model.body.named_modules():
        if isinstance(conv, nn.Conv2d):
            fan_in = conv.weight[0].numel()
            expected = 0.1 * math.sqrt(2.0 / fan_in)  # Kaiming normal x 0.1
            assert abs(conv.weight.std().item() / expected - 1) < 0.05, name
            assert not conv.bias.any(), name
    # outside the dense blocks PyTorch's default stays (uniform, non-zero biases), as in BasicSR
    assert model.conv_first.bias.abs().max() > 0 and model.conv_last.bias.abs().max() > 0
    bound = 1 / math.sqrt(model.conv_body.weight[0].numel())
    assert model.conv_body.weight.abs().max() <= bound
    # the smaller initialisation's point: each dense block starts close to the identity
    x = model.conv_first(torch.rand(2, 3, 24, 24))
    rdb = model.body[0].rdb1
    with torch.no_grad():
        ratio = ((rdb(x) - x).std() / x.std()).item()
    assert 0.005 < ratio < 0.03  # PyTorch's default init gives about 0.075


def test_vgg_discriminator_keeps_basicsr_default_initialisation():
    torch.manual_seed(3)
    ours = VGGStyleDiscriminator(3, 16, 128).state_dict()
    torch.manual_seed(3)
    ref = basicsr_vgg_discriminator_state(3, 16)
    assert ours.keys() == ref.keys()
    for key, value in ref.items():
        assert torch.equal(ours[key], value), key
