"""MATLAB-style bicubic ``imresize`` with antialiasing, for making LR images and the bicubic baseline.

The SR literature (ESRGAN's data, BasicSR's ``imresize``, every published PSNR table) builds LR inputs
with MATLAB's ``imresize(img, 1/scale, 'bicubic')``: a Keys cubic kernel (a = -0.5) whose support is
*widened by 1/scale when shrinking* (antialiasing), with symmetric (mirror) padding at the borders.
PIL's and PyTorch's default resizers differ at the borders or do not antialias, which changes LR
statistics and shifts published PSNR by tenths of a dB, so we reproduce MATLAB's arithmetic here.

Resizing is separable: each axis is a fixed ``out x in`` weight matrix, built once per (size, scale)
and applied with a matrix product, so it runs as fast as numpy's BLAS on crops and whole images.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def output_length(in_len: int, scale: float) -> int:
    """MATLAB's output size for a scale factor: ceil(in * scale)."""
    return int(math.ceil(in_len * scale - 1e-9))


@lru_cache(maxsize=64)
def resize_matrix(in_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The ``out x in`` matrix that resizes one axis (rows sum to 1), mirror-padded like MATLAB."""
    out_len = output_length(in_len, scale)
    width = 4.0
    if scale < 1 and antialias:
        width = width / scale
    # Output pixel centres in input coordinates (1-based, as in MATLAB's contributions()).
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices, may fall outside
    dist = u[:, None] - idx
    if scale < 1 and antialias:
        weights = scale * cubic(dist * scale)
    else:
        weights = cubic(dist)
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric padding: index -k maps to k+1, in_len+k maps to in_len-k+1 (1-based).
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), cols.ravel()), weights.ravel())
    return mat


def imresize(img: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """Resize an H x W (x C) float image by ``scale`` (e.g. 1/4 or 4); returns float64, unclipped."""
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C image, got shape {img.shape}")
    data = np.asarray(img, dtype=np.float64)
    rows = resize_matrix(data.shape[0], float(scale), antialias)
    cols = resize_matrix(data.shape[1], float(scale), antialias)
    if data.ndim == 2:
        return rows @ data @ cols.T
    return np.einsum("oh,hwc,pw->opc", rows, data, cols, optimize=True)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round and clip a [0, 255] float image like MATLAB's uint8 conversion."""
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def downscale_uint8(img: np.ndarray, factor: int) -> np.ndarray:
    """A uint8 LR image, as the datasets of the SR literature were made (MATLAB imresize, then uint8)."""
    return to_uint8(imresize(img.astype(np.float64), 1.0 / factor))


def upscale_uint8(img: np.ndarray, factor: int) -> np.ndarray:
    """The bicubic baseline every SR table compares against (MATLAB imresize upscaling, then uint8)."""
    return to_uint8(imresize(img.astype(np.float64), float(factor)))


def mod_crop(img: np.ndarray, factor: int) -> np.ndarray:
    """Crop H and W down to multiples of ``factor`` so that LR x factor == HR exactly."""
    h, w = img.shape[:2]
    return img[: h - h % factor, : w - w % factor]
