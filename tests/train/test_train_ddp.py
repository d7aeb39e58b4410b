"""A 2-process DistributedDataParallel run on CPU (gloo), launched by torchrun as users would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from esrgan.models.checkpoints import load_generator
from esrgan.train.config import resolve_config
from esrgan.train.state import load_state
from esrgan.train.trainer import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(tiny_flags, tmp_path):
    ddp_out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "esrgan.train", "--preset", "tiny", "--stage", "psnr", "--data", str(tiny_flags["data"]),
        "--output", str(ddp_out),
    ]
    # A session of its own: torchrun signals its process group when a worker fails, and that group
    # must not include the test runner.
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # rank 0 alone prints and writes: one resolved config, one log line per iteration
    assert proc.stdout.count("resolved config:") == 1
    records = [json.loads(line) for line in (ddp_out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]

    # The global batch is split across ranks and DDP averages gradients, so one process with the
    # same global batch must reach the same weights (up to float summation order).
    train(resolve_config({**tiny_flags, "stage": "psnr", "output": str(tmp_path / "single")}))
    a = load_state(ddp_out / "state_psnr.pt")["g"]
    b = load_state(tmp_path / "single" / "state_psnr.pt")["g"]
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff <= 1e-5
    assert load_generator(ddp_out / "psnr.safetensors").spec.num_feat == 8
