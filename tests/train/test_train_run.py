"""Whole tiny runs: both stages, exact resume, atomic saves, and one-line errors from the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from esrgan.models.checkpoints import load_generator
from esrgan.train import losses, state
from esrgan.train.cli import main
from esrgan.train.config import resolve_config
from esrgan.train.trainer import StageRun, train


def _run(flags: dict[str, object], **overrides: object):
    return train(resolve_config({**flags, **overrides}))


def _crash_at(monkeypatch, stage: str, iteration: int) -> None:
    """Simulate a kill at the start of ``iteration`` of ``stage`` (after the state of iteration-1)."""
    name = f"{stage}_step"
    original = getattr(StageRun, name)

    def step(self, it, lr, hr):
        if it == iteration:
            raise KeyboardInterrupt("simulated kill")
        return original(self, it, lr, hr)

    monkeypatch.setattr(StageRun, name, step)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_both_stages_write_checkpoints_log_plot_and_config(tiny_flags, val_dir, tmp_path):
    result = _run(tiny_flags, val_data=str(val_dir))
    out = tmp_path / "out"
    for stage in ("psnr", "gan"):
        model = load_generator(out / f"{stage}.safetensors")
        assert model.spec.num_feat == 8 and result.checkpoints[stage] == out / f"{stage}.safetensors"
        assert state.load_state(out / f"state_{stage}.pt")["iter"] == 4
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    val = [r for r in records if r["kind"] == "val"]
    assert {(r["stage"], r["iter"]) for r in val} == {("psnr", 2), ("psnr", 4), ("gan", 2), ("gan", 4)}
    assert all(r["bicubic_psnr_y"] > 20 and "chelsea.png" in r["per_image"] for r in val)
    assert {"loss_pix", "loss_percep", "loss_gan", "loss_d"} <= {k for r in records for k in r}
    assert (out / "training.png").read_bytes()[:4] == b"\x89PNG"
    assert "vgg_weights: untrained" in (out / "config.yaml").read_text()
    assert result.validation["gan"]["bicubic_psnr_y"] > 20


def test_resume_is_exact_in_both_stages(tiny_flags, tmp_path, monkeypatch):
    ref_dir = tmp_path / "ref"
    _run(tiny_flags, output=str(ref_dir))
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _crash_at(m, "psnr", 3)
        with pytest.raises(KeyboardInterrupt):
            _run(tiny_flags, output=str(run_dir))
    assert state.load_state(run_dir / "state_psnr.pt")["iter"] == 2
    with monkeypatch.context() as m:
        _crash_at(m, "gan", 4)
        with pytest.raises(KeyboardInterrupt):
            _run(tiny_flags, output=str(run_dir), resume=True)
    _run(tiny_flags, output=str(run_dir), resume=True)
    for stage in ("psnr", "gan"):
        ref = state.load_state(ref_dir / f"state_{stage}.pt")
        got = state.load_state(run_dir / f"state_{stage}.pt")
        assert got["iter"] == ref["iter"] == 4
        assert _max_diff(ref["g"], got["g"]) <= 1e-5
        assert _max_diff(ref["ema"]["model"], got["ema"]["model"]) <= 1e-5
        ema_ref = load_generator(ref_dir / f"{stage}.safetensors").state_dict()
        assert _max_diff(ema_ref, load_generator(run_dir / f"{stage}.safetensors").state_dict()) <= 1e-5
    assert _max_diff(ref["d"], got["d"]) <= 1e-5
    # the interrupted run must really have been interrupted and resumed (not a vacuous comparison)
    iters = [json.loads(line)["iter"] for line in (run_dir / "log.jsonl").read_text().splitlines()
             if json.loads(line)["stage"] == "gan"]
    assert iters == [1, 2, 3, 4]


def test_crash_mid_save_keeps_the_last_good_state(tiny_flags, tmp_path, monkeypatch):
    real_save = torch.save
    calls = []

    def flaky_save(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            with open(path, "wb") as f:
                f.write(b"half a file")
            raise OSError("disk full (simulated)")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(state.torch, "save", flaky_save)
    with pytest.raises(OSError, match="simulated"):
        _run(tiny_flags, stage="psnr")
    out = tmp_path / "out"
    assert state.load_state(out / "state_psnr.pt")["iter"] == 2
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp")) == []


def _cli(args: list[str]):
    result = CliRunner().invoke(main, args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return result, errors


def test_cli_errors_are_one_line_with_exit_2(tmp_path, train_dir):
    out = str(tmp_path / "o")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"garbage")
    yaml_key = tmp_path / "k.yaml"
    yaml_key.write_text("learning_rate: 1e-3\n")
    yaml_val = tmp_path / "v.yaml"
    yaml_val.write_text("gan_iters: -3\n")
    cases = {
        "empty": (["--data", str(tmp_path / "empty")], "no images found"),
        "bad data": (["--data", str(tmp_path / "bad")], "none of the 1 image"),
        "bad key": (["--data", str(train_dir), "--config", str(yaml_key)], "unknown key 'learning_rate'"),
        "bad value": (["--data", str(train_dir), "--config", str(yaml_val)], "gan_iters must be >= 0"),
        "gan without psnr": (["--data", str(train_dir), "--stage", "gan"], "run --stage psnr first"),
    }
    for name, (args, message) in cases.items():
        result, errors = _cli(["--preset", "tiny", "--output", out, *args])
        assert result.exit_code == 2, name
        assert len(errors) == 1 and message in errors[0], (name, result.stderr)
        assert "Traceback" not in result.output, name
        if name in ("empty", "bad data", "gan without psnr"):  # found before anything is printed or written
            assert "resolved config" not in result.output, name
            assert not (tmp_path / "o" / "config.yaml").exists(), name
    bad = [line for line in _cli(["--preset", "tiny", "--output", out, "--data", str(tmp_path / "bad")])[0]
           .stderr.splitlines() if line.startswith("warning:")]
    assert bad and "x.png" in bad[0]


def test_non_finite_loss_stops_with_iteration_and_loss_named(tiny_flags, tmp_path, monkeypatch):
    calls = []

    def l1(output, target):
        calls.append(1)
        value = torch.nn.functional.l1_loss(output, target)
        return value * float("nan") if len(calls) == 3 else value

    monkeypatch.setattr(losses, "l1_loss", l1)
    result, errors = _cli(["--preset", "tiny", "--stage", "psnr", "--data", tiny_flags["data"],
                           "--output", tiny_flags["output"]])
    assert result.exit_code == 2
    assert len(errors) == 1
    assert "non-finite pix loss" in errors[0] and "iteration 3 of the psnr stage" in errors[0]
    assert state.load_state(tmp_path / "out" / "state_psnr.pt")["iter"] == 2
    # and a second run into the same folder without --resume is refused, naming the state file
    result, errors = _cli(["--preset", "tiny", "--stage", "psnr", "--data", tiny_flags["data"],
                           "--output", tiny_flags["output"]])
    assert result.exit_code == 2 and "--resume" in errors[0]


def test_pytorch_gan_arch_trains_with_the_patch_discriminator(tiny_flags, tmp_path):
    result = _run(tiny_flags, arch="pytorch-gan", psnr_iters=2, gan_iters=2)
    model = load_generator(result.gan_checkpoint)
    assert model.spec.arch == "pytorch-gan"
    d_state = state.load_state(tmp_path / "out" / "state_gan.pt")["d"]
    assert "model.0.weight" in d_state  # PyTorch-GAN's patch discriminator


def test_amp_on_cpu_is_a_usage_error(tiny_flags):
    from esrgan.errors import UsageError

    with pytest.raises(UsageError, match="--amp needs a CUDA device"):
        _run(tiny_flags, amp=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_amp_on_cuda_runs_both_stages(tiny_flags, dtype):
    result = _run(tiny_flags, device="cuda", amp=True, amp_dtype=dtype)
    for stage in ("psnr", "gan"):
        model = load_generator(result.checkpoints[stage])
        assert all(torch.isfinite(p).all() for p in model.parameters())


def test_on_ready_comes_after_the_checks_and_before_training(tiny_flags, tmp_path):
    out = tmp_path / "out"
    seen = []

    def ready(config):
        seen.append((config.preset, (out / "config.yaml").exists(), (out / "psnr.safetensors").exists()))

    train(resolve_config({**tiny_flags, "stage": "psnr"}), on_ready=ready)
    assert seen == [("tiny", True, False)]


def test_plot_has_a_validation_row_only_with_validation(tmp_path):
    from PIL import Image

    from esrgan.train.logbook import append_log, plot_log

    def plot(name: str, with_val: bool) -> tuple[int, int]:
        log = tmp_path / f"{name}.jsonl"
        for it in (1, 2):
            append_log(log, {"stage": "psnr", "kind": "train", "iter": it, "loss_pix": 1.0 / it})
            if with_val:
                append_log(log, {"stage": "psnr", "kind": "val", "iter": it, "psnr_y": 20.0 + it,
                                 "bicubic_psnr_y": 20.0})
        with Image.open(plot_log(log, tmp_path / f"{name}.png")) as im:
            return im.size

    (w1, h1), (w2, h2) = plot("train-only", False), plot("validated", True)
    assert w1 == w2 and h2 == 2 * h1
