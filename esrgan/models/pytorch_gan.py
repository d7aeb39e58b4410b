"""PyTorch-GAN's ESRGAN generator (``GeneratorRRDB``), reproduced layer for layer.

Differences from the paper's RRDBNet that matter for loading its checkpoints:
- growth channels equal ``filters`` and every conv has ``filters`` outputs;
- LeakyReLU uses PyTorch's default slope 0.01, not 0.2;
- upsampling is conv(filters -> 4*filters) + LeakyReLU + PixelShuffle(2);
- that code trains on ImageNet mean/std-normalised images and denormalises outputs. We fold both
  into the module (non-persistent buffers) so it takes and returns [0, 1] images like every other
  generator here, while the state dict keeps the original key names. Its pixel loss was L1 on the
  normalised images, about 4.4x the L1 on [0, 1] images; the trainer computes it that way for this
  arch (``std`` is the buffer it divides by).
- initialisation is PyTorch's default, as in PyTorch-GAN (it calls no init for this model).
"""

from __future__ import annotations

import torch
from torch import nn

from esrgan.models.spec import GeneratorSpec
from esrgan.models.vgg import IMAGENET_MEAN, IMAGENET_STD


class DenseResidualBlock(nn.Module):
    def __init__(self, filters: int, res_scale: float = 0.2) -> None:
        super().__init__()
        self.res_scale = res_scale

        def block(in_features: int, non_linearity: bool = True) -> nn.Sequential:
            layers: list[nn.Module] = [nn.Conv2d(in_features, filters, 3, 1, 1, bias=True)]
            if non_linearity:
                layers.append(nn.LeakyReLU())
            return nn.Sequential(*layers)

        self.b1 = block(1 * filters)
        self.b2 = block(2 * filters)
        self.b3 = block(3 * filters)
        self.b4 = block(4 * filters)
        self.b5 = block(5 * filters, non_linearity=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = x
        out = x
        for block in (self.b1, self.b2, self.b3, self.b4, self.b5):
            out = block(inputs)
            inputs = torch.cat([inputs, out], 1)
        return out * self.res_scale + x


class ResidualInResidualDenseBlock(nn.Module):
    def __init__(self, filters: int, res_scale: float = 0.2) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.dense_blocks = nn.Sequential(
            DenseResidualBlock(filters), DenseResidualBlock(filters), DenseResidualBlock(filters)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_blocks(x) * self.res_scale + x


class GeneratorRRDB(nn.Module):
    """PyTorch-GAN's ESRGAN generator taking and returning [0, 1] images (normalisation folded in)."""

    def __init__(
        self, channels: int = 3, filters: int = 64, num_res_blocks: int = 16, num_upsample: int = 2,
    ) -> None:
        super().__init__()
        self.spec = GeneratorSpec(
            arch="pytorch-gan", scale=2**num_upsample, num_feat=filters, num_block=num_res_blocks,
            num_grow_ch=filters, num_in_ch=channels, num_out_ch=channels,
        )
        self.scale = self.spec.scale
        self.conv1 = nn.Conv2d(channels, filters, 3, 1, 1)
        self.res_blocks = nn.Sequential(*[ResidualInResidualDenseBlock(filters) for _ in range(num_res_blocks)])
        self.conv2 = nn.Conv2d(filters, filters, 3, 1, 1)
        layers: list[nn.Module] = []
        for _ in range(num_upsample):
            layers += [nn.Conv2d(filters, filters * 4, 3, 1, 1), nn.LeakyReLU(), nn.PixelShuffle(2)]
        self.upsampling = nn.Sequential(*layers)
        self.conv3 = nn.Sequential(
            nn.Conv2d(filters, filters, 3, 1, 1), nn.LeakyReLU(), nn.Conv2d(filters, channels, 3, 1, 1)
        )
        mean = torch.tensor(IMAGENET_MEAN if channels == 3 else [0.5] * channels).view(1, -1, 1, 1)
        std = torch.tensor(IMAGENET_STD if channels == 3 else [0.5] * channels).view(1, -1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    @classmethod
    def from_spec(cls, spec: GeneratorSpec) -> GeneratorRRDB:
        return cls(
            channels=spec.num_in_ch, filters=spec.num_feat, num_res_blocks=spec.num_block,
            num_upsample=spec.num_upsample,
        )

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """The original forward pass, on ImageNet-normalised tensors (as PyTorch-GAN calls it)."""
        out1 = self.conv1(x)
        out2 = self.conv2(self.res_blocks(out1))
        return self.conv3(self.upsampling(out1 + out2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_normalized((x - self.mean) / self.std) * self.std + self.mean
