"""Training: ``train(config) -> TrainResult`` and the ``esrgan-train`` command.

Modules: config (dataclass, presets, YAML), imresize (MATLAB bicubic), data (patches), losses, ema,
validate (PSNR-Y/SSIM-Y), state (resumable checkpoints), logbook (JSONL + plot), distributed (torchrun),
trainer (the loop), cli. Attributes are imported lazily so ``import esrgan.train`` stays light.
"""

from __future__ import annotations

from esrgan.lazy import lazy_exports

_LAZY = {
    "TrainConfig": "esrgan.train.config",
    "resolve_config": "esrgan.train.config",
    "train": "esrgan.train.trainer",
    "TrainResult": "esrgan.train.trainer",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
