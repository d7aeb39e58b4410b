"""esrgan-train restates no default: flags are "not given" until resolve_config, help shows TrainConfig's values."""

from __future__ import annotations

import re

from esrgan.train import cli
from esrgan.train.config import FIELD_NAMES, TrainConfig, resolve_config


def _shown(value: object) -> str:
    return "none" if value is None else ("yes" if value is True else "no" if value is False else str(value))


def test_every_flag_is_unset_so_presets_and_yaml_apply():
    given = cli.main.make_context("esrgan-train", [], resilient_parsing=True).params
    flags = {name: value for name, value in given.items() if name in FIELD_NAMES}
    assert len(flags) >= 25
    assert all(value is None for value in flags.values()), {k: v for k, v in flags.items() if v is not None}


def test_every_default_in_the_help_is_train_configs():
    defaults = TrainConfig()
    tagged = set()
    for param in cli.main.params:
        match = re.search(r"\[(?:default|paper preset): ([^\]]+)\]$", param.help or "")
        if param.name in FIELD_NAMES and match:
            assert match.group(1) == _shown(getattr(defaults, param.name)), param.name
            tagged.add(param.name)
    # Every flag whose field has a value to show says it.
    untagged = {p.name for p in cli.main.params if p.name in FIELD_NAMES and getattr(defaults, p.name) is not None}
    assert untagged <= tagged, untagged - tagged
    assert {"val_data", "preset", "resume", "amp", "vgg_weights"} <= tagged


def test_no_preset_given_is_train_configs_preset(tmp_path):
    config = resolve_config({"data": str(tmp_path), "output": str(tmp_path)})
    assert config.preset == TrainConfig().preset
