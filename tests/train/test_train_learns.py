"""A short smoke run learns, and validation says in one line when a model's output is constant."""

from __future__ import annotations

import json
import logging

import numpy as np
import torch
from torch import nn

from esrgan.train.config import resolve_config
from esrgan.train.data import PatchDataset, scan_images
from esrgan.train.distributed import DistInfo
from esrgan.train.trainer import StageRun, train
from esrgan.train.validate import evaluate, prepare_validation


def test_tiny_smoke_run_validation_psnr_improves(tiny_flags, val_dir, tmp_path):
    # The run that once produced black images: 40 PSNR-stage iterations of the tiny preset.
    train(resolve_config({
        **tiny_flags, "stage": "psnr", "psnr_iters": 40, "val_data": str(val_dir), "val_every": 10,
    }))
    records = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    val = [r for r in records if r["kind"] == "val"]
    assert [r["iter"] for r in val] == [10, 20, 30, 40]
    assert val[-1]["psnr_y"] > val[0]["psnr_y"] + 3.0
    assert val[-1]["constant_output"] is None


class _Flat(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 3, x.shape[2] * 4, x.shape[3] * 4), self.value)


def test_constant_output_is_reported(val_dir):
    images = prepare_validation(val_dir, 4)
    black = evaluate(_Flat(-0.3), images, 4)
    assert black.constant_output == (0, 0, 0)
    assert "output is constant" in black.constant_warning() and "\n" not in black.constant_warning()
    assert evaluate(_Flat(0.5), images, 4).constant_output == (128, 128, 128)
    bicubic_like = evaluate(nn.Upsample(scale_factor=4, mode="bicubic"), images, 4)
    assert bicubic_like.constant_output is None and bicubic_like.constant_warning() is None


def test_trainer_validation_warns_once_per_validation_on_constant_output(tiny_flags, val_dir, caplog):
    config = resolve_config({**tiny_flags, "stage": "psnr", "val_data": str(val_dir)})
    dataset = PatchDataset(scan_images(config.data, 32), 32, 4, seed=0)
    run = StageRun(config, "psnr", torch.device("cpu"), DistInfo(), dataset, prepare_validation(val_dir, 4))
    with torch.no_grad():  # an output far below 0 everywhere: black after clamping
        run.ema.model.conv_last.weight.zero_()
        run.ema.model.conv_last.bias.fill_(-1.0)
    with caplog.at_level(logging.WARNING, logger="esrgan.train"):
        run.validate(1)
    lines = [r.getMessage() for r in caplog.records if "constant" in r.getMessage()]
    assert len(lines) == 1 and "(0, 0, 0)" in lines[0] and "[psnr 1]" in lines[0]
    assert np.isfinite(run.last_val.psnr)
