"""Discriminators for the GAN stage.

``VGGStyleDiscriminator``: the paper's discriminator (ESRGAN sec. 4.1, BasicSR's layer names
conv0_0 ... conv4_1, bn*, linear1, linear2): five stages of (3x3 conv, 4x4 stride-2 conv) with batch
norm and LeakyReLU 0.2, then two linear layers. BasicSR fixes it to 128 (or 256) px inputs; here the
first linear layer is sized for any patch size that is a multiple of 32 (128 px gives BasicSR's
shapes exactly). Like BasicSR's, it keeps PyTorch's default initialisation (BasicSR calls no init for
it), its layers built in BasicSR's order so that one seed gives the same weights.

``PatchDiscriminator``: PyTorch-GAN's ESRGAN ``Discriminator``: four blocks of (3x3 conv, [BN],
LeakyReLU 0.2, 3x3 stride-2 conv, BN, LeakyReLU 0.2) with 64/128/256/512 features (first block without
BN), then a 3x3 conv to one logit per patch. Its ``output_shape`` is (1, H/16, W/16); the parameter
names (``model.N``) are the original's so its checkpoints load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class VGGStyleDiscriminator(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size % 32 or input_size <= 0:
            raise ValueError(f"input_size must be a positive multiple of 32, got {input_size}")
        self.input_size = input_size
        widths = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8]
        prev = num_in_ch
        for i, width in enumerate(widths):
            # stage 0's first conv has a bias and no BN; every other conv is followed by BN (no bias)
            self.add_module(f"conv{i}_0", nn.Conv2d(prev, width, 3, 1, 1, bias=(i == 0)))
            if i > 0:
                self.add_module(f"bn{i}_0", nn.BatchNorm2d(width, affine=True))
            self.add_module(f"conv{i}_1", nn.Conv2d(width, width, 4, 2, 1, bias=False))
            self.add_module(f"bn{i}_1", nn.BatchNorm2d(width, affine=True))
            prev = width
        side = input_size // 32
        self.linear1 = nn.Linear(widths[-1] * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(f"expected {self.input_size}x{self.input_size} inputs, got {tuple(x.shape[-2:])}")
        feat = x
        for i in range(5):
            feat = getattr(self, f"conv{i}_0")(feat)
            if i > 0:
                feat = getattr(self, f"bn{i}_0")(feat)
            feat = self.lrelu(feat)
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)


def _patch_block(in_ch: int, out_ch: int, first: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, 1, 1)]
    if not first:
        layers.append(nn.BatchNorm2d(out_ch))
    layers += [
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, 2, 1),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(0.2, inplace=True),
    ]
    return layers


class PatchDiscriminator(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int] = (3, 128, 128), num_feat: int = 64) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.input_shape = tuple(input_shape)
        # Each stride-2 conv (k3, p1) maps n to ceil(n / 2); for multiples of 16 this is H/16 as in PyTorch-GAN's ESRGAN.
        out_h, out_w = height, width
        for _ in range(4):
            out_h, out_w = (out_h + 1) // 2, (out_w + 1) // 2
        self.output_shape = (1, out_h, out_w)
        layers: list[nn.Module] = []
        prev = channels
        for i, mult in enumerate((1, 2, 4, 8)):
            layers += _patch_block(prev, num_feat * mult, first=(i == 0))
            prev = num_feat * mult
        layers.append(nn.Conv2d(prev, 1, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_discriminator(arch: str, patch_size: int, num_feat: int = 64, num_in_ch: int = 3) -> nn.Module:
    """The discriminator that goes with a generator arch (rrdbnet: VGG-style; pytorch-gan: patch)."""
    if arch == "pytorch-gan":
        return PatchDiscriminator((num_in_ch, patch_size, patch_size), num_feat)
    return VGGStyleDiscriminator(num_in_ch, num_feat, patch_size)
