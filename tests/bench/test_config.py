"""esrgan-bench's settings: one precedence rule (flag > --quick preset > BenchConfig default), one owner."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from esrgan.bench import cli
from esrgan.bench.config import QUICK, BenchConfig, resolve_config
from esrgan.errors import UsageError
from esrgan.runtime.options import RunOptions

FIELDS = [f.name for f in fields(BenchConfig)]
# A value for each field that is neither its default nor the preset's.
OTHER = {"tiles": (48, 96), "batches": (2, 3), "repeat": 9, "warmup": 4, "threads": 3, "images": Path("photos"),
         "backends": ("ort-fp16",), "exporter": "torchscript", "check_tile": 40, "check_pad": 6}


def test_every_field_has_a_distinct_test_value():
    assert set(OTHER) == set(FIELDS)
    defaults = BenchConfig()
    assert all(OTHER[name] not in (getattr(defaults, name), QUICK.get(name)) for name in FIELDS)


def test_nothing_given_is_the_dataclass_defaults():
    assert resolve_config({}) == BenchConfig()
    assert resolve_config(dict.fromkeys(FIELDS)) == BenchConfig()  # None = not given


@pytest.mark.parametrize("name", FIELDS)
def test_flag_beats_preset_beats_default(name):
    default = getattr(BenchConfig(), name)
    preset_value = QUICK.get(name, default)
    assert getattr(resolve_config({name: None}, QUICK), name) == preset_value
    assert getattr(resolve_config({name: OTHER[name]}, QUICK), name) == OTHER[name]
    assert getattr(resolve_config({name: OTHER[name]}), name) == OTHER[name]
    assert getattr(resolve_config({}, {name: OTHER[name]}), name) == OTHER[name]


def test_check_pad_default_is_the_runtimes():
    assert BenchConfig().check_pad == RunOptions().tile_pad


def test_cli_flags_are_unset_by_default_and_help_shows_the_dataclass():
    given = cli.main.make_context("esrgan-bench", [], resilient_parsing=True).params
    for name in ("tiles", "batches", "repeat", "warmup", "threads", "exporter", "check_tile", "check_pad"):
        assert given[name] is None, name  # so that the preset can apply
    text = " ".join(CliRunner().invoke(cli.main, ["--help"]).output.split())
    defaults = BenchConfig()
    assert f"[default: {','.join(map(str, defaults.tiles))}]" in text
    for name in ("repeat", "threads", "exporter", "check_tile", "check_pad"):
        assert f"[default: {getattr(defaults, name)}]" in text, name


def test_cli_applies_the_rule(monkeypatch, tmp_path):
    seen = []

    def capture(flags, preset=None):
        seen.append(resolve_config(flags, preset))
        raise UsageError("stop here")

    monkeypatch.setattr(cli, "resolve_config", capture)
    args = ["--preset", "tiny", "--quick", "--repeat", "7", "--backends", "ort-fp32", "-o", str(tmp_path)]
    assert CliRunner().invoke(cli.main, args).exit_code == 2
    (config,) = seen
    assert config.repeat == 7 and config.backends == ("ort-fp32",)  # flags
    assert config.tiles == QUICK["tiles"] and config.warmup == QUICK["warmup"]  # preset
    assert config.check_tile == BenchConfig().check_tile and config.threads == BenchConfig().threads  # defaults


def test_resolved_values_are_validated(tmp_path):
    res = CliRunner().invoke(cli.main, ["--preset", "tiny", "--threads", "0", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "--threads" in res.output
