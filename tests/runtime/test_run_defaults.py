"""esrgan-run's defaults have one owner, ``RunOptions``: the CLI, ``Upscaler`` and ``TileEngine`` agree with it."""

from __future__ import annotations

import inspect
from dataclasses import fields

import numpy as np
import pytest

from esrgan.runtime import cli, paths, tiling
from esrgan.runtime.backends.base import Backend, BackendInfo
from esrgan.runtime.engine import TileEngine
from esrgan.runtime.images import from_array
from esrgan.runtime.options import RunOptions
from esrgan.runtime.pipeline import FolderRun
from esrgan.runtime.upscaler import Upscaler

# CLI parameter name -> (RunOptions field, how the CLI turns the flag's text into the field's value)
_CLI_NAMES = {"tile_text": ("tile", cli.parse_tile), "fmt": ("format", None), "shard": ("shard", paths.parse_shard)}
_NOT_RUN_OPTIONS = {"input", "output", "model", "quiet", "debug"}
_NO_FLAG = {"workers"}  # a Python-API-only knob


class Nearest(Backend):
    """x2 nearest on the CPU, recording the window shapes it is given."""

    def __init__(self) -> None:
        self.scale, self.in_channels = 2, 3
        self.info = BackendInfo("fake", "fp32", "cpu")
        self.shapes: list[tuple[int, ...]] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.shapes.append(batch.shape)
        return batch.repeat(2, axis=2).repeat(2, axis=3)


def _cli_defaults() -> dict[str, object]:
    """{RunOptions field: the value esrgan-run uses when the flag is not given}."""
    given = cli.main.make_context("esrgan-run", ["in", "out"], resilient_parsing=True).params  # what main() receives
    out = {}
    for key, value in given.items():
        if key not in _NOT_RUN_OPTIONS:
            name, parse = _CLI_NAMES.get(key, (key, None))
            out[name] = parse(value) if parse else value
    return out


def test_every_cli_default_is_the_run_options_field():
    defaults = RunOptions()
    cli_defaults = _cli_defaults()
    flagged = {f.name for f in fields(RunOptions)} - _NO_FLAG
    assert set(cli_defaults) == flagged  # every option has a flag, every run flag is an option
    for name, value in cli_defaults.items():
        assert value == getattr(defaults, name), name


def test_help_shows_the_run_options_defaults():
    from click.testing import CliRunner

    text = " ".join(CliRunner().invoke(cli.main, ["--help"]).output.split())
    assert f"[default: {RunOptions().tile_pad}; x>=0]" in text
    assert f"[default: {RunOptions().tile}]" in text


@pytest.mark.parametrize("function", [Upscaler.__init__, Upscaler.upscale_folder, TileEngine.__init__])
def test_python_api_defaults_are_the_run_options_fields(function):
    defaults = RunOptions()
    checked = 0
    for name, param in inspect.signature(function).parameters.items():
        if name in {f.name for f in fields(RunOptions)} and param.default is not inspect.Parameter.empty:
            assert param.default == getattr(defaults, name), f"{function.__qualname__}({name}=...)"
            checked += 1
    assert checked >= 3


def test_tile_pad_default_is_tilings_measured_pad():
    assert RunOptions().tile_pad == tiling.DEFAULT_TILE_PAD
    assert not hasattr(tiling, "DEFAULT_TILE")  # the engine's default tile is RunOptions' "auto"


def test_tile_engine_without_settings_tiles_like_run_options():
    image = from_array(np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8))
    runs = []
    for kwargs in ({}, {"tile": RunOptions().tile, "tile_pad": RunOptions().tile_pad, "batch": RunOptions().batch}):
        backend, done = Nearest(), []
        engine = TileEngine(backend, **kwargs, on_done=done.append, on_fail=lambda w, m: None)
        engine.submit(0, image)
        runs.append((engine.tile, engine.pad, engine.batch, backend.shapes, done[0].outputs[0]))
    (tile, pad, batch, shapes, out), again = runs
    assert (tile, pad, batch, shapes) == again[:4]
    np.testing.assert_array_equal(out, again[4])
    assert pad == RunOptions().tile_pad and batch == RunOptions().batch


def test_upscaler_and_folder_run_use_run_options(tmp_path):
    from PIL import Image

    up = Upscaler(backend=Nearest(), say=None)
    assert (up.tile, up.tile_pad, up.batch) == (RunOptions().tile, RunOptions().tile_pad, RunOptions().batch)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((20, 24, 3), 7, np.uint8)).save(src / "a.png")
    backend = Nearest()
    summary = FolderRun(backend, RunOptions(tile=0), progress=False).run(
        paths.plan_run(str(src), tmp_path / "out", RunOptions().format, RunOptions().shard,
                       suffix=RunOptions().suffix, overwrite=RunOptions().overwrite).jobs
    )
    border = tiling.border_pad(RunOptions().tile_pad, 20, 24)  # the whole image plus a border within its share
    assert summary.written == 1 and backend.shapes == [(1, 3, 20 + 2 * border, 24 + 2 * border)]


def test_docs_state_the_run_options_defaults():
    from pathlib import Path

    doc = " ".join((Path(__file__).parents[2] / "docs" / "running.md").read_text().split())
    defaults = RunOptions()
    assert f"context around each tile (default {defaults.tile_pad};" in doc
    assert f"JPEG/WebP quality ({defaults.quality})" in doc
    assert f"default {defaults.max_pixels // 1_000_000} MP)" in doc
    assert f"`{defaults.tile}` (default)" in doc


@pytest.mark.parametrize(("args", "line"), [
    (["--backend", "openvino", "--precision", "fp32"], "backend: openvino fp32 on cpu"),
    (["--precision", "fp32"], "CPU backend: openvino fp32 (--precision fp32)"),
])
def test_precision_fp32_pins_openvino_and_auto_to_fp32(tmp_path, args, line):
    """On a BF16 CPU --backend openvino runs BF16 and auto measures BF16 first: --precision fp32 does neither."""
    pytest.importorskip("openvino")
    from click.testing import CliRunner

    from esrgan.runtime.cli import main
    from tests.runtime.conftest import gradient, save

    save(tmp_path / "in" / "a.png", gradient(12, 12))
    r = CliRunner().invoke(main, [str(tmp_path / "in"), str(tmp_path / "out"), *args],
                           env={"ESRGAN_CACHE_DIR": str(tmp_path / "cache")})
    assert r.exit_code == 0, r.output
    assert line in r.output and "measuring" not in r.output


@pytest.mark.parametrize(("backend", "precision"), [("onnxruntime-cpu", "bf16"), ("openvino", "fp16"),
                                                    ("auto", "bf16"), ("tensorrt", "fp32"), ("ncnn-cpu", "bf16")])
def test_a_precision_the_backend_cannot_run_is_one_line_before_any_model(tmp_path, backend, precision, monkeypatch):
    from click.testing import CliRunner

    from esrgan.runtime import upscaler
    from esrgan.runtime.cli import main
    from tests.runtime.conftest import gradient, save

    monkeypatch.setattr(upscaler.Upscaler, "__init__", lambda *a, **k: pytest.fail("loaded a model"))
    save(tmp_path / "in" / "a.png", gradient(12, 12))
    r = CliRunner().invoke(main, [str(tmp_path / "in"), str(tmp_path / "out"), "--backend", backend,
                                  "--precision", precision])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0].startswith(f"error: --precision {precision} with --backend {backend}: ")
