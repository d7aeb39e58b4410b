"""Training configuration: one dataclass, named presets, and the precedence preset < YAML < flags.

Every knob of a run lives in :class:`TrainConfig`, so the resolved config saved next to the
checkpoints says everything needed to reproduce them. Presets hold the numbers; YAML files and
command-line flags override them by field name. Unknown keys and bad values are refused with one
line naming the key (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from esrgan.errors import CheckpointError, ConfigError, first_line
from esrgan.models.spec import ARCHS, GeneratorSpec

STAGES = ("psnr", "gan", "both")
SCHEDULES = ("multistep", "cosine")
DEVICES = ("auto", "cpu", "cuda")
AMP_DTYPES = ("bf16", "fp16")
# Special --vgg-weights values: "auto" = torchvision's cache under TORCH_HOME; "untrained" = random
# VGG19 (smoke tests only: perceptual loss on random features is not the paper's loss).
VGG_AUTO = "auto"
VGG_UNTRAINED = "untrained"


@dataclass
class TrainConfig:
    """Everything a training run needs. Iteration counts are per stage; batch size is global."""

    # data and outputs
    data: str | None = None
    val_data: str | None = None
    output: str | None = None
    stage: str = "both"
    preset: str = "paper"
    # generator: written as its flat GENERATOR_KEYS in YAML, flags and the resolved config
    spec: GeneratorSpec = field(default_factory=GeneratorSpec)
    # data pipeline
    batch_size: int = 16
    patch_size: int = 128
    workers: int = 4
    cache_images: bool = False
    # PSNR stage (L1)
    psnr_iters: int = 1_000_000
    lr: float = 2e-4
    psnr_milestones: list[int] = field(default_factory=lambda: [200_000, 400_000, 600_000, 800_000])
    # GAN stage
    gan_iters: int = 400_000
    gan_lr: float = 1e-4
    gan_milestones: list[int] = field(default_factory=lambda: [50_000, 100_000, 200_000, 300_000])
    pixel_weight: float = 1e-2
    perceptual_weight: float = 1.0
    gan_weight: float = 5e-3
    warmup_iters: int = 0
    disc_num_feat: int = 64
    vgg_weights: str = VGG_AUTO
    init: str | None = None
    # optimiser and schedule (shared by both stages)
    beta1: float = 0.9
    beta2: float = 0.99
    schedule: str = "multistep"
    lr_gamma: float = 0.5
    min_lr: float = 1e-7
    ema_decay: float = 0.999
    # run control
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    amp_dtype: str = "bf16"
    val_every: int = 5000
    save_every: int = 5000
    log_every: int = 100
    resume: bool = False

    # ---- derived -------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        """``config.scale``, ``config.arch``...: the generator keys read through to ``spec``."""
        if name in GENERATOR_KEYS:
            return getattr(self.spec, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def stages(self) -> tuple[str, ...]:
        return ("psnr", "gan") if self.stage == "both" else (self.stage,)

    def to_dict(self) -> dict[str, Any]:
        """Flat {key: value}, the generator keys in the spec's place (the YAML config's layout)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            out.update({k: value[k] for k in GENERATOR_KEYS} if key == "spec" else {key: value})
        return out

    def to_yaml(self) -> str:
        import yaml  # the train extra's; imported here so that ``esrgan-train --help`` works without it

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def validate(self) -> TrainConfig:
        """Raise ConfigError naming the first bad value; return self for chaining."""
        _choice("stage", self.stage, STAGES)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("device", self.device, DEVICES)
        _choice("amp_dtype", self.amp_dtype, AMP_DTYPES)
        if self.preset not in PRESETS:
            _choice("preset", self.preset, tuple(PRESETS))
        for name in ("batch_size", "patch_size", "disc_num_feat", "val_every", "save_every", "log_every"):
            _positive(name, getattr(self, name))
        for name in ("psnr_iters", "gan_iters", "workers", "warmup_iters", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "gan_lr"):
            _positive(name, getattr(self, name))
        for name in ("pixel_weight", "perceptual_weight", "gan_weight", "min_lr"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("beta1", "beta2", "ema_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 < self.lr_gamma <= 1:
            raise ConfigError(f"lr_gamma must be in (0, 1], got {self.lr_gamma}")
        for name in ("psnr_milestones", "gan_milestones"):
            values = getattr(self, name)
            if any(int(v) <= 0 for v in values) or list(values) != sorted(values):
                raise ConfigError(f"{name} must be increasing positive iterations, got {values}")
        if self.spec.pixel_unshuffle:
            raise ConfigError("pixel-unshuffle generators are not trainable here")
        if self.patch_size % self.scale:
            raise ConfigError(f"patch_size {self.patch_size} must be a multiple of scale {self.scale}")
        if "gan" in self.stages and self.arch == "rrdbnet" and self.patch_size % 32:
            raise ConfigError(
                f"patch_size {self.patch_size} must be a multiple of 32 for the VGG-style discriminator "
                "(5 stride-2 stages)"
            )
        if "gan" in self.stages and self.arch == "pytorch-gan" and self.patch_size % 16:
            raise ConfigError(f"patch_size {self.patch_size} must be a multiple of 16 for the patch discriminator")
        if self.data is None:
            raise ConfigError("no training data: pass --data DIR (or 'data:' in the YAML config)")
        if self.output is None:
            raise ConfigError("no output folder: pass --output DIR (or 'output:' in the YAML config)")
        return self


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


# ---- presets ---------------------------------------------------------------------------------
# paper: ESRGAN (Wang et al. 2018) sec. 4.1 and the official BasicSR train_ESRGAN_x4 options:
# 128 px HR patches, batch 16, L1 PSNR stage 2e-4 halved every 200k of 1M iterations, GAN stage 1e-4
# halved at 50k/100k/200k/300k of 400k, loss weights 1 / 5e-3 / 1e-2, EMA 0.999.
# tiny: seconds on 2 CPU cores, for CI and smoke tests; uses the untrained VGG19 so that it needs no
# download (printed as vgg_weights: untrained in its resolved config). A generator starts with an output
# near 0 (conv_last's default init) and Adam moves each weight by about lr per step, so the PSNR stage
# uses 1e-3 with a cosine schedule (which scales to any --psnr-iters): at 2e-4, halved at a fixed
# milestone, 40 iterations left the output below 0 everywhere, i.e. a black image.
# default-x4: the compact model shipped as esrgan-run's default (see benchmarks/default_model/):
# nf 32 / gc 16, because the x4 upsampling tail dominates the cost of small RRDBNets, and nb 4: depth
# adds capacity without widening that tail (1.07 M MAC per input pixel). PSNR stage only, sized for
# 70 to 110 minutes on one shared CPU thread (0.4 to 0.65 s per iteration): 96 px HR patches (24 px LR: at 16 px most of a patch sits within
# the zero-padded border of the deep conv stack, which whole images at inference do not have) in batches
# of 8 (12 % more pixels per iteration than 16 x 64 px), a cosine schedule from 1e-3 because the run is
# short and the 0.1-scaled init keeps the dense blocks stable at that rate, and EMA decay 0.999 (the
# paper's): an averaging window of ~1000 iterations, a tenth of the run.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "tiny": {
        "num_feat": 8, "num_block": 1, "num_grow_ch": 4, "batch_size": 2, "patch_size": 32,
        "workers": 0, "cache_images": True, "psnr_iters": 4, "gan_iters": 4, "lr": 1e-3, "schedule": "cosine",
        "disc_num_feat": 8, "vgg_weights": VGG_UNTRAINED, "val_every": 2,
        "save_every": 2, "log_every": 1, "device": "cpu",
    },
    "default-x4": {
        "stage": "psnr", "num_feat": 32, "num_block": 4, "num_grow_ch": 16, "batch_size": 8,
        "patch_size": 96, "workers": 0, "cache_images": True, "psnr_iters": 10000, "lr": 1e-3,
        "schedule": "cosine", "min_lr": 1e-6, "ema_decay": 0.999, "val_every": 100, "save_every": 100,
        "log_every": 20, "device": "cpu",
    },
}

