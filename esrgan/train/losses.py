"""Losses of the two stages: pixel L1, the relativistic average GAN loss, and the perceptual loss.

RaGAN follows the ESRGAN paper (Wang et al. 2018, eq. 1-2) exactly, with the relativistic average
discriminator D_Ra(a, b) = sigmoid(C(a) - E[C(b)]) and the expectation taken over the batch:

    L_D = -E_r[log D_Ra(x_r, x_f)] - E_f[log(1 - D_Ra(x_f, x_r))]
    L_G = -E_r[log(1 - D_Ra(x_r, x_f))] - E_f[log D_Ra(x_f, x_r)]

each written as BCE-with-logits and halved (the ½ of BasicSR's implementation), so L_G is the symmetric
form: the generator also learns from the real images' term, which is the paper's point. For patch
discriminators C(x) is a map, and E[.] is the batch mean at each position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(output, target)


def _ragan(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float) -> torch.Tensor:
    """½[BCE(C(x_r) - E[C(x_f)], real_label) + BCE(C(x_f) - E[C(x_r)], 1 - real_label)]."""
    real_rel = real_logits - fake_logits.mean(dim=0, keepdim=True)
    fake_rel = fake_logits - real_logits.mean(dim=0, keepdim=True)
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_rel, torch.full_like(real_rel, real_label))
        + F.binary_cross_entropy_with_logits(fake_rel, torch.full_like(fake_rel, 1.0 - real_label))
    )


def ragan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """½[BCE(C(x_r) - E[C(x_f)], 1) + BCE(C(x_f) - E[C(x_r)], 0)]."""
    return _ragan(real_logits, fake_logits, real_label=1.0)


def ragan_g_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """½[BCE(C(x_r) - E[C(x_f)], 0) + BCE(C(x_f) - E[C(x_r)], 1)]: the labels swapped."""
    return _ragan(real_logits, fake_logits, real_label=0.0)


class PerceptualLoss(nn.Module):
    """L1 between VGG19 conv5_4 pre-activation features of output and target (paper sec. 3.3)."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_feat = self.extractor(target)
        return F.l1_loss(self.extractor(output), target_feat)
