"""Generators, discriminators and checkpoints.

Attributes are imported lazily so that ``esrgan.models.spec`` (torch-free) can be used by the
runtime without pulling in torch.
"""

from __future__ import annotations

from esrgan.lazy import lazy_exports

_LAZY = {
    "GeneratorSpec": "esrgan.models.spec",
    "paper_spec": "esrgan.models.spec",
    "RRDBNet": "esrgan.models.rrdbnet",
    "GeneratorRRDB": "esrgan.models.pytorch_gan",
    "build_generator": "esrgan.models.build",
    "count_parameters": "esrgan.models.build",
    "load_generator": "esrgan.models.checkpoints",
    "save_generator": "esrgan.models.checkpoints",
    "describe_checkpoint": "esrgan.models.checkpoints",
    "CheckpointInfo": "esrgan.models.checkpoints",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
