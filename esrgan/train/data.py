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
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from esrgan.atomic import is_temp_file
from esrgan.errors import TrainingError, first_line
from esrgan.runtime.images import IMAGE_SUFFIXES
from esrgan.train.imresize import downscale_uint8

log = logging.getLogger("esrgan.train")


def find_images(root: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``root`` at any depth, sorted so that every run sees the same list."""
    base = Path(root)
    if not base.is_dir():
        raise TrainingError(f"{base}: data folder does not exist")
    return sorted(
        p for p in base.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not is_temp_file(p)
    )


#: What reading a training image may raise for a bad file: skipped with a warning, never a crash.
#: Pillow refuses images over twice its pixel limit (decompression bombs) with its own error class.
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def load_rgb(path: Path) -> np.ndarray:
    """An H x W x 3 uint8 array (grey and RGBA images converted), or OSError/ValueError."""
    with Image.open(path) as img:
        img.load()
        if img.mode in ("I;16", "I;16B", "I"):  # 16-bit grey: scale to 8 bits before RGB
            grey = np.clip(np.asarray(img, dtype=np.float64) / 257.0, 0, 255).astype(np.uint8)
            return np.stack([grey] * 3, axis=-1)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header, after checking the file's integrity."""
    with Image.open(path) as img:
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
        if min(w, h) < min_size:
            log.warning("skipping %s: %dx%d is smaller than the %d px training patch", path, w, h, min_size)
            continue
        usable.append(path)
    if not usable:
        raise TrainingError(
            f"{root}: none of the {len(files)} image(s) is usable for {min_size} px patches (see warnings)"
        )
    return usable


def augment(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal flip, vertical flip and 90-degree rotation (the 8 dihedral symmetries)."""
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    if rng.random() < 0.5:
        patch = patch[::-1, :]
    if rng.random() < 0.5:
        patch = patch.transpose(1, 0, 2)
    return np.ascontiguousarray(patch)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


class PatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item ``p`` is the (LR, HR) pair at global stream position ``p`` (see the module docstring).

    The LR patch is the HR patch downscaled with MATLAB's antialiased bicubic and rounded to uint8,
    i.e. exactly what an LR image file from the SR literature would contain.
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

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, k = divmod(int(position), len(self.paths))
        img = self._readable_image(int(self.order(epoch)[k]))
        rng = np.random.default_rng([self.seed, int(position)])
        h, w = img.shape[:2]
        ps = self.patch_size
        top = int(rng.integers(0, h - ps + 1))
        left = int(rng.integers(0, w - ps + 1))
        hr = img[top : top + ps, left : left + ps]
        if self.augment:
            hr = augment(hr, rng)
        lr = downscale_uint8(hr, self.scale)
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
