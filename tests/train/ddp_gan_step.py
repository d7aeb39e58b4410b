"""One GAN-stage step of the trainer on a fixed global batch; saves G's and D's gradients.

Run by tests/train/test_train_ddp.py under torchrun (each rank takes its share of the batch) and in
one process (the whole batch): gradients, unlike weights after Adam steps, compare without Adam turning
float noise into whole steps. Usage: python -m tests.train.ddp_gan_step DATA INIT OUTPUT_DIR GRADS_FILE
"""

from __future__ import annotations

import sys

import torch

from esrgan.train.config import resolve_config
from esrgan.train.data import PatchDataset, scan_images
from esrgan.train.distributed import DistInfo, init_distributed, shutdown
from esrgan.train.trainer import StageRun

BATCH = 4


def step_gradients(data: str, init: str, output: str, info: DistInfo, positions: range = range(BATCH)) -> dict:
    """G's and D's gradients after the trainer's first GAN step on the samples at ``positions``."""
    config = resolve_config({
        "preset": "tiny", "stage": "gan", "data": data, "init": init, "output": output, "batch_size": BATCH,
    })
    dataset = PatchDataset(scan_images(data, config.patch_size), config.patch_size, config.scale, seed=0)
    lr, hr = (torch.stack(t) for t in zip(*(dataset[p] for p in positions), strict=True))
    run = StageRun(config, "gan", torch.device("cpu"), info, dataset, [])
    run.gan_step(1, lr[info.rank :: info.world], hr[info.rank :: info.world])
    assert run.d is not None
    return {
        "g": {n: p.grad.clone() for n, p in run.g.named_parameters()},
        "d": {n: p.grad.clone() for n, p in run.d.named_parameters()},
    }


def main(data: str, init: str, output: str, grads_file: str) -> None:
    info = init_distributed("cpu")
    try:
        grads = step_gradients(data, init, output, info)
        if info.is_main:
            torch.save(grads, grads_file)
    finally:
        shutdown(info)


if __name__ == "__main__":
    main(*sys.argv[1:5])
