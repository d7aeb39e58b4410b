"""esrgan-export's defaults have one owner, ``ExportOptions``: the CLI and ``export_artifacts`` agree,
and a PSNR checkpoint without an alpha is interpolated at ``DEFAULT_ALPHA`` by both."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from esrgan.errors import UsageError
from esrgan.export import cli
from esrgan.export.engine import EngineOptions
from esrgan.export.interpolate import resolve_alpha
from esrgan.export.options import DEFAULT_ALPHA, ExportOptions
from esrgan.export.pipeline import export_artifacts
from esrgan.models.checkpoints import load_generator, save_generator
from tests.export.tiny import tiny_model

# CLI parameter -> (options class, field)
_CLI_FIELDS = {
    "psnr": (ExportOptions, "psnr_ckpt"), "alpha": (ExportOptions, "alpha"), "opset": (ExportOptions, "opset"),
    "exporter": (ExportOptions, "exporter"), "fp16": (ExportOptions, "fp16"), "verify": (ExportOptions, "verify"),
    "calib": (ExportOptions, "int8_calib"), "min_shape": (EngineOptions, "min_shape"),
    "opt_shape": (EngineOptions, "opt_shape"), "max_shape": (EngineOptions, "max_shape"),
    "workspace": (EngineOptions, "workspace_gib"), "builder_opt_level": (EngineOptions, "opt_level"),
    "timing_cache": (EngineOptions, "timing_cache"),
}
FAST = {"fp16": False, "verify": False, "exporter": "torchscript"}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    save_generator(tiny_model("x4", seed=1), d / "psnr.safetensors")
    save_generator(tiny_model("x4", seed=2), d / "gan.safetensors")
    return d


def test_cli_defaults_are_the_options_fields():
    given = cli.main.make_context("esrgan-export", [], resilient_parsing=True).params  # what main() receives
    for name, (cls, field) in _CLI_FIELDS.items():
        assert given[name] == getattr(cls(), field), name


def test_export_artifacts_defaults_are_the_export_options_fields():
    params = inspect.signature(export_artifacts).parameters
    defaults = ExportOptions()
    for f in fields(ExportOptions):
        assert params[f.name].default == getattr(defaults, f.name), f.name


def test_alpha_is_resolved_once_in_the_library():
    assert resolve_alpha(None, interpolating=True) == DEFAULT_ALPHA
    assert resolve_alpha(None, interpolating=False) == 1.0
    assert resolve_alpha(0.3, interpolating=True) == 0.3
    assert resolve_alpha(1.0, interpolating=False) == 1.0
    with pytest.raises(UsageError, match="--psnr"):
        resolve_alpha(0.5, interpolating=False)


def test_docs_state_the_library_alpha():
    doc = (Path(__file__).parents[2] / "docs" / "export.md").read_text()
    assert f"`--alpha` defaults to {DEFAULT_ALPHA:g}" in doc


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_generator(path).state_dict()


def test_python_api_without_alpha_interpolates_like_the_cli(ckpts, tmp_path):
    psnr, gan = _weights(ckpts / "psnr.safetensors"), _weights(ckpts / "gan.safetensors")
    api = export_artifacts(ckpts / "gan.safetensors", tmp_path / "api", psnr_ckpt=ckpts / "psnr.safetensors", **FAST)
    assert api.alpha == DEFAULT_ALPHA
    mixed = _weights(api.checkpoint)
    for key in ("conv_first.weight", "conv_last.bias"):
        torch.testing.assert_close(mixed[key], torch.lerp(psnr[key], gan[key], DEFAULT_ALPHA))
        assert not torch.equal(mixed[key], gan[key])

    args = ["--psnr", str(ckpts / "psnr.safetensors"), "--gan", str(ckpts / "gan.safetensors"),
            "-o", str(tmp_path / "cli"), "--no-fp16", "--no-verify", "--exporter", "torchscript", "-q"]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    from_cli = _weights(tmp_path / "cli" / "model.safetensors")
    for key, value in mixed.items():
        assert torch.equal(value, from_cli[key]), key


def test_python_api_with_gan_only_exports_the_gan_weights(ckpts, tmp_path):
    result = export_artifacts(ckpts / "gan.safetensors", tmp_path, **FAST)
    assert result.alpha is None
    gan, written = _weights(ckpts / "gan.safetensors"), _weights(result.checkpoint)
    for key, value in gan.items():
        assert torch.equal(value.float(), written[key].float()), key
