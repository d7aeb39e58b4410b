"""Tile grid, context padding, stitching and batching: pure numpy, no model, no I/O.

How tiles are laid out, and why:

* The image is reflect-padded by ``pad`` once, and the whole-image path (``tile=0``) runs on the same
  padded image. Reflection gives the network natural-looking context at the border instead of the
  zeros its convolutions would add, and it makes every tile window (core + ``pad`` on every side)
  lie inside the padded image, so tiled and whole-image outputs differ only by the context a tile
  lacks beyond its pad (measured in ``benchmarks/reports/tiling/``).
* Edge tiles are shifted inward rather than shrunk: every window of an image has the same shape,
  so tiles batch together (also across images) and fit a fixed engine profile. The overlap a
  shifted tile creates is written once, by the tile whose window gives it more context.
* The model's output is written straight into a uint8/uint16 buffer allocated once per image: no
  float copy of the whole upscaled image is ever made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Default context around each tile, in input pixels. Chosen from the pad/PSNR curve in
#: benchmarks/reports/tiling/: with real pretrained paper-size x4 weights (Real-ESRGAN x4plus) 28 px is
#: the smallest pad that keeps tiled output >= 50 dB PSNR from the whole-image output at every tile
#: size >= 48 px; 32 px gives >= 53 dB there.
DEFAULT_TILE_PAD = 32


@dataclass(frozen=True)
class Span:
    """One tile along one axis: its core in image coordinates and the part of it it writes."""

    start: int  # core start (== window start in the padded image)
    size: int  # core size
    keep_start: int  # first image index this tile writes
    keep_end: int  # one past the last image index this tile writes


@dataclass(frozen=True)
class Tile:
    """A tile of one image: its window in the padded image and the region of the image it writes."""

    y: Span
    x: Span
    pad: int

    @property
    def window_shape(self) -> tuple[int, int]:
        return self.y.size + 2 * self.pad, self.x.size + 2 * self.pad


def axis_spans(length: int, tile: int, multiple: int = 1) -> list[Span]:
    """Split ``length`` pixels into cores of ``tile`` px; the last is shifted inward, not shrunk.

    ``tile <= 0`` or ``tile >= length`` gives one core covering everything. ``multiple`` is the
    model's size multiple (its pixel-unshuffle factor): every core starts at a multiple of it and
    ``tile`` is rounded down to one, so that each window groups pixels into the same 2x2/4x4 blocks
    as the whole-image pass; a core may then run up to ``multiple - 1`` px past the end, into the
    extra padding ``pad_image`` adds for it.
    """
    if length <= 0:
        raise ValueError(f"cannot tile an axis of length {length}")
    if multiple < 1:
        raise ValueError(f"size multiple must be >= 1, got {multiple}")
    aligned = length + (-length) % multiple
    if tile > 0:
        tile = max(multiple, tile // multiple * multiple)
    if tile <= 0 or tile >= length:
        return [Span(0, aligned, 0, length)]
    count = -(-length // tile)
    last = -(-(length - tile) // multiple) * multiple
    starts = [i * tile for i in range(count - 1)] + [last]
    spans = []
    for i, start in enumerate(starts):
        # Tile i writes from where tile i-1 stopped: the shifted last tile keeps only its new part,
        # which sits deeper inside its window (more context) than in the previous tile.
        keep_start = i * tile
        keep_end = min((i + 1) * tile, length)
        spans.append(Span(start, tile, keep_start, keep_end))
    return spans


def tile_grid(height: int, width: int, tile: int, pad: int, multiple: int = 1) -> list[Tile]:
    """All tiles of an image, row-major. ``tile=0`` is the whole image in one window."""
    if pad < 0:
        raise ValueError(f"tile pad must be >= 0, got {pad}")
    return [
        Tile(ys, xs, pad)
        for ys in axis_spans(height, tile, multiple) for xs in axis_spans(width, tile, multiple)
    ]


def pad_image(image: np.ndarray, pad: int, multiple: int = 1) -> np.ndarray:
    """Reflect-pad an HWC (or HW) image by ``pad`` on every side (repeated reflection if it is tiny),
    plus what rounds the bottom and right up to a multiple of ``multiple`` (see ``axis_spans``)."""
    h, w = image.shape[:2]
    extra_h, extra_w = (-h) % multiple, (-w) % multiple
    if pad == 0 and extra_h == 0 and extra_w == 0:
        return image
    widths = [(pad, pad + extra_h), (pad, pad + extra_w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="reflect")


def extract_window(padded: np.ndarray, tile: Tile) -> np.ndarray:
    """The CHW float32 [0, 1] window of ``tile`` from the padded HWC float32 image."""
    wh, ww = tile.window_shape
    win = padded[tile.y.start : tile.y.start + wh, tile.x.start : tile.x.start + ww]
    return np.ascontiguousarray(win.transpose(2, 0, 1))


def run_fitted(run: Any, batch: np.ndarray, scale: int, requirements: Any = None) -> np.ndarray:
    """``run(batch)``, with the batch first reflect-padded at the bottom and right to the smallest size
    the network accepts (``SizeRequirements``: multiple-of, minimum, square) and the output cropped back.

    Tile windows and whole images come in any size; networks such as SwinIR or DAT take only some.
    Padding here, per batch, covers every backend and both the tiled and the whole-image path. An
    output of an unexpected size is returned as it is, for the caller's shape check to report.
    """
    if requirements is None or requirements.none:
        return run(batch)
    h, w = batch.shape[2:]
    fit_h, fit_w = requirements.fit(h, w)
    if (fit_h, fit_w) == (h, w):
        return run(batch)
    out = run(np.pad(batch, ((0, 0), (0, 0), (0, fit_h - h), (0, fit_w - w)), mode="reflect"))
    if tuple(out.shape[2:]) != (fit_h * scale, fit_w * scale):
        return out
    return out[:, :, : h * scale, : w * scale]


def to_integer(values: np.ndarray, dtype: np.dtype[Any] | type) -> np.ndarray:
    """Float [0, 1] -> uint8/uint16 with rounding and clipping (models overshoot a little)."""
    maxval = float(np.iinfo(dtype).max)
    return np.clip(values * maxval + 0.5, 0.0, maxval).astype(dtype)


def stitch(out: np.ndarray, tile_output: np.ndarray, tile: Tile, scale: int) -> None:
    """Write the kept centre of one tile's CHW float output into the HWC integer image ``out``."""
    p = tile.pad
    y0 = (tile.y.keep_start - tile.y.start + p) * scale
    y1 = (tile.y.keep_end - tile.y.start + p) * scale
    x0 = (tile.x.keep_start - tile.x.start + p) * scale
    x1 = (tile.x.keep_end - tile.x.start + p) * scale
    centre = tile_output[:, y0:y1, x0:x1].transpose(1, 2, 0)
    out[tile.y.keep_start * scale : tile.y.keep_end * scale, tile.x.keep_start * scale : tile.x.keep_end * scale] = (
        to_integer(centre, out.dtype)
    )


