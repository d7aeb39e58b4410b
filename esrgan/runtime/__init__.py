"""Running models: ``Upscaler`` (arrays, Pillow images, folders) and the ``esrgan-run`` command.

Torch-free: the backends run ONNX files (ONNX Runtime, OpenVINO) and TensorRT engines; only the
optional PyTorch backend imports torch, when it is chosen. Modules: upscaler (the Python API), pipeline (folders), engine and
tiling (tiles and batches), images and paths (reading/writing files), backends (one ``Backend``
interface, ``load_backend`` chooses one), cli. Attributes are imported lazily, so that
``import esrgan.runtime`` loads no inference library until one is used.
"""

from __future__ import annotations

from esrgan.lazy import lazy_exports

_LAZY = {
    "Upscaler": "esrgan.runtime.upscaler",
    "Summary": "esrgan.runtime.pipeline",
    "Backend": "esrgan.runtime.backends.base",
    "BackendInfo": "esrgan.runtime.backends.base",
    "load_backend": "esrgan.runtime.backends.registry",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
