"""Tiny generators and photograph crops for export tests (exports in well under a second)."""

from __future__ import annotations

import numpy as np
import torch

from esrgan.models.build import build_generator
from esrgan.models.spec import GeneratorSpec

TINY = {
    "x4": GeneratorSpec(arch="rrdbnet", scale=4, num_feat=8, num_block=1, num_grow_ch=4),
    "x2u": GeneratorSpec(arch="rrdbnet", scale=2, num_feat=8, num_block=1, num_grow_ch=4, pixel_unshuffle=True),
    "x1u": GeneratorSpec(arch="rrdbnet", scale=1, num_feat=8, num_block=1, num_grow_ch=4, pixel_unshuffle=True),
    "gan": GeneratorSpec(arch="pytorch-gan", scale=4, num_feat=8, num_block=1, num_grow_ch=8),
}


def tiny_model(kind: str = "x4", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_generator(TINY[kind]).eval()


def crops(img: np.ndarray, sizes=((19, 27), (16, 16))) -> list[np.ndarray]:
    """NCHW float32 crops of a photograph (one non-square, odd)."""
    out = []
    for i, (h, w) in enumerate(sizes):
        y, x = 100 + 40 * i, 180 + 30 * i
        out.append(img[y : y + h, x : x + w].transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    return out
