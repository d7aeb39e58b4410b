"""The default model that ships in the package: present, described by its sidecar, and sharper than bicubic."""

from __future__ import annotations

import hashlib
import json

import pytest

from esrgan.photographs import DEFAULT_MODEL_HELD_OUT, photograph
from esrgan.runtime.default_model import MODEL_DIR, MODEL_NAME, SIDECAR_NAME
from esrgan.runtime.upscaler import Upscaler
from esrgan.train.imresize import downscale_uint8, mod_crop, upscale_uint8
from esrgan.train.validate import psnr_ssim_y


def test_sidecar_describes_the_shipped_file():
    model = MODEL_DIR / MODEL_NAME
    meta = json.loads((MODEL_DIR / SIDECAR_NAME).read_text())
    assert meta["onnx_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert model.stat().st_size < 4 * 1024 * 1024  # small enough for the wheel
    assert set(meta["held_out_photos"]) == {f"skimage.data.{n}" for n in DEFAULT_MODEL_HELD_OUT}
    assert not set(meta["training_photos"]) & set(meta["held_out_photos"])
    assert meta["held_out"]["psnr_y_gain_db"] >= 0.5


def test_runtime_output_beats_bicubic_on_a_held_out_photograph():
    hr = mod_crop(photograph("coins")[:160, :160], 4)
    lr = downscale_uint8(hr, 4)
    with Upscaler(None, backend="onnxruntime-cpu", tile=0, say=None) as up:
        sr = up.upscale(lr)
    model_psnr, _ = psnr_ssim_y(sr, hr, 4)
    bicubic_psnr, _ = psnr_ssim_y(upscale_uint8(lr, 4), hr, 4)
    assert model_psnr > bicubic_psnr + 0.3, (model_psnr, bicubic_psnr)


@pytest.mark.parametrize("tile", [48, 64])
def test_default_tiling_matches_whole_image_on_the_default_model(tile):
    lr = downscale_uint8(mod_crop(photograph("chelsea")[:200, :200], 4), 4)
    with Upscaler(None, backend="onnxruntime-cpu", tile=0, say=None) as whole:
        ref = whole.upscale(lr)
    with Upscaler(None, backend="onnxruntime-cpu", tile=tile, say=None) as tiled:
        out = tiled.upscale(lr)
    assert (abs(ref.astype(int) - out.astype(int)) <= 1).all()
