"""RaGAN losses against values computed by hand, and the perceptual loss's plumbing."""

from __future__ import annotations

import math

import pytest
import torch

from esrgan.train.losses import PerceptualLoss, l1_loss, ragan_d_loss, ragan_g_loss


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_ragan_by_hand():
    real = torch.tensor([[2.0], [0.5]])
    fake = torch.tensor([[-1.0], [0.0]])
    mean_r, mean_f = 1.25, -0.5
    rr = [2.0 - mean_f, 0.5 - mean_f]  # C(x_r) - E[C(x_f)] = 2.5, 1.0
    ff = [-1.0 - mean_r, 0.0 - mean_r]  # C(x_f) - E[C(x_r)] = -2.25, -1.25
    # D: real judged more real (label 1), fake less real (label 0); log(1 - s(x)) = log s(-x)
    d = 0.5 * (-sum(_log_sigmoid(v) for v in rr) / 2 - sum(_log_sigmoid(-v) for v in ff) / 2)
    # G: the symmetric form, labels swapped
    g = 0.5 * (-sum(_log_sigmoid(-v) for v in rr) / 2 - sum(_log_sigmoid(v) for v in ff) / 2)
    assert ragan_d_loss(real, fake).item() == pytest.approx(d, rel=1e-6)
    assert ragan_g_loss(real, fake).item() == pytest.approx(g, rel=1e-6)
    # -log s(2.5) = 0.0789, -log s(1) = 0.3133, -log s(2.25) = 0.1000, -log s(1.25) = 0.2519
    assert d == pytest.approx(0.5 * ((0.0789 + 0.3133) / 2 + (0.1000 + 0.2519) / 2), abs=1e-3)


def test_ragan_generator_learns_from_real_term():
    # The paper's point: G's loss depends on the real images' logits too (through E[C(x_r)] and
    # C(x_r) - E[C(x_f)]), unlike a standard GAN's generator loss.
    fake = torch.tensor([[0.3], [-0.2]], requires_grad=True)
    ragan_g_loss(torch.tensor([[1.0], [2.0]]), fake).backward()
    grad_a = fake.grad.clone()
    fake.grad = None
    ragan_g_loss(torch.tensor([[5.0], [-3.0]]), fake).backward()
    assert not torch.allclose(grad_a, fake.grad)


def test_ragan_on_patch_maps_uses_batch_mean_per_position():
    real = torch.randn(3, 1, 4, 4)
    fake = torch.randn(3, 1, 4, 4)
    loss = ragan_d_loss(real, fake)
    # position (0, 0) alone must give the same as running the loss on that slice
    per_pos = torch.stack([
        ragan_d_loss(real[..., i, j], fake[..., i, j]) for i in range(4) for j in range(4)
    ]).mean()
    assert loss.item() == pytest.approx(per_pos.item(), rel=1e-6)


def test_perceptual_loss_is_zero_for_identical_images_and_l1():
    loss = PerceptualLoss(torch.nn.Conv2d(3, 2, 3))
    x = torch.rand(1, 3, 8, 8)
    assert loss(x, x).item() == 0.0
    assert loss(x, x + 0.1).item() > 0
    assert l1_loss(torch.zeros(2), torch.tensor([1.0, -3.0])).item() == 2.0
