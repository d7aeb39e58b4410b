"""Network interpolation (ESRGAN paper, section 3.4): theta = (1 - alpha) * theta_PSNR + alpha * theta_GAN.

One alpha trades the PSNR model's smooth output for the GAN model's texture without retraining.
Done in FP32 whatever the checkpoints store, so FP16 checkpoints do not lose precision in the mix.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from esrgan.errors import CheckpointError, UsageError
from esrgan.export.options import DEFAULT_ALPHA
from esrgan.models.build import spec_of

StateDict = dict[str, torch.Tensor]


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float in [0, 1]; anything else is a usage error."""
    value = float(alpha)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise UsageError(f"--alpha must be in [0, 1] (0 = PSNR model, 1 = GAN model), got {alpha}")
    return value


def resolve_alpha(alpha: float | None, interpolating: bool) -> float:
    """The weight to export with; ``interpolating`` says whether a PSNR checkpoint was given.

    ``None`` means ``DEFAULT_ALPHA`` when interpolating and 1.0 (the GAN weights as they are)
    otherwise, for the CLI and the Python API alike. An explicit alpha other than 1.0 needs a PSNR
    checkpoint: silently ignoring it would export something other than what was asked for.
    """
    if alpha is None:
        return DEFAULT_ALPHA if interpolating else 1.0
    value = check_alpha(alpha)
    if not interpolating and value != 1.0:
        raise UsageError("--alpha needs --psnr: interpolation mixes a PSNR and a GAN checkpoint")
    return value


def interpolate_state_dicts(psnr: StateDict, gan: StateDict, alpha: float) -> StateDict:
    """Blend two state dicts with the same keys and shapes; FP32 results, non-float tensors must agree."""
    alpha = check_alpha(alpha)
    _check_same_layout(psnr, gan)
    out: StateDict = {}
    for key, p in psnr.items():
        g = gan[key]
        if p.is_floating_point():
            out[key] = torch.lerp(p.detach().float(), g.detach().float(), alpha)
        elif torch.equal(p, g):
            out[key] = p.detach().clone()
        else:
            raise CheckpointError(f"non-float tensor {key!r} differs between the PSNR and GAN checkpoints")
    return out


def interpolate_generators(psnr: nn.Module, gan: nn.Module, alpha: float) -> nn.Module:
    """A new eval-mode generator with interpolated weights; both inputs must share one spec."""
    spec_p, spec_g = spec_of(psnr), spec_of(gan)
    if spec_p != spec_g:
        raise CheckpointError(
            f"the PSNR and GAN checkpoints have different architectures: {spec_p.describe()} vs {spec_g.describe()}"
        )
    # A copy of the GAN network, not a new build: it works the same for networks spandrel built.
    model = copy.deepcopy(gan)
    model.load_state_dict(interpolate_state_dicts(psnr.state_dict(), gan.state_dict(), alpha))
    return model.eval()


def _check_same_layout(psnr: StateDict, gan: StateDict) -> None:
    only_p = sorted(set(psnr) - set(gan))
    only_g = sorted(set(gan) - set(psnr))
    if only_p or only_g:
        parts = []
        if only_p:
            parts.append(f"only in PSNR: {_names(only_p)}")
        if only_g:
            parts.append(f"only in GAN: {_names(only_g)}")
        raise CheckpointError("the PSNR and GAN checkpoints have different keys (" + "; ".join(parts) + ")")
    shapes = [k for k in psnr if tuple(psnr[k].shape) != tuple(gan[k].shape)]
    if shapes:
        k = shapes[0]
        more = f" and {len(shapes) - 1} more" if len(shapes) > 1 else ""
        raise CheckpointError(
            f"the PSNR and GAN checkpoints differ in shape: {k} is {tuple(psnr[k].shape)} vs "
            f"{tuple(gan[k].shape)}{more}"
        )


def _names(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")
