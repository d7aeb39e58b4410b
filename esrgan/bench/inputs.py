"""Benchmark inputs: crops of real photographs, never random noise.

Noise is the worst case for nothing and the best case for nothing: low-precision engines
(FP16, BF16, INT8) err differently on the smooth areas and edges of real images, and parity
figures on noise would not predict what users see. scikit-image ships a few photographs, so
no download is needed; ``--images DIR`` uses the user's own instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from esrgan.errors import ImageError, UsageError
from esrgan.photographs import photograph as skimage_photo

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")




def load_folder(folder: str | Path) -> list[np.ndarray]:
    """All readable images in ``folder`` as RGB uint8 arrays, sorted by name.

    The runtime's image module (and Pillow) is imported here, not with this module: the benchmark's
    scikit-image inputs, and benchmarks/gpu_check.py on a machine with only torch, need neither.
    """
    from PIL import Image

    from esrgan.runtime.images import IMAGE_SUFFIXES

    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"--images {root}: not a folder")
    images = []
    for path in sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("RGB")))
        except OSError as exc:
            raise ImageError(f"{path}: cannot read ({exc})") from None
    if not images:
        raise UsageError(f"--images {root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def source_images(folder: str | Path | None = None, count: int = len(PHOTOS)) -> list[np.ndarray]:
    """The user's images, or the first ``count`` scikit-image photographs (each one costs a decode)."""
    return load_folder(folder) if folder else [skimage_photo(n) for n in PHOTOS[: max(1, count)]]


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """A ``size`` x ``size`` crop from the middle, edge-padded if the image is smaller."""
    h, w = img.shape[:2]
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        img = np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="edge")
        h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def to_nchw(images: list[np.ndarray]) -> np.ndarray:
    """uint8 HWC images of one size -> float32 NCHW in [0, 1] (what ``Backend.run`` takes)."""
    return np.stack([im.transpose(2, 0, 1) for im in images]).astype(np.float32) / 255.0


def tile_batch(images: list[np.ndarray], tile: int, batch: int) -> np.ndarray:
    """``batch`` crops of ``tile`` px, one per photograph in turn, as an NCHW float32 batch."""
    if tile < 1 or batch < 1:
        raise UsageError(f"tile and batch must be positive (got tile {tile}, batch {batch})")
    crops = [centre_crop(images[i % len(images)], tile) for i in range(batch)]
    return to_nchw(crops)
