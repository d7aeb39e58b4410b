"""Validation as the SR literature reports it: PSNR and SSIM on the Y channel, border cropped.

Y is ITU-R BT.601 luma of [0, 255] RGB (16..235), ``scale`` pixels are cropped at each border, and
SSIM uses Wang et al.'s Gaussian window (sigma 1.5, population covariance) through scikit-image.
Each HR image is mod-cropped to a multiple of the scale, downscaled with MATLAB bicubic (uint8) to make
the model's input, and the same input upscaled with MATLAB bicubic is the baseline reported beside it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from esrgan.train.data import find_images, load_rgb, to_tensor
from esrgan.train.imresize import downscale_uint8, mod_crop, upscale_uint8

log = logging.getLogger("esrgan.train")


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma (16..235) of an H x W x 3 uint8 image, as float64."""
    rgb = img.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def psnr_ssim_y(output: np.ndarray, reference: np.ndarray, crop: int) -> tuple[float, float]:
    """PSNR (dB) and SSIM of two uint8 RGB images on Y, ``crop`` pixels removed at each border."""
    a, b = rgb_to_y(output), rgb_to_y(reference)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    psnr = peak_signal_noise_ratio(b, a, data_range=255.0)
    ssim = structural_similarity(
        b, a, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )
    return float(psnr), float(ssim)


@dataclass
class ValImage:
    name: str
    hr: np.ndarray
    lr: np.ndarray
    bicubic_psnr: float
    bicubic_ssim: float


@dataclass
class ValResult:
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)
    # the one RGB value of every output pixel when the model's output is the same flat colour on every
    # validation image (an untrained or collapsed model: its figures would not move), else None
    constant_output: tuple[int, ...] | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "psnr_y": self.psnr, "ssim_y": self.ssim, "bicubic_psnr_y": self.bicubic_psnr,
            "bicubic_ssim_y": self.bicubic_ssim, "per_image": self.per_image,
            "constant_output": list(self.constant_output) if self.constant_output is not None else None,
        }

    def constant_warning(self) -> str | None:
        """One line saying the model's output is constant, or None."""
        if self.constant_output is None:
            return None
        return (
            f"the model's output is constant (every pixel of every validation image is RGB "
            f"{self.constant_output}): it has not learned the images yet, or has collapsed"
        )


def prepare_validation(folder: str | os.PathLike[str], scale: int) -> list[ValImage]:
    """HR/LR pairs and their bicubic scores, computed once per run."""
    images: list[ValImage] = []
    root = Path(folder)
    for path in find_images(root):
        try:
            hr = mod_crop(load_rgb(path), scale)
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable validation image %s (%s)", path, exc)
            continue
        if min(hr.shape[:2]) < 4 * scale:
            log.warning("skipping validation image %s: too small for x%d", path, scale)
            continue
        lr = downscale_uint8(hr, scale)
        psnr, ssim = psnr_ssim_y(upscale_uint8(lr, scale), hr, scale)
        images.append(ValImage(str(path.relative_to(root)), hr, lr, psnr, ssim))
    if not images:
        log.warning("no usable validation images in %s: validation is skipped", root)
    return images


@torch.no_grad()
def super_resolve(model: nn.Module, lr: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Run a generator on one uint8 RGB image and return uint8 RGB."""
    x = to_tensor(lr).unsqueeze(0).to(device)
    y = model(x).clamp_(0, 1).mul_(255.0).round_()
    return y[0].permute(1, 2, 0).to("cpu", torch.uint8).numpy()


def evaluate(model: nn.Module, images: list[ValImage], scale: int, device: torch.device | str = "cpu") -> ValResult:
    """Mean and per-image PSNR-Y / SSIM-Y of ``model`` and of bicubic on the validation images."""
    was_training = model.training
    model.eval()
    per_image: dict[str, dict[str, float]] = {}
    flat_values: set[tuple[int, ...]] = set()
    for item in images:
        output = super_resolve(model, item.lr, device)
        first = output[0, 0]
        flat_values.add(tuple(int(v) for v in first) if (output == first).all() else ())
        psnr, ssim = psnr_ssim_y(output, item.hr, scale)
        per_image[item.name] = {
            "psnr_y": psnr, "ssim_y": ssim, "bicubic_psnr_y": item.bicubic_psnr, "bicubic_ssim_y": item.bicubic_ssim,
        }
    model.train(was_training)
    n = max(len(per_image), 1)

    def mean(key: str) -> float:
        return sum(v[key] for v in per_image.values()) / n

    constant = next(iter(flat_values)) if len(flat_values) == 1 and () not in flat_values else None
    return ValResult(
        mean("psnr_y"), mean("ssim_y"), mean("bicubic_psnr_y"), mean("bicubic_ssim_y"), per_image, constant,
    )
