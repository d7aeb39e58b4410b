"""Training data: HR images from a folder, random patches, LR made on the fly.

Exact resume needs the data order to be a pure function of (seed, sample position): the sample at
global position ``p`` comes from epoch ``p // n`` of a seeded permutation, and its crop, flips and
rotation come from a generator seeded with ``(seed, p)``. A resumed run restarts the stream at
``iteration * batch_size`` and sees exactly the batches an uninterrupted run would have seen, with
any number of DataLoader workers or DDP ranks (rank r takes positions r, r + world, ...).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from esrgan.atomic import is_temp_file
from esrgan.errors import TrainingError, first_line
from esrgan.runtime.images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES
from esrgan.train.imresize import downscale_uint8, mod_crop

log = logging.getLogger("esrgan.train")

# LR pixels of context downscaled around a patch: MATLAB's x1/s bicubic kernel spans 4 LR pixels
# (4 * s HR pixels, zero at its ends), so 2 on each side hold every HR pixel a patch's LR pixels use.
LR_MARGIN = 2


def find_images(root: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``root`` at any depth, sorted so that every run sees the same list."""
    base = Path(root)
    if not base.is_dir():
        raise TrainingError(f"{base}: data folder does not exist")
    return sorted(
        p for p in base.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not is_temp_file(p)
    )


#: Largest training image: the runtime's input limit. Each sample decodes its whole image (unless
#: the images are cached), so a photograph far above the usual 2-12 MP makes every step slow.
MAX_PIXELS = DEFAULT_MAX_PIXELS

#: What reading a training image may raise for a bad file: skipped with a warning, never a crash.
#: Pillow refuses images over twice its pixel limit (decompression bombs) with its own error class.
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@contextmanager
def _pillow_quiet() -> Iterator[None]:
    """Pillow's warnings (over its own pixel limit, damaged metadata) print raw source lines; the scan
    below reports each image in one line instead, and refuses those over MAX_PIXELS itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
        yield


def load_rgb(path: Path) -> np.ndarray:
    """An H x W x 3 uint8 array (grey and RGBA images converted), or OSError/ValueError."""
    with _pillow_quiet(), Image.open(path) as img:
        img.load()
        if img.mode in ("I;16", "I;16B", "I"):  # 16-bit grey: scale to 8 bits before RGB
            grey = np.clip(np.asarray(img, dtype=np.float64) / 257.0, 0, 255).astype(np.uint8)
            return np.stack([grey] * 3, axis=-1)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header, after checking the file's integrity."""
    with _pillow_quiet(), Image.open(path) as img:
        size = img.size
        img.verify()
    return size


def scan_images(root: str | os.PathLike[str], min_size: int) -> list[Path]:
    """Usable training images; unreadable or too-small files are skipped with a warning naming them."""
    files = find_images(root)
    if not files:
        raise TrainingError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))} at any depth)")
    usable: list[Path] = []
    for path in files:
        try:
            w, h = image_size(path)
        except UNREADABLE as exc:
            log.warning("skipping unreadable image %s (%s)", path, first_line(exc))
            continue
        if w * h > MAX_PIXELS:
            log.warning("skipping %s: %dx%d = %d pixels is more than %d (every sample would decode it whole)",
                        path, w, h, w * h, MAX_PIXELS)
            continue
        if min(w, h) < min_size:
            log.warning("skipping %s: %dx%d is smaller than the %d px training patch", path, w, h, min_size)
            continue
        usable.append(path)
    if not usable:
        raise TrainingError(
            f"{root}: none of the {len(files)} image(s) is usable for {min_size} px patches (see warnings)"
        )
    return usable


