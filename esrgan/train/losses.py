"""Losses of the two stages: pixel L1, the relativistic average GAN loss, and the perceptual loss.

RaGAN follows the ESRGAN paper (Wang et al. 2018, eq. 1-2), with the relativistic average
discriminator D_Ra(a, b) = sigmoid(C(a) - E[C(b)]) and the expectation taken over the batch:

    L_D = -E_r[log D_Ra(x_r, x_f)] - E_f[log(1 - D_Ra(x_f, x_r))]
    L_G = -E_r[log(1 - D_Ra(x_r, x_f))] - E_f[log D_Ra(x_f, x_r)]

each written as BCE-with-logits and halved, as BasicSR's ESRGANModel does. L_G is the symmetric form:
the generator also learns from the real images' term, which is the paper's point, and its gradient
flows through E[C(x_f)]. For L_D the batch means are constants (detached), as in BasicSR's current
ESRGANModel.optimize_parameters (it backpropagates the real and the fake half separately, each
against the other half's detached mean); letting D's gradient flow through the means as well, as
PyTorch-GAN's ESRGAN does, roughly doubles it. Both archs use BasicSR's form. For patch
discriminators C(x) is a map, and E[.] is the batch mean at each position (PyTorch-GAN's
``mean(0, keepdim=True)``); for BasicSR's one-logit discriminator that is its ``torch.mean``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(output, target)


def _bce(logits: torch.Tensor, label: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def ragan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """½[BCE(C(x_r) - E[C(x_f)], 1) + BCE(C(x_f) - E[C(x_r)], 0)], the means detached (BasicSR)."""
    real_mean = real_logits.detach().mean(dim=0, keepdim=True)
    fake_mean = fake_logits.detach().mean(dim=0, keepdim=True)
    return 0.5 * (_bce(real_logits - fake_mean, 1.0) + _bce(fake_logits - real_mean, 0.0))


def ragan_g_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """½[BCE(C(x_r) - E[C(x_f)], 0) + BCE(C(x_f) - E[C(x_r)], 1)]: the labels swapped, gradients through E[C(x_f)]."""
    real_mean = real_logits.mean(dim=0, keepdim=True)
    fake_mean = fake_logits.mean(dim=0, keepdim=True)
    return 0.5 * (_bce(real_logits - fake_mean, 0.0) + _bce(fake_logits - real_mean, 1.0))


def normalized_l1_loss(output: torch.Tensor, target: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """L1 between images normalised by a per-channel ``std`` (the mean cancels): PyTorch-GAN's pixel loss."""
    return F.l1_loss(output / std, target / std)


class PerceptualLoss(nn.Module):
    """L1 between VGG19 conv5_4 pre-activation features of output and target (paper sec. 3.3)."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_feat = self.extractor(target)
        return F.l1_loss(self.extractor(output), target_feat)