def run_tiled(
    run: Any, image: np.ndarray, scale: int, tile: int, pad: int, batch: int = 1, dtype: type = np.uint8,
    multiple: int = 1, requirements: Any = None,
) -> np.ndarray:
    """Upscale one HWC float32 [0, 1] image with ``run`` (NCHW -> NCHW): the simple, synchronous path.

    The pipeline does the same with tiles of several images in flight; benchmarks call this one.
    ``requirements``: the network's ``SizeRequirements`` (see ``run_fitted``).
    """
    h, w, c = image.shape
    padded = pad_image(image, pad, multiple)
    out = np.empty((h * scale, w * scale, c), dtype=dtype)
    tiles = tile_grid(h, w, tile, pad, multiple)
    for start in range(0, len(tiles), max(1, batch)):
        group = tiles[start : start + max(1, batch)]
        result = run_fitted(run, np.stack([extract_window(padded, t) for t in group]), scale, requirements)
        for t, res in zip(group, result, strict=True):
            stitch(out, res, t, scale)
    return out


@dataclass
class TileJob:
    """One tile waiting for the model, with whatever the caller needs to put its output back."""

    key: Any  # which image (and plane) it belongs to: hashable, the caller's choice
    tile: Tile
    window: np.ndarray  # CHW float32


class TileBatcher:
    """Groups tiles of equal window shape, from one or several images, into batches of ``size``.

    Tiles of different shapes (small images) cannot share a batch; they wait in their own group.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"batch size must be >= 1, got {size}")
        self.size = size
        self._pending: dict[tuple[int, ...], list[TileJob]] = {}

    def add(self, job: TileJob) -> list[TileJob] | None:
        """Queue a tile; return a full batch when its shape group has ``size`` tiles."""
        group = self._pending.setdefault(job.window.shape, [])
        group.append(job)
        if len(group) >= self.size:
            del self._pending[job.window.shape]
            return group
        return None

    def flush(self) -> Iterator[list[TileJob]]:
        """Everything still queued, one batch per shape group (oldest group first)."""
        while self._pending:
            shape = next(iter(self._pending))
            yield self._pending.pop(shape)

    def __len__(self) -> int:
        return sum(len(g) for g in self._pending.values())