# The GeneratorSpec fields a training run sets; the others (channels, pixel-unshuffle) keep their defaults.
GENERATOR_KEYS = ("arch", "scale", "num_feat", "num_block", "num_grow_ch")
FIELD_NAMES = tuple(name for f in fields(TrainConfig) for name in (GENERATOR_KEYS if f.name == "spec" else (f.name,)))


def generator_spec(values: dict[str, Any]) -> GeneratorSpec:
    """The GeneratorSpec of ``values`` (GENERATOR_KEYS; missing ones: GeneratorSpec's defaults).

    PyTorch-GAN's generator has no separate growth width: its ``num_grow_ch`` is ``num_feat``.
    """
    values = {k: values[k] for k in GENERATOR_KEYS if k in values}
    if "arch" in values:
        _choice("arch", values["arch"], ARCHS)
    for name in ("num_feat", "num_block", "num_grow_ch"):
        if name in values:
            _positive(name, values[name])
    if values.get("arch") == "pytorch-gan":
        values["num_grow_ch"] = values.get("num_feat", GeneratorSpec.num_feat)
    try:
        return GeneratorSpec(**values)
    except CheckpointError as exc:  # the spec refuses impossible combinations (scale, pixel-unshuffle...)
        raise ConfigError(f"invalid generator: {exc}") from None


