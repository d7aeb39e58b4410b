"""Measure, once per model and Vulkan device, how far ncnn's fp16 path runs from its fp32 path.

``--backend auto`` runs ncnn on a Vulkan GPU in fp16 (storage and arithmetic: ncnn's fast path, what
realesrgan-ncnn-vulkan runs) only when this model stays within the half-precision floor (>= 45 dB, no
non-finite value) on this device: fp16's largest value is 65504, and an ESRGAN trunk whose features
grow past it turns whole images black or NaN, which depends on the weights, and the rounding on the
device's shader compiler. Like the CPU's BF16 check (``esrgan.runtime.cpu_parity``), it runs the
shipped photograph and the synthetic test card through both precisions on the device, keeps the worse
figure, and caches it keyed by the model files' sha256, the device, ncnn's version and the code that
wrote and ran the model; later starts read it back.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from esrgan.atomic import write_text_atomic
from esrgan.cache import cache_dir, writing_cache
from esrgan.errors import CacheError
from esrgan.hashing import code_digest, file_sha256
from esrgan.parity import HALF_MIN_PSNR_DB, Parity, compare, passes, worst
from esrgan.runtime.backends.base import Backend


def parity_record(model_files: Sequence[Path], device_name: str, ncnn_version: str) -> Path:
    """The cache file of one (model files, device, ncnn version, measuring code) figure."""
    from esrgan.runtime import ncnn_writer
    from esrgan.runtime.backends import ncnn_backend

    key = "|".join([*(file_sha256(f) for f in model_files), device_name, ncnn_version,
                    code_digest(sys.modules[__name__], ncnn_backend, ncnn_writer)])
    return cache_dir() / "ncnn" / "parity" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def measure_fp16(fp16: Backend, model_path: str | os.PathLike[str], device_id: int, threads: int | None = None,
                 images: Sequence[np.ndarray] | None = None) -> Parity:
    """The loaded fp16 backend against fp32 on the same Vulkan device: the worse of the photograph and
    the test card."""
    from esrgan.runtime.backends.ncnn_backend import NcnnBackend
    from esrgan.runtime.cpu_parity import fitted_run, load_parity_tile, synthetic_card

    images = [load_parity_tile(), synthetic_card()] if images is None else list(images)
    exact = NcnnBackend(model_path, threads, vulkan=True, device_id=device_id, precision="fp32")
    try:
        reference = [fitted_run(exact, image) for image in images]
    finally:
        exact.close()
    return worst([compare(r, fitted_run(fp16, image)) for r, image in zip(reference, images, strict=True)])


def vulkan_precision(
    fp16: Backend, model_path: str | os.PathLike[str], device_id: int, device_name: str,
    model_files: Sequence[Path], ncnn_version: str, threads: int | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> tuple[str, str]:
    """(precision, why) for ``auto`` on this device: fp16 when the cached or measured parity of the
    loaded ``fp16`` backend passes, else fp32."""
    record = parity_record(model_files, device_name, ncnn_version)
    parity = None
    if record.is_file():
        try:
            parity = Parity(**json.loads(record.read_text()))
        except (ValueError, TypeError):
            pass  # a damaged record is measured again and overwritten
    if parity is None:
        say(f"measuring fp16 against fp32 for this model on {device_name} (once; cached in {record.parent})")
        parity = measure_fp16(fp16, model_path, device_id, threads)
        try:
            with writing_cache(record.parent):
                record.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(record, json.dumps(asdict(parity)))
        except CacheError as exc:
            say(f"{exc}; the figure is not kept")
    figure = "non-finite values" if parity.nonfinite_fraction else f"{parity.psnr_db:.1f} dB"
    if passes(parity, "fp16"):
        return "fp16", f"measured fp16 parity {figure} >= {HALF_MIN_PSNR_DB:.0f} dB"
    return "fp32", f"fp16 parity {figure} is below {HALF_MIN_PSNR_DB:.0f} dB, so fp32"
