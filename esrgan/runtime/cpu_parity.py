"""Measure, once per model and machine, how far OpenVINO's BF16 output is from its FP32 output.

``--backend auto`` may only pick BF16 when it is within the BF16 threshold (>= 45 dB) for *this*
model: BF16 keeps 8 mantissa bits, and how much that costs depends on the weights. The check runs the
model at FP32 and BF16 on a real photograph (a 64x64 crop of scikit-image's astronaut, NASA, public
domain, shipped as package data so the torch-free runtime needs nothing else), compares with
``esrgan.parity.compare`` and caches the figure next to OpenVINO's compiled-model cache, keyed by the
model file's sha256, the CPU and the OpenVINO version. Later starts read the figure back.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection
from pathlib import Path

import numpy as np

from esrgan.atomic import write_text_atomic
from esrgan.hashing import file_sha256
from esrgan.parity import Parity, compare
from esrgan.runtime.cpu_features import (
    BF16_LAYOUT_KEYS,
    OPENVINO,
    CpuChoice,
    CpuFeatures,
    choose_cpu_backend,
    probe_cpu_features,
)

PARITY_TILE = Path(__file__).parent / "data" / "parity_tile.png"


def load_parity_tile(path: str | os.PathLike[str] = PARITY_TILE) -> np.ndarray:
    """The photograph as a (1, 3, H, W) float32 batch in [0, 1]."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])




def parity_cache_file(model_path: str | os.PathLike[str], features: CpuFeatures, cache_dir: Path) -> Path:
    """One JSON file per (model, CPU, OpenVINO version): BF16 rounding is done by the CPU's kernels."""
    import openvino

    # "layouts-2": the figures' keys (BF16_LAYOUT_KEYS); records made for other layouts are measured again
    key = (f"{file_sha256(model_path)}|{features.model}|{' '.join(features.relevant_flags())}|"
           f"{openvino.__version__}|layouts-2")
    return cache_dir / "parity" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def measure_openvino_bf16(
    model_path: str | os.PathLike[str],
    *,
    image: np.ndarray | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> dict[str, Parity]:
    """Parity of OpenVINO's BF16 layouts against its FP32 output on ``image`` (default: the photo).

    Keys are ``BF16_LAYOUT_KEYS`` values: the ``head`` and ``ends`` layouts, each under the layout the
    backend really ran (a model that cannot be cut runs all layers in BF16: ``openvino:bf16``).
    """
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend
    from esrgan.runtime.tiling import run_fitted

    x = load_parity_tile() if image is None else image
    outs: dict[str, np.ndarray] = {}
    for precision, layout in (("fp32", "head"), ("bf16", "head"), ("bf16", "ends")):
        backend = OpenVinoBackend(model_path, precision=precision, threads=threads, cache_dir=cache_dir,
                                  mode="latency", bf16_layout=layout)
        try:
            key = "fp32" if precision == "fp32" else BF16_LAYOUT_KEYS[backend.info.extra["bf16_layout"]]
            if key not in outs:  # a model that cannot be cut runs "all" for both layouts: run it once
                outs[key] = run_fitted(backend.run, x, backend.scale, backend.size_requirements)
        finally:
            backend.close()
    ref = outs.pop("fp32")
    return {key: compare(ref, out) for key, out in outs.items()}


def cached_bf16_parity(
    model_path: str | os.PathLike[str],
    features: CpuFeatures,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    threads: int | None = None,
) -> dict[str, Parity]:
    """The cached BF16 figures for this model and machine, measuring (and caching) them the first time."""
    from esrgan.runtime.backends.openvino_backend import default_cache_dir

    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    record = parity_cache_file(model_path, features, root)
    if record.is_file():
        try:
            return {k: Parity(**v) for k, v in json.loads(record.read_text())["figures"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # a damaged record is measured again and overwritten
    figures = measure_openvino_bf16(model_path, cache_dir=root, threads=threads)
    record.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": str(model_path), "cpu": features.describe(),
               "figures": {k: p.to_dict() for k, p in figures.items()}}
    write_text_atomic(record, json.dumps(payload, indent=1))
    return figures


def select_cpu_backend(
    model_path: str | os.PathLike[str],
    model_precision: str,
    available_backends: Collection[str],
    *,
    features: CpuFeatures | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    int8_requested: bool = False,
) -> CpuChoice:
    """What ``--backend auto`` runs without a GPU: measures BF16 parity first where BF16 could win."""
    features = probe_cpu_features() if features is None else features
    measured: dict[str, Parity] = {}
    if (
        OPENVINO in available_backends
        and features.bf16_native
        and model_precision == "fp32"
        and not int8_requested
    ):
        measured.update(cached_bf16_parity(model_path, features, cache_dir, threads=threads))
    return choose_cpu_backend(
        features, available_backends, model_precision, measured, int8_requested=int8_requested
    )
