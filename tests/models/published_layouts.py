"""A generator's weights under each published key layout, for the loader tests and
``benchmarks/published_layouts.py``.

The renaming here is written out independently of ``esrgan/models/formats.py`` (from the
published code's module names), so a test compares the loader against a second implementation
instead of against itself.
"""

from __future__ import annotations

import re

import torch

from esrgan.models.spec import GeneratorSpec

StateDict = dict[str, torch.Tensor]


def rrdb_spec(scale: int, *, nf: int = 8, nb: int = 2, gc: int = 4, unshuffle: bool = False, ch: int = 3):
    return GeneratorSpec(
        arch="rrdbnet", scale=scale, num_feat=nf, num_block=nb, num_grow_ch=gc, num_in_ch=ch, num_out_ch=ch,
        pixel_unshuffle=unshuffle,
    )


def gan_spec(scale: int, *, nf: int = 8, nb: int = 1, ch: int = 3):
    return GeneratorSpec(
        arch="pytorch-gan", scale=scale, num_feat=nf, num_block=nb, num_grow_ch=nf, num_in_ch=ch, num_out_ch=ch,
    )


def random_model(spec: GeneratorSpec, seed: int = 0) -> torch.nn.Module:
    """A generator with random (not default-init) weights, so a wrong mapping cannot hide."""
    from esrgan.models.build import build_generator

    torch.manual_seed(seed)
    model = build_generator(spec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model


def to_official(sd: StateDict) -> StateDict:
    """xinntao/ESRGAN RRDBNet_arch.py names."""
    out = {}
    for k, v in sd.items():
        k2 = re.sub(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2.", k)
        k2 = re.sub(r"^conv_up(\d)\.", r"upconv\1.", k2)
        k2 = k2.replace("conv_body.", "trunk_conv.").replace("conv_hr.", "HRconv.")
        out[k2] = v
    return out


def to_old_arch(sd: StateDict, num_block: int, num_up: int) -> StateDict:
    """The old sequential arch: model.0 | model.1.sub[RRDB..., trunk conv] | (Upsample, conv, lrelu) x n |
    HR conv, lrelu, last conv. Convs inside RDBs are conv_block Sequentials (conv at index 0)."""
    out = {}
    for k, v in sd.items():
        param = k.rsplit(".", 1)[1]
        if k.startswith("body."):
            n, rdb, conv = re.match(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.", k).groups()
            out[f"model.1.sub.{n}.RDB{rdb}.conv{conv}.0.{param}"] = v
        elif k.startswith("conv_body."):
            out[f"model.1.sub.{num_block}.{param}"] = v
        elif k.startswith("conv_first."):
            out[f"model.0.{param}"] = v
        elif k.startswith("conv_up"):
            i = int(k[len("conv_up")])
            out[f"model.{3 * i}.{param}"] = v  # upsample at 3i-1, conv at 3i, lrelu at 3i+1
        elif k.startswith("conv_hr."):
            out[f"model.{2 + 3 * num_up}.{param}"] = v
        elif k.startswith("conv_last."):
            out[f"model.{4 + 3 * num_up}.{param}"] = v
        else:
            raise AssertionError(k)
    return out