def augment(patches: tuple[np.ndarray, ...], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """The same random horizontal flip, vertical flip and transposition (8 dihedral symmetries) of each patch."""
    hflip, vflip, transpose = (rng.random() < 0.5 for _ in range(3))
    out = []
    for patch in patches:
        if hflip:
            patch = patch[:, ::-1]
        if vflip:
            patch = patch[::-1, :]
        if transpose:
            patch = patch.transpose(1, 0, 2)
        out.append(np.ascontiguousarray(patch))
    return tuple(out)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


class PatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item ``p`` is the (LR, HR) pair at global stream position ``p`` (see the module docstring).

    The LR patch is the crop, at the aligned spot, of the whole image's LR version: the mod-cropped
    image downscaled with MATLAB's antialiased bicubic and rounded to uint8, i.e. exactly what an LR
    image file from the SR literature would contain (BasicSR's paired crop of GT and LQ files). Only
    the HR patch plus a margin of ``LR_MARGIN`` LR pixels is downscaled, which covers the kernel's
    support (2 LR pixels at any scale): the result equals the crop of the whole downscaled image
    without downscaling it. Patches start at multiples of the scale so that HR and LR align.
    """

    def __init__(
        self, paths: list[Path], patch_size: int, scale: int, seed: int, augment: bool = True,
        cache: bool = False,
    ) -> None:
        if not paths:
            raise TrainingError("no training images")
        self.paths = list(paths)
        self.patch_size = patch_size
        self.scale = scale
        self.seed = seed
        self.augment = augment
        self.cache = cache
        self._images: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    @lru_cache(maxsize=4)  # noqa: B019 - a few epochs' permutations; the dataset lives as long as the run
    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 0xDA7A]).permutation(len(self.paths))

    def image(self, index: int) -> np.ndarray:
        if index in self._images:
            return self._images[index]
        img = load_rgb(self.paths[index])
        if self.cache:
            self._images[index] = img
        return img

    def _readable_image(self, index: int) -> np.ndarray:
        """The image, or the next readable one if it broke after the scan (warned, never a crash)."""
        n = len(self.paths)
        for k in range(n):
            i = (index + k) % n
            try:
                img = self.image(i)
            except UNREADABLE as exc:
                log.warning("skipping unreadable image %s (%s)", self.paths[i], exc)
                continue
            if min(img.shape[:2]) >= self.patch_size:
                return img
        raise TrainingError("no readable training image left")

    def spot(self, position: int) -> tuple[np.ndarray, int, int, np.random.Generator]:
        """Item ``position``'s mod-cropped image, its HR patch's top and left, and its augmentation's generator."""
        epoch, k = divmod(int(position), len(self.paths))
        img = mod_crop(self._readable_image(int(self.order(epoch)[k])), self.scale)
        rng = np.random.default_rng([self.seed, int(position)])
        (h, w), ps, s = img.shape[:2], self.patch_size, self.scale
        top = s * int(rng.integers(0, (h - ps) // s + 1))
        left = s * int(rng.integers(0, (w - ps) // s + 1))
        return img, top, left, rng

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, top, left, rng = self.spot(position)
        ps, s, m = self.patch_size, self.scale, LR_MARGIN * self.scale
        y0, x0 = max(top - m, 0), max(left - m, 0)
        region = img[y0 : min(top + ps + m, img.shape[0]), x0 : min(left + ps + m, img.shape[1])]
        ly, lx = (top - y0) // s, (left - x0) // s
        lr = downscale_uint8(region, s)[ly : ly + ps // s, lx : lx + ps // s]
        hr = img[top : top + ps, left : left + ps]
        if self.augment:
            lr, hr = augment((lr, hr), rng)
        return to_tensor(lr), to_tensor(hr)


class StreamSampler(Sampler[int]):
    """Endless global stream positions start+rank, start+rank+world, ... for one rank."""

    def __init__(self, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.start, self.rank, self.world = start, rank, world

    def __iter__(self) -> Iterator[int]:
        p = self.start + self.rank
        while True:
            yield p
            p += self.world


def batches(
    dataset: PatchDataset, *, batch_size: int, start_iter: int, rank: int = 0, world: int = 1,
    workers: int = 0, pin_memory: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's share of global batches from iteration ``start_iter`` on (batch_size is global)."""
    if batch_size % world:
        raise TrainingError(f"batch size {batch_size} is not divisible by the {world} processes")
    sampler = StreamSampler(start_iter * batch_size, rank, world)
    loader = DataLoader(
        dataset, batch_size=batch_size // world, sampler=sampler, num_workers=workers,
        pin_memory=pin_memory, persistent_workers=workers > 0,
    )
    return iter(loader)
