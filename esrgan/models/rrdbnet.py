"""The paper's generator (RRDBNet), with the parameter names of the official code and BasicSR.

Wang et al., ESRGAN (2018), section 3.1 and Fig. 4: Residual-in-Residual Dense Blocks, no batch
norm, residual scaling 0.2, LeakyReLU 0.2, nearest-neighbour upsampling followed by convolutions.
Keeping BasicSR's names (conv_first, body.N.rdbK.convJ, conv_body, conv_upK, conv_hr, conv_last)
means Real-ESRGAN / BasicSR state dicts load without renaming.

Initialisation is BasicSR's (``default_init_weights(..., 0.1)`` in ResidualDenseBlock), the paper's
"smaller initialisation" (sec. 3.2): every dense-block conv is Kaiming-normal scaled by 0.1 with zero
bias, so each block starts close to the identity and a deep trunk trains stably; the other convs keep
PyTorch's default initialisation, as in BasicSR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from esrgan.models.spec import GeneratorSpec

DENSE_INIT_SCALE = 0.1


@torch.no_grad()
def scaled_kaiming_init(convs: list[nn.Conv2d], scale: float) -> None:
    """Kaiming-normal weights (fan-in, LeakyReLU gain with slope 0, i.e. sqrt(2)) times ``scale``; zero biases."""
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight)
        conv.weight.mul_(scale)
        if conv.bias is not None:
            conv.bias.zero_()


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing all earlier feature maps; output scaled by 0.2 and added.

    Initialised as BasicSR does (see the module docstring).
    """

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        scaled_kaiming_init([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], DENSE_INIT_SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Three dense blocks inside one more residual connection (residual scaling 0.2)."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator for scale 1, 2, 4 or 8, inputs of any size, float NCHW in [0, 1].

    Scale 1 and 2 with ``pixel_unshuffle`` (Real-ESRGAN's x1/x2 layout) need H and W divisible by
    4/scale: other sizes are padded by edge replication and the output cropped back, so callers
    never see that constraint.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        pixel_unshuffle: bool = False,
    ) -> None:
        super().__init__()
        self.spec = GeneratorSpec(
            arch="rrdbnet", scale=scale, num_feat=num_feat, num_block=num_block, num_grow_ch=num_grow_ch,
            num_in_ch=num_in_ch, num_out_ch=num_out_ch, pixel_unshuffle=pixel_unshuffle,
        )
        self.scale = scale
        self.unshuffle = self.spec.unshuffle_factor
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.num_upsample = self.spec.num_upsample
        for i in range(1, self.num_upsample + 1):
            self.add_module(f"conv_up{i}", nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    @classmethod
    def from_spec(cls, spec: GeneratorSpec) -> RRDBNet:
        return cls(
            num_in_ch=spec.num_in_ch, num_out_ch=spec.num_out_ch, scale=spec.scale, num_feat=spec.num_feat,
            num_block=spec.num_block, num_grow_ch=spec.num_grow_ch, pixel_unshuffle=spec.pixel_unshuffle,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        feat = x
        if self.unshuffle > 1:
            m = self.unshuffle
            pad_h, pad_w = (-h) % m, (-w) % m
            if pad_h or pad_w:
                feat = F.pad(feat, (0, pad_w, 0, pad_h), mode="replicate")
            feat = F.pixel_unshuffle(feat, m)
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(1, self.num_upsample + 1):
            conv = getattr(self, f"conv_up{i}")
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        if self.unshuffle > 1:
            out = out[..., : h * self.scale, : w * self.scale]
        return out
