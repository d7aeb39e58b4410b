"""RaGAN losses and their gradients against values computed by hand and a port of BasicSR's D step.

BasicSR's discriminator step (basicsr/models/esrgan_model.py, ESRGANModel.optimize_parameters), ported
below from its published behaviour: fake_d_pred = net_d(output).detach(); real_d_pred = net_d(gt);
l_d_real = BCE(real_d_pred - mean(fake_d_pred), 1) * 0.5, backward; fake_d_pred = net_d(output.detach());
l_d_fake = BCE(fake_d_pred - mean(real_d_pred.detach()), 0) * 0.5, backward; then the optimiser step.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from esrgan.models.pytorch_gan import IMAGENET_MEAN, IMAGENET_STD
from esrgan.train.config import resolve_config
from esrgan.train.data import PatchDataset, scan_images
from esrgan.train.distributed import DistInfo
from esrgan.train.losses import PerceptualLoss, l1_loss, ragan_d_loss, ragan_g_loss
from esrgan.train.trainer import StageRun


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


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_discriminator_gradient_treats_batch_means_as_constants():
    real = torch.tensor([[2.0], [0.5], [-0.3]], requires_grad=True)
    fake = torch.tensor([[-1.0], [0.0], [0.4]], requires_grad=True)
    ragan_d_loss(real, fake).backward()
    r, f = [2.0, 0.5, -0.3], [-1.0, 0.0, 0.4]
    mean_r, mean_f, n = sum(r) / 3, sum(f) / 3, 3
    # d/dz BCE(z, y) = sigmoid(z) - y, each term averaged over n and halved; no term through the means
    grad_r = [0.5 * (_sigmoid(v - mean_f) - 1.0) / n for v in r]
    grad_f = [0.5 * _sigmoid(v - mean_r) / n for v in f]
    assert real.grad.flatten().tolist() == pytest.approx(grad_r, rel=1e-6)
    assert fake.grad.flatten().tolist() == pytest.approx(grad_f, rel=1e-6)


def _basicsr_d_step_grads(net_d: nn.Module, gt: torch.Tensor, output: torch.Tensor) -> list[torch.Tensor]:
    net_d.zero_grad()
    fake_d_pred = net_d(output).detach()
    real_d_pred = net_d(gt)
    l_d_real = F.binary_cross_entropy_with_logits(
        real_d_pred - torch.mean(fake_d_pred), torch.ones_like(real_d_pred)) * 0.5
    l_d_real.backward()
    fake_d_pred = net_d(output.detach())
    l_d_fake = F.binary_cross_entropy_with_logits(
        fake_d_pred - torch.mean(real_d_pred.detach()), torch.zeros_like(fake_d_pred)) * 0.5
    l_d_fake.backward()
    return [p.grad.clone() for p in net_d.parameters()]


def test_discriminator_step_gradient_matches_basicsr():
    torch.manual_seed(0)
    net_d = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.LeakyReLU(0.2), nn.Linear(5, 1))
    gt, output = torch.randn(4, 6), torch.randn(4, 6)
    expected = _basicsr_d_step_grads(net_d, gt, output)
    net_d.zero_grad()
    ragan_d_loss(net_d(gt), net_d(output)).backward()
    for ours, ref in zip((p.grad for p in net_d.parameters()), expected, strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-7)
    # gradients through the means (PyTorch-GAN's form) would differ
    net_d.zero_grad()
    real_logits, fake_logits = net_d(gt), net_d(output)
    (0.5 * (F.binary_cross_entropy_with_logits(real_logits - fake_logits.mean(), torch.ones(4, 1))
            + F.binary_cross_entropy_with_logits(fake_logits - real_logits.mean(), torch.zeros(4, 1)))).backward()
    assert not torch.allclose(net_d[3].weight.grad, expected[-2], rtol=1e-3)


def test_pytorch_gan_pixel_loss_is_on_imagenet_normalised_images(tiny_flags):
    config = resolve_config({**tiny_flags, "arch": "pytorch-gan", "stage": "psnr"})
    dataset = PatchDataset(scan_images(config.data, 32), 32, 4, seed=0)
    run = StageRun(config, "psnr", torch.device("cpu"), DistInfo(), dataset, [])
    out, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    # PyTorch-GAN's ESRGAN: L1Loss(generator(lr_normalised), hr_normalised)
    expected = F.l1_loss((out - mean) / std, (hr - mean) / std)
    assert run._pixel_loss(out, hr).item() == pytest.approx(expected.item(), rel=1e-6)
    assert expected.item() > 4 * F.l1_loss(out, hr).item()
    rrdb = StageRun(resolve_config({**tiny_flags, "stage": "psnr"}), "psnr", torch.device("cpu"), DistInfo(),
                    dataset, [])
    assert rrdb._pixel_loss(out, hr).item() == pytest.approx(F.l1_loss(out, hr).item(), rel=1e-6)
