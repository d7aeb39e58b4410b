"""Measure, once per model and Vulkan device, how far ncnn's fp16 path runs from its fp32 path.

``--backend auto`` runs ncnn on a Vulkan GPU in fp16 (storage and arithmetic: ncnn's fast path, what
realesrgan-ncnn-vulkan runs) only when this model stays within the half-precision floor (>= 45 dB, no
non-finite value) on this device: fp16's largest value is 65504, and an ESRGAN trunk whose features
grow past it turns whole images black or NaN, which depends on the weights, and the rounding on the
device's shader compiler. Like the CPU's BF16 check (``esrgan.runtime.cpu_parity``, whose images,
metric and record helpers this uses), it runs the shipped photograph and the synthetic test card
through both precisions on the device, keeps the worse figure, and caches it keyed by the model files'
sha256, the device, ncnn's version and the code that wrote, ran and measured the model; later starts
read it back and load only the precision chosen.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from esrgan.cache import cache_dir, cache_problem, keep_record, read_record
from esrgan.hashing import code_digest, model_sha256
from esrgan.parity import HALF_MIN_PSNR_DB, Parity, compare, passes, worst
from esrgan.runtime.backends.base import Backend


def parity_record(model_files: Sequence[Path], device_name: str, ncnn_version: str) -> Path:
    """The cache file of one (model files, device, ncnn version, measuring code) figure."""
    from esrgan.runtime import ncnn_writer
    from esrgan.runtime.backends import ncnn_backend
    from esrgan.runtime.cpu_parity import measuring_digest

    code = code_digest(sys.modules[__name__], ncnn_backend, ncnn_writer, extra=measuring_digest())
    key = "|".join([*(model_sha256(f) for f in model_files), device_name, ncnn_version, code])
    return cache_dir() / "ncnn" / "parity" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def measure_fp16(fp16: Backend, fp32: Backend, images: Sequence[np.ndarray] | None = None) -> Parity:
    """fp16 against fp32 on the same device: the worse of the photograph and the test card."""
    from esrgan.runtime.cpu_parity import fitted_run, load_parity_tile, synthetic_card

    images = [load_parity_tile(), synthetic_card()] if images is None else list(images)
    return worst([compare(fitted_run(fp32, image), fitted_run(fp16, image)) for image in images])


def vulkan_backend(
    construct: Callable[[str], Backend], model_files: Sequence[Path], device_name: str, ncnn_version: str,
    say: Callable[[str], None] = lambda line: None,
) -> tuple[Backend, str, str]:
    """(backend, precision, why) for ``auto`` on this device: ``construct(precision)`` loads the model at "fp16" or
    "fp32"; fp16 when its cached or measured parity passes, else fp32. Only the chosen precision is
    loaded once the figure is cached; the first time both are, and the other one is closed."""
    record = parity_record(model_files, device_name, ncnn_version)
    known = read_record(record)
    try:
        parity = Parity.from_dict(known) if known is not None else None
    except ValueError:
        parity = None  # a damaged record is measured again and overwritten
    if parity is not None:
        precision, why = _verdict(parity)
        return construct(precision), precision, why
    loaded = {"fp16": construct("fp16")}  # a model ncnn cannot run fails here, before any line
    try:
        unkept = cache_problem(record.parent)
        where = f"once; cached in {record.parent}" if unkept is None else f"not kept: {unkept}"
        say(f"measuring fp16 against fp32 for this model on {device_name} ({where})")
        loaded["fp32"] = construct("fp32")
        parity = measure_fp16(loaded["fp16"], loaded["fp32"])
        precision, why = _verdict(parity)
        chosen = loaded.pop(precision)
    finally:
        for backend in loaded.values():
            backend.close()
    if unkept is None:
        keep_record(record, asdict(parity), say)
    return chosen, precision, why


def _verdict(parity: Parity) -> tuple[str, str]:
    figure = "non-finite values" if parity.nonfinite_fraction else f"{parity.psnr_db:.1f} dB"
    if passes(parity, "fp16"):
        return "fp16", f"measured fp16 parity {figure} >= {HALF_MIN_PSNR_DB:.0f} dB"
    return "fp32", f"fp16 parity {figure} is below {HALF_MIN_PSNR_DB:.0f} dB, so fp32"
