"""The photographs of the default model: training and held-out lists, disjoint, all from scikit-image.

They ship inside the scikit-image wheel (no download), so anyone can rebuild the exact data set.
Grey photographs are used as RGB with equal channels. Held out: a colour photograph (chelsea) and
three grey ones of different character (camera: edges, moon: smooth texture, coins: small objects).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TRAIN = (
    "astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "motorcycle_left", "brick", "grass", "gravel", "clock", "page", "text", "cell",
)
HELD_OUT = ("chelsea", "camera", "moon", "coins")

assert not set(TRAIN) & set(HELD_OUT), "training and held-out photographs must be disjoint"


def load_photo(name: str) -> np.ndarray:
    """H x W x 3 uint8 from skimage.data (motorcycle_left is the left view of stereo_motorcycle)."""
    from skimage import data

    from esrgan.export.images import photograph

    if name == "motorcycle_left":
        return np.ascontiguousarray(data.stereo_motorcycle()[0][..., :3]).astype(np.uint8)
    return photograph(name).astype(np.uint8)


def export_photos(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Write the photographs as lossless PNGs into ``folder`` (the --data / --val-data of a run)."""
    from PIL import Image

    from esrgan.atomic import write_atomic

    dest = Path(folder)
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = dest / f"{name}.png"
        with write_atomic(path) as tmp:
            Image.fromarray(load_photo(name)).save(tmp, format="PNG")
        paths.append(path)
    return paths
