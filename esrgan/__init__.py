"""esrgan: train, interpolate, export and run ESRGAN super-resolution.

``import esrgan`` stays light (no torch): the names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "EsrganError": "esrgan.errors",
    "GeneratorSpec": "esrgan.models.spec",
    "load_generator": "esrgan.models.checkpoints",
    "save_generator": "esrgan.models.checkpoints",
    "describe_checkpoint": "esrgan.models.checkpoints",
    "build_generator": "esrgan.models.build",
    "Upscaler": "esrgan.runtime.upscaler",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'esrgan' has no attribute {name!r}")
