"""esrgan: train, interpolate, export and run ESRGAN super-resolution.

``import esrgan`` stays light (no torch): the names below are imported on first use.
"""

from __future__ import annotations

from esrgan.lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, _LAZY)
