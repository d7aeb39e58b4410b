"""Bad training inputs end in a warning or one line: decompression bombs, malformed states, --resume."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from esrgan.train import state
from esrgan.train.cli import main
from esrgan.train.data import PatchDataset, scan_images
from tests.train.conftest import write_png


@pytest.fixture
def small_pixel_limit(monkeypatch):
    """Pillow's decompression-bomb limit lowered so that a 200x200 image is a 'bomb' (over twice the limit)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)


def test_decompression_bomb_is_skipped_with_a_warning(train_dir, small_pixel_limit, caplog):
    bomb = write_png(train_dir / "bomb.png", np.zeros((200, 200, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        usable = scan_images(train_dir, 32)
    assert bomb not in usable and len(usable) == 3
    assert any("bomb.png" in r.getMessage() for r in caplog.records)
    # A file that became a bomb after the scan is skipped when the patch is drawn, too.
    good = next(p for p in usable if p.name == "astronaut.png")
    dataset = PatchDataset([bomb, good], 32, 4, seed=0, augment=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        lr, hr = dataset[[int(i) for i in dataset.order(0)].index(0)]
    assert hr.shape[-2:] == (32, 32) and any("bomb.png" in r.getMessage() for r in caplog.records)


def _cli(args: list[str]):
    result = CliRunner().invoke(main, args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return result, errors


def test_resume_without_saved_state_is_refused(tiny_flags):
    result, errors = _cli(["--preset", "tiny", "--stage", "psnr", "--data", tiny_flags["data"],
                           "--output", tiny_flags["output"], "--resume"])
    assert result.exit_code == 2 and len(errors) == 1 and "nothing to resume" in errors[0], result.stderr


@pytest.mark.parametrize("damage", ["missing entry", "wrong shape", "not a dict"])
def test_malformed_state_is_one_line_exit_2(tiny_flags, tmp_path, damage):
    args = ["--preset", "tiny", "--stage", "psnr", "--data", tiny_flags["data"], "--output", tiny_flags["output"]]
    result, errors = _cli(args)
    assert result.exit_code == 0, result.stderr
    path = tmp_path / "out" / "state_psnr.pt"
    saved = state.load_state(path)
    if damage == "missing entry":
        del saved["opt_g"]
    elif damage == "wrong shape":
        key = next(iter(saved["g"]))
        saved["g"][key] = torch.zeros(1, 2, 3)
    else:
        saved = [saved["iter"]]
    torch.save(saved, path)
    result, errors = _cli([*args, "--resume"])
    assert result.exit_code == 2 and len(errors) == 1, result.stderr
    assert str(path) in errors[0] and "Traceback" not in result.output


@pytest.mark.parametrize("entry,value,named", [
    ("iter", -5, "iter"), ("iter", 2.5, "iter"), ("iter", 10**12, "iter"), ("iter", True, "iter"),
    ("spec", None, "spec"), ("stage", "gan", "stage"), ("data", "x", "data"), ("scaler", 5, "scaler"),
    ("ema", {"updates": 1}, "ema"), ("ema", 3, "ema"), ("rng", {"python": 1}, "rng"),
    ("data", {"seed": 1, "position": -3}, "data"), ("config", {"patch_size": "big"}, "config"),
    ("config", {"no_such_key": 1}, "config"),
])
def test_wrong_entry_of_a_state_is_named_in_one_line(tiny_flags, tmp_path, entry, value, named):
    args = ["--preset", "tiny", "--stage", "psnr", "--data", tiny_flags["data"], "--output", tiny_flags["output"]]
    result, errors = _cli(args)
    assert result.exit_code == 0, result.stderr
    path = tmp_path / "out" / "state_psnr.pt"
    saved = state.load_state(path)
    saved[entry] = value
    torch.save(saved, path)
    result, errors = _cli([*args, "--resume"])
    assert result.exit_code == 2 and len(errors) == 1, result.stderr
    assert str(path) in errors[0] and f"entry '{named}'" in errors[0], errors
    assert "Traceback" not in result.output and "resuming" not in result.stderr


@pytest.mark.parametrize("content", ["random", "truncated"])
def test_unreadable_state_never_suggests_weights_only_false(tiny_flags, tmp_path, content):
    args = ["--preset", "tiny", "--stage", "psnr", "--data", tiny_flags["data"], "--output", tiny_flags["output"]]
    assert _cli(args)[0].exit_code == 0
    path = tmp_path / "out" / "state_psnr.pt"
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    for _ in range(20):  # random bytes fail in many ways inside torch.load
        path.write_bytes(rng.bytes(4000) if content == "random" else data[: len(data) // 2])
        result, errors = _cli([*args, "--resume"])
        assert result.exit_code == 2 and len(errors) == 1, result.stderr
        assert "weights_only" not in errors[0].replace("weights_only=True", "") and "Errno" not in errors[0], errors
        assert ("truncated or damaged training state" if content == "truncated" else "not a training state") in errors[0]
        if content == "truncated":
            break
