"""``ExportOptions``: the settings of one ``esrgan-export`` run, and the one owner of their defaults.

``export_artifacts``' keywords and ``esrgan-export``'s flags read their defaults from these fields;
``esrgan-bench`` reads the exporter from here too. The module imports neither torch nor onnx, so a
command's ``--help`` (and esrgan-bench, which sets thread counts before torch starts) can read it.
Why dynamo at opset 18 is the default: see ``esrgan.export.onnx_export``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from esrgan.export.engine import EngineOptions

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_EXPORTER = "dynamo"
DEFAULT_OPSET = 18

#: Network interpolation weight used when a PSNR checkpoint comes without an alpha, by the CLI and the
#: Python API alike: (1 - 0.8) * PSNR + 0.8 * GAN, the value of the ESRGAN authors' interpolation demo
#: (``net_interp.py 0.8``): the GAN model's texture with a fifth of the PSNR model's smoothness, which
#: damps its artefacts. Without a PSNR checkpoint there is nothing to mix: the GAN weights are used as they are.
DEFAULT_ALPHA = 0.8


@dataclass(frozen=True)
class ExportOptions:
    """What to write and check besides the GAN checkpoint and the output folder."""

    psnr_ckpt: str | os.PathLike[str] | None = None  # PSNR-stage checkpoint: enables interpolation
    alpha: float | None = None  # None: DEFAULT_ALPHA with psnr_ckpt, the GAN weights without it
    fp16: bool = True  # also write model_fp16.onnx
    verify: bool = True  # check every artefact against PyTorch
    opset: int = DEFAULT_OPSET
    exporter: str = DEFAULT_EXPORTER
    int8_calib: str | os.PathLike[str] | None = None  # calibration images: also write model_int8.onnx
    engine: EngineOptions | None = None  # also build a TensorRT engine with these settings
