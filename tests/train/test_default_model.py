"""The checked-in default x4 model: its data lists are disjoint and its reported numbers are real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esrgan.models.checkpoints import load_generator
from esrgan.photographs import DEFAULT_MODEL_HELD_OUT, DEFAULT_MODEL_TRAIN, export_photos, photograph
from esrgan.train.imresize import downscale_uint8, mod_crop
from esrgan.train.validate import psnr_ssim_y, super_resolve

REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "reports" / "default_model"


def test_training_and_held_out_photos_are_disjoint_and_exportable(tmp_path):
    assert not set(DEFAULT_MODEL_TRAIN) & set(DEFAULT_MODEL_HELD_OUT)
    assert photograph("motorcycle_left").shape[2] == 3 and photograph("camera").shape[2] == 3
    (path,) = export_photos(tmp_path, ("coins",))
    assert path.name == "coins.png" and path.stat().st_size > 0


def test_checked_in_model_reproduces_its_held_out_numbers():
    ckpt = REPORT / "default_x4.safetensors"
    summary = json.loads((REPORT / "default_x4.json").read_text())
    assert ckpt.stat().st_size < 4 * 1024 * 1024  # as the shipped ONNX file (tests/runtime)
    model = load_generator(ckpt)
    assert model.spec.scale == 4 and summary["spec"] == model.spec.to_dict()
    held = summary["held_out"]
    assert held["psnr_y"] - held["bicubic_psnr_y"] >= 0.5  # the shipped model's quality bar (README)
    # re-measure one held-out photograph (the smallest) and compare with the recorded number
    hr = mod_crop(photograph("coins"), 4)
    psnr, ssim = psnr_ssim_y(super_resolve(model, downscale_uint8(hr, 4)), hr, 4)
    recorded = held["per_image"]["coins.png"]
    assert psnr == pytest.approx(recorded["psnr_y"], abs=1e-3)
    assert ssim == pytest.approx(recorded["ssim_y"], abs=1e-4)
    assert psnr > recorded["bicubic_psnr_y"]
