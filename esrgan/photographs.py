"""Real photographs: scikit-image's bundled images, for verification, FP16 range probing, benchmarks
and the default model's data set.

Parity measured on noise says little about photographs (flat regions, edges and saturated colours
drive the activations that overflow FP16), and nothing may be downloaded, so the photographs are
the ones that ship inside scikit-image (an export and train dependency, imported only when used).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

# The default model's photographs: training and held-out lists, disjoint, so that anyone can rebuild
# its exact data set. Held out: a colour photograph (chelsea) and three grey ones of different
# character (camera: edges, moon: smooth texture, coins: small objects).
DEFAULT_MODEL_TRAIN = (
    "astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "motorcycle_left", "brick", "grass", "gravel", "clock", "page", "text", "cell", "grace_hopper",
)
DEFAULT_MODEL_HELD_OUT = ("chelsea", "camera", "moon", "coins")

# Name, top, left: regions with edges, texture and saturated colour.
_CROPS = (("astronaut", 40, 160), ("coffee", 120, 200), ("chelsea", 60, 120), ("rocket", 100, 250))


def photo_source(name: str) -> str:
    """Where a photograph of ``photograph(name)`` comes from, for reports and model cards."""
    return "matplotlib sample_data/grace_hopper.jpg" if name == "grace_hopper" else f"skimage.data.{name}"


def photograph(name: str = "astronaut") -> np.ndarray:
    """An HxWx3 uint8 photograph from scikit-image's data (grey images are repeated to RGB).

    ``motorcycle_left`` is the left view of ``stereo_motorcycle``. ``grace_hopper`` is matplotlib's
    sample portrait (a train dependency too): the only photograph of a person's face, hair and cloth
    besides astronaut among the bundled ones.
    """
    if name == "grace_hopper":
        import matplotlib.cbook
        from PIL import Image

        with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
            img = np.asarray(im.convert("RGB"))
        return np.ascontiguousarray(img)
    from skimage import data

    img = data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def to_nchw(image: np.ndarray, channels: int = 3) -> np.ndarray:
    """HxWxC uint8 or NCHW/CHW float -> NCHW float32 in [0, 1] with ``channels`` channels."""
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    arr = arr.astype(np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"expected an image or an NCHW batch, got shape {arr.shape}")
    if arr.shape[1] != channels:  # RGB for a grey model or the reverse: go through grey
        arr = np.repeat(arr.mean(axis=1, keepdims=True), channels, axis=1)
    return np.ascontiguousarray(arr)


def photo_crops(sizes: Sequence[tuple[int, int]], channels: int = 3) -> list[np.ndarray]:
    """One NCHW float32 crop per (height, width), each from a different photograph."""
    out = []
    for i, (h, w) in enumerate(sizes):
        name, top, left = _CROPS[i % len(_CROPS)]
        img = photograph(name)
        top, left = min(top, img.shape[0] - h), min(left, img.shape[1] - w)
        if top < 0 or left < 0:
            raise ValueError(f"crop {h}x{w} is larger than the photograph {name} {img.shape[:2]}")
        out.append(to_nchw(img[top : top + h, left : left + w], channels))
    return out


def export_photos(folder: str | Path, names: Sequence[str]) -> list[Path]:
    """Write the photographs as lossless PNGs into ``folder`` (e.g. the --data / --val-data of a run)."""
    from PIL import Image

    from esrgan.atomic import write_atomic

    dest = Path(folder)
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = dest / f"{name}.png"
        with write_atomic(path) as tmp:
            Image.fromarray(photograph(name)).save(tmp, format="PNG")
        paths.append(path)
    return paths
