"""Presets < YAML < flags, and one clear error for bad keys and values."""

from __future__ import annotations

import pytest

from esrgan.errors import ConfigError
from esrgan.models.spec import GeneratorSpec
from esrgan.train.config import PRESETS, TrainConfig, resolve_config

BASE = {"data": "d", "output": "o"}


def test_paper_preset_is_the_papers_recipe():
    cfg = resolve_config(BASE)
    assert (cfg.patch_size, cfg.batch_size, cfg.lr, cfg.gan_lr) == (128, 16, 2e-4, 1e-4)
    assert cfg.psnr_milestones == [200_000, 400_000, 600_000, 800_000] and cfg.psnr_iters == 1_000_000
    assert cfg.gan_milestones == [50_000, 100_000, 200_000, 300_000] and cfg.gan_iters == 400_000
    assert (cfg.perceptual_weight, cfg.gan_weight, cfg.pixel_weight, cfg.ema_decay) == (1.0, 5e-3, 1e-2, 0.999)
    assert (cfg.beta1, cfg.beta2) == (0.9, 0.99) and cfg.vgg_weights == "auto"


def test_precedence_preset_then_yaml_then_flags(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("preset: tiny\npsnr-iters: 7\nlr: 3e-4\nbatch_size: 4\n")
    cfg = resolve_config({**BASE, "batch_size": 6}, cfg_file)
    assert cfg.preset == "tiny"
    assert cfg.num_feat == PRESETS["tiny"]["num_feat"]  # preset
    assert cfg.psnr_iters == 7 and cfg.lr == 3e-4  # YAML over preset ("3e-4" read as a number)
    assert cfg.batch_size == 6  # flag over YAML
    assert cfg.vgg_weights == "untrained"  # tiny's explicit choice, visible in the resolved config
    assert "vgg_weights: untrained" in cfg.to_yaml()


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("bach_size: 4\n", "unknown key 'bach_size' (did you mean 'batch_size'?)"),
        ("batch_size: four\n", "batch_size must be an integer"),
        ("lr: -1\n", "lr must be > 0"),
        ("stage: all\n", "stage must be one of psnr, gan, both"),
        ("patch_size: 30\n", "multiple of scale"),
        ("ema_decay: 1.5\n", "ema_decay must be in [0, 1)"),
        ("psnr_milestones: [5, 2]\n", "increasing"),
        ("- a\n- b\n", "expected a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_yaml_keys_and_values(tmp_path, yaml_text, message):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        resolve_config(BASE, cfg_file)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_gan_stage_needs_discriminator_friendly_patches():
    with pytest.raises(ConfigError, match="multiple of 32"):
        resolve_config({**BASE, "patch_size": 48})
    assert resolve_config({**BASE, "patch_size": 48, "stage": "psnr"}).patch_size == 48


def test_missing_data_or_output_and_unknown_preset():
    with pytest.raises(ConfigError, match="--data"):
        resolve_config({"output": "o"})
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve_config({**BASE, "preset": "huge"})


def test_spec_follows_arch():
    cfg = resolve_config({**BASE, "arch": "pytorch-gan", "num_feat": 16, "num_grow_ch": 4, "patch_size": 64})
    assert cfg.spec.arch == "pytorch-gan" and cfg.spec.num_grow_ch == 16
    assert (cfg.arch, cfg.num_feat) == ("pytorch-gan", 16)


def test_generator_keys_are_the_specs_and_round_trip_through_yaml(tmp_path):
    """The generator part of the config is a GeneratorSpec, written flat: the YAML reads back the same."""
    assert TrainConfig().spec == GeneratorSpec()
    cfg = resolve_config({**BASE, "preset": "tiny", "scale": 2, "num_block": 3})
    assert cfg.spec == GeneratorSpec(scale=2, num_feat=8, num_block=3, num_grow_ch=4)
    saved = tmp_path / "config.yaml"
    saved.write_text(cfg.to_yaml())
    assert "num_block: 3" in cfg.to_yaml() and "spec" not in cfg.to_dict()
    assert resolve_config(config_file=saved) == cfg


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"arch": "srcnn"}, "arch must be one of rrdbnet, pytorch-gan"),
        ({"num_feat": 0}, "num_feat must be > 0"),
        ({"scale": 3}, "invalid generator: unsupported scale 3"),
        ({"scale": "4"}, "scale must be an integer"),
    ],
)
def test_bad_generator_values(flags, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config({**BASE, **flags})
