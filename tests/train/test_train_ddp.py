"""A 2-process DistributedDataParallel run on CPU (gloo), launched by torchrun as users would.

Both stages: in the GAN stage the discriminator sees the global batch on every rank, so its batch-norm
statistics and the RaGAN batch means are those of one process with the whole batch: 2 ranks x batch 1
must compute the losses of 1 process x batch 2 and reach its weights (see the tolerances below).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from esrgan.models.build import build_generator
from esrgan.models.checkpoints import load_generator, save_generator
from esrgan.train.config import resolve_config
from esrgan.train.distributed import DistInfo
from esrgan.train.state import load_state
from tests.train.ddp_gan_step import BATCH, step_gradients

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process_in_both_stages(tiny_flags, tmp_path):
    ddp_out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "esrgan.train", "--preset", "tiny", "--stage", "both", "--data", str(tiny_flags["data"]),
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
    for stage in ("psnr", "gan"):
        assert [r["iter"] for r in records if r["kind"] == "train" and r["stage"] == stage] == [1, 2, 3, 4]

    # The global batch is split across ranks and DDP averages gradients, so one process with the
    # same global batch must reach the same weights (up to float summation order). It runs in a fresh
    # process too, as the ranks and a user's run do, with the ranks' thread count.
    single_cmd = [sys.executable, "-m", "esrgan.train", "--preset", "tiny", "--stage", "both",
                  "--data", str(tiny_flags["data"]), "--output", str(tmp_path / "single")]
    proc = subprocess.run(single_cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    single = [json.loads(line) for line in (tmp_path / "single" / "log.jsonl").read_text().splitlines()]
    # The first GAN iteration's losses: G's RaGAN term uses the discriminator on the whole batch (its
    # batch norm with 2 samples; per-rank it would see 1 and fail), D's loss the whole batch's means.
    first = [next(r for r in log if r["kind"] == "train" and r["stage"] == "gan") for log in (records, single)]
    for key in ("loss_pix", "loss_gan", "loss_d"):
        assert first[0][key] == pytest.approx(first[1][key], rel=2e-5), key
    # Weights: float rounding differs (1e-6 after the PSNR stage), and Adam turns noise-level gradients
    # (e.g. of convs before a batch norm over 2 samples at 1x1, whose output is always +-1) into
    # steps of about the learning rate, so the GAN stage's weights agree within a few such steps.
    for stage, net, tol in (("psnr", "g", 1e-5), ("gan", "g", 2e-4), ("gan", "d", 4 * 1e-4 * 1.5)):
        a = load_state(ddp_out / f"state_{stage}.pt")[net]
        b = load_state(tmp_path / "single" / f"state_{stage}.pt")[net]
        diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        assert diff <= tol, (stage, net, diff)
    assert load_generator(ddp_out / "psnr.safetensors").spec.num_feat == 8


def _max_rel_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-12)).item() for k in a)


@pytest.mark.slow
def test_gan_step_gradients_under_ddp_are_the_one_process_gradients(tiny_flags, tmp_path):
    init = tmp_path / "psnr.safetensors"
    torch.manual_seed(0)
    save_generator(build_generator(resolve_config({**tiny_flags, "stage": "psnr"}).spec), init)
    data = str(tiny_flags["data"])
    grads_file = tmp_path / "ddp_grads.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "tests.train.ddp_gan_step", data, str(init), str(tmp_path / "ddp"), str(grads_file),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ddp = torch.load(grads_file)
    single = step_gradients(data, str(init), str(tmp_path / "single"), DistInfo())
    for net in ("g", "d"):
        assert _max_rel_diff(ddp[net], single[net]) < 1e-4, net
    # Per-rank statistics (BasicSR's DDP: each rank's D batch norm and RaGAN means over its own 2
    # samples, gradients averaged) give other gradients: the check above can tell them apart.
    halves = [step_gradients(data, str(init), str(tmp_path / f"half{i}"), DistInfo(), range(i, BATCH, 2))
              for i in range(2)]
    per_rank = {k: (halves[0]["d"][k] + halves[1]["d"][k]) / 2 for k in halves[0]["d"]}
    assert _max_rel_diff(per_rank, single["d"]) > 1e-2