def _normalise_key(key: str) -> str:
    return str(key).strip().replace("-", "_")


def check_keys(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Map ``some-key`` to ``some_key`` and refuse unknown keys, suggesting the closest one."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = _normalise_key(key)
        if name not in FIELD_NAMES:
            close = difflib.get_close_matches(name, FIELD_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: unknown key {key!r}{hint}")
        out[name] = value
    return out


def check_values(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Known keys with values of their fields' types (a YAML file's, or a training state's record)."""
    return {k: _coerce(k, v, source) for k, v in check_keys(values, source).items()}


def _coerce(name: str, value: Any, source: str) -> Any:
    """Check a YAML value's type against the dataclass field (ints accepted where floats are)."""
    owner = GeneratorSpec if name in GENERATOR_KEYS else TrainConfig
    default = getattr(owner(), name)
    kind = {f.name: f.type for f in fields(owner)}[name]
    if value is None:
        if "None" in str(kind):
            return None
        raise ConfigError(f"{source}: {name} may not be empty")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {name} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {name} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, str):  # YAML reads 2e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {name} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{source}: {name} must be a list of integers, got {value!r}")
        return list(value)
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {name} must be a string, got {value!r}")
    return value


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file into checked {field: value} overrides."""
    src = Path(path)
    try:
        text = src.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{src}: cannot read config ({exc.strerror or exc})") from None
    import yaml

    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{src}: not valid YAML ({first_line(exc)})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{src}: expected a mapping of option: value, got {type(values).__name__}")
    checked = check_keys(values, str(src))
    return {k: _coerce(k, v, str(src)) for k, v in checked.items()}


def resolve_config(
    flags: dict[str, Any] | None = None, config_file: str | os.PathLike[str] | None = None,
) -> TrainConfig:
    """preset defaults < YAML file < flags (only flags actually given: None means 'not given')."""
    given = check_keys({k: v for k, v in (flags or {}).items() if v is not None}, "command line")
    from_file = load_yaml(config_file) if config_file else {}
    preset = given.get("preset") or from_file.get("preset") or TrainConfig.preset
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    values: dict[str, Any] = {**PRESETS[preset], **from_file, **given, "preset": preset}
    values = {k: _coerce(k, v, "config") for k, v in values.items()}
    spec = generator_spec(values)
    config = replace(TrainConfig(), spec=spec, **{k: v for k, v in values.items() if k not in GENERATOR_KEYS})
    return config.validate()
