"""MATLAB-style bicubic resize against a per-pixel reference written from MATLAB's definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from esrgan.train.imresize import downscale_uint8, imresize, mod_crop, output_length, upscale_uint8
from tests.conftest import photo


def _keys(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _mirror(i: int, n: int) -> int:
    """0-based symmetric padding: -1 -> 0, -2 -> 1, n -> n-1, n+1 -> n-2."""
    while i < 0 or i >= n:
        i = -i - 1 if i < 0 else 2 * n - i - 1
    return i


def _axis_taps(out_index: int, in_len: int, scale: float) -> list[tuple[int, float]]:
    """(input index, weight) pairs of one output pixel, straight from MATLAB's imresize definition."""
    shrink = scale < 1
    width = 4 / scale if shrink else 4
    centre = (out_index + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based
    first = math.floor(centre - width / 2)
    taps = []
    for j in range(first, first + math.ceil(width) + 2):
        d = centre - j
        w = scale * _keys(scale * d) if shrink else _keys(d)
        taps.append((_mirror(j - 1, in_len), w))
    total = sum(w for _, w in taps)
    return [(j, w / total) for j, w in taps]


def reference_resize(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    out = np.zeros((oh, ow) + img.shape[2:])
    for y in range(oh):
        ty = _axis_taps(y, h, scale)
        for x in range(ow):
            tx = _axis_taps(x, w, scale)
            acc = np.zeros(img.shape[2:])
            for iy, wy in ty:
                for ix, wx in tx:
                    acc = acc + wy * wx * img[iy, ix]
            out[y, x] = acc
    return out


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2, 4])
def test_matches_per_pixel_reference(scale):
    img = photo("astronaut")[200:216, 240:252].astype(np.float64)  # 16 x 12, borders included
    np.testing.assert_allclose(imresize(img, scale), reference_resize(img, scale), atol=1e-9)


def test_interior_matches_pil_antialiased_bicubic():
    # PIL's BICUBIC also uses a = -0.5 and widens the kernel when shrinking; it differs only at the
    # borders (it renormalises instead of mirroring), so the interiors must agree.
    grey = photo("camera")[..., 0].astype(np.float32)
    ours = imresize(grey, 1 / 4)
    pil = np.asarray(Image.fromarray(grey, mode="F").resize((128, 128), Image.BICUBIC))
    assert np.abs(ours - pil)[4:-4, 4:-4].max() < 1e-3
    assert np.abs(ours - pil).max() > 1e-2  # and the borders really differ: mirror padding is ours


def test_sizes_constants_and_uint8_helpers():
    assert output_length(37, 1 / 4) == 10 and output_length(10, 4) == 40
    const = np.full((37, 53, 3), 91.0)
    np.testing.assert_allclose(imresize(const, 1 / 4), 91.0, atol=1e-9)
    hr = mod_crop(photo("coffee")[:67, :81], 4)
    assert hr.shape == (64, 80, 3)
    lr = downscale_uint8(hr, 4)
    assert lr.dtype == np.uint8 and lr.shape == (16, 20, 3)
    assert upscale_uint8(lr, 4).shape == hr.shape
