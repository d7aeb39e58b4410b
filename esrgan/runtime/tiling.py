"""Tile grid, context padding, stitching and batching: pure numpy, no model, no I/O.

How tiles are laid out, and why:

* The work must stay proportional to the image. Between tiles the context a window needs comes from
  real neighbouring pixels: each window reaches ``pad`` px into its neighbours. Only at the image's
  outer border is there nothing real; there the image is reflect-padded by ``border`` px (at most
  ``BORDER_PAD``, measured against ground truth), not by the full tile pad. Reflection gives the
  network natural-looking context instead of the zeros its convolutions would add.
* An image (or one axis of it) that fits one window runs as one window: the whole image plus its
  border, so the model runs little more than the image's own pixels. Tiled and whole-image outputs
  differ only by the context a tile lacks beyond its pad (measured in ``benchmarks/reports/tiling/``).
* Edge tiles are shifted inward rather than shrunk, and a window that would reach past the border
  padding is shifted inward too (taking its context from the interior side): every window of an
  image has the same shape, so tiles batch together (also across images) and fit a fixed engine
  profile. The overlap a shifted tile creates is written once, by the tile whose window gives it
  more context.
* The model's output is written straight into a uint8/uint16 buffer allocated once per image: no
  float copy of the whole upscaled image is ever made.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Default context around each tile, in input pixels, taken from the neighbouring tiles' real pixels.
#: Chosen from the pad/PSNR curve in benchmarks/reports/tiling/: with real pretrained paper-size x4
#: weights (Real-ESRGAN x4plus) 28 px was the smallest pad that kept tiled output >= 50 dB PSNR from
#: the whole-image output at every tile size >= 48 px on that report's 256 px astronaut crop. On other
#: images no small-tile figure is a bound (x4plus, OpenVINO FP32, 8-bit outputs compared): a 160 px
#: astronaut crop gave 46.4 dB at tile 48 / pad 28, 49.3 dB at 48 / 32, 46.9 at 24 / 32 and 45.0 at
#: 16 / 32; a 160 px coffee crop 52.5, 56.3, 53.5 and 52.0. Larger tiles have fewer seams: 57.2 dB at
#: tile 128 and 73.6 dB at 256 (pad 32) on a 400 px astronaut crop; ``--tile auto`` on a CPU runs an
#: image whole up to its memory budget and tiles larger ones at 600 px or more.
DEFAULT_TILE_PAD = 32

#: Reflect padding at the image's outer border, in input pixels (never more than the tile pad): none.
#: Measured against ground truth, not against another padding (benchmarks/reports/tiling/border_pad.md):
#: HR photographs downscaled x4 by MATLAB-style bicubic, upscaled whole by Real-ESRGAN x4plus with the
#: LR image reflect-padded by 0/4/8/16/32 px; PSNR vs the HR photograph over the outer 32 HR px band.
#: Mean: none 25.75 dB, 4-16 px 25.39-25.74 dB (worse), 32 px 25.92 dB; per photograph 32 px vs none
#: ranges from -0.04 to +0.49 dB over the band. Over the whole image 32 px gains on all three (+0.11 to
#: +0.54 dB, mean +0.35). So 0 is a trade-off, not the quality optimum: padding moves the whole output of
#: a small image (1 px of reflection puts a 48 x 64 photograph's output 28.9 dB from the unpadded one,
#: benchmarks/reports/end_to_end/end_to_end_border_1px.json), so a padded image could not stay within
#: 45 dB of a plain PyTorch forward, and 32 px makes a 192 px image run 1.78x its pixels. Unpadded, the
#: whole-image pass is exactly the model's forward (as Real-ESRGAN's inference script with its default
#: --pre_pad 0), and the model runs the image's pixels.
BORDER_PAD = 0

#: The most pixels the border padding may make the model run, per image pixel: a guard on its cost
#: should BORDER_PAD be raised for another model (padding a 96 x 96 image by 32 px costs 2.8x its
#: pixels); small images then get less border.
MAX_PADDED_SHARE = 1.1


def border_pad(pad: int, height: int | None = None, width: int | None = None) -> int:
    """The outer-border reflection for a tile pad of ``pad`` on a ``height`` x ``width`` image.

    ``BORDER_PAD``, but never more than ``pad`` (so a whole image fits any window a tile fits, and
    ``--tile-pad 0`` means no padding anywhere), and for a given size never more than keeps the
    padded image within ``MAX_PADDED_SHARE`` of the image's pixels.
    """
    border = min(pad, BORDER_PAD)
    if height is None or width is None:
        return border
    total = height + width
    fits = int((math.sqrt(total * total + 4 * (MAX_PADDED_SHARE - 1) * height * width) - total) / 4)
    border = max(0, min(border, fits))
    while border and (height + 2 * border) * (width + 2 * border) > MAX_PADDED_SHARE * height * width:
        border -= 1
    return border


@dataclass(frozen=True)
class Span:
    """One window along one axis: where it lies in the padded image and the part of the image it writes."""

    start: int  # window start in the padded image
    size: int  # window size
    keep_start: int  # first image index this tile writes
    keep_end: int  # one past the last image index this tile writes


@dataclass(frozen=True)
class Tile:
    """A tile of one image: its window in the padded image and the region of the image it writes."""

    y: Span
    x: Span
    border: int  # the padded image's border: image index i is padded index i + border

    @property
    def window_shape(self) -> tuple[int, int]:
        return self.y.size, self.x.size


def axis_spans(
    length: int, tile: int, multiple: int = 1, pad: int = 0, border: int = 0, equal: bool = True
) -> list[Span]:
    """Split ``length`` pixels into cores of ``tile`` px, each run in a window ``pad`` px wider on each side.

    The image is padded by ``border`` px at both ends (``pad_image``). ``tile <= 0``, ``tile >= length``,
    or an axis whose padded length is no more than one window, gives one window covering the whole
    padded axis. Otherwise the axis is cut into the fewest cores of at most ``tile`` px, made equal (so
    a 1080 px axis in 600 px tiles runs two 540 px cores, not 600 + 480 with the last window shifted
    over its neighbour) unless ``equal`` is False (a model whose input size is fixed takes windows of
    exactly ``tile + 2 * pad``); every window has the same size; a last core that does not come out even is
    shifted inward, not shrunk, and a window that would leave the padded image is shifted back into it.

    ``multiple`` is the model's size multiple (its pixel-unshuffle factor): every window starts at a
    multiple of it in the padded image, so that each window groups pixels into the same 2x2/4x4 blocks
    as the whole-image pass (``tile`` is rounded down to a multiple and the context up so that this
    holds); the padded image runs up to ``multiple - 1`` px past the end, into the extra padding
    ``pad_image`` adds for it.
    """
    if length <= 0:
        raise ValueError(f"cannot tile an axis of length {length}")
    if multiple < 1:
        raise ValueError(f"size multiple must be >= 1, got {multiple}")
    if pad < 0 or border < 0:
        raise ValueError(f"tile pad and border must be >= 0, got {pad} and {border}")
    padded = length + (-length) % multiple + 2 * border
    if tile > 0:
        tile = max(multiple, tile // multiple * multiple)
    context = pad + (border - pad) % multiple  # window starts stay on the multiple
    window = tile + 2 * context
    if tile <= 0 or tile >= length or window >= padded:
        return [Span(0, padded, 0, length)]
    # Equal cores, as small as the number of windows allows: with the tile as given, the last core would
    # be a remainder whose window repeats most of its neighbour's (1080 rows in 600 px tiles with a
    # 32 px pad run 2 x 664 = 1328 rows; in two 540 px tiles, 2 x 604 = 1208).
    if equal:
        even = -(-length // -(-length // tile))
        tile = min(tile, -(-even // multiple) * multiple)
        window = tile + 2 * context
    count = -(-length // tile)
    last = -(-(length - tile) // multiple) * multiple
    cores = [i * tile for i in range(count - 1)] + [last]
    spans = []
    for i, core in enumerate(cores):
        # Tile i writes from where tile i-1 stopped: the shifted last tile keeps only its new part,
        # which sits deeper inside its window (more context) than in the previous tile.
        start = min(max(core + border - context, 0), padded - window)
        spans.append(Span(start, window, i * tile, min((i + 1) * tile, length)))
    return spans


def tile_grid(
    height: int, width: int, tile: int, pad: int, multiple: int = 1, border: int | None = None, equal: bool = True
) -> list[Tile]:
    """All tiles of an image, row-major. ``tile=0`` is the whole image in one window.

    ``border`` is the image's padding in ``pad_image`` (default ``border_pad(pad, height, width)``);
    ``equal``: see ``axis_spans``."""
    if pad < 0:
        raise ValueError(f"tile pad must be >= 0, got {pad}")
    border = border_pad(pad, height, width) if border is None else border
    return [
        Tile(ys, xs, border)
        for ys in axis_spans(height, tile, multiple, pad, border, equal)
        for xs in axis_spans(width, tile, multiple, pad, border, equal)
    ]


def pixels_run(height: int, width: int, tile: int, pad: int, multiple: int = 1, border: int | None = None) -> int:
    """How many input pixels the model runs for one image plane: the sum of its windows' areas."""
    return sum(h * w for h, w in (t.window_shape for t in tile_grid(height, width, tile, pad, multiple, border)))


def pad_image(image: np.ndarray, pad: int, multiple: int = 1) -> np.ndarray:
    """Reflect-pad an HWC (or HW) image by ``pad`` on every side (repeated reflection if it is tiny),
    plus what rounds the bottom and right up to a multiple of ``multiple`` (see ``axis_spans``).

    The runtime pads by the border (``border_pad``), not by the tile pad: tiles take their context
    from their neighbours."""
    h, w = image.shape[:2]
    extra_h, extra_w = (-h) % multiple, (-w) % multiple
    if pad == 0 and extra_h == 0 and extra_w == 0:
        return image
    widths = [(pad, pad + extra_h), (pad, pad + extra_w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="reflect")


def extract_window(padded: np.ndarray, tile: Tile) -> np.ndarray:
    """The CHW float32 [0, 1] window of ``tile`` from the padded HWC float32 image."""
    y, x = tile.y, tile.x
    win = padded[y.start : y.start + y.size, x.start : x.start + x.size]
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
    b = tile.border
    y0 = (tile.y.keep_start + b - tile.y.start) * scale
    y1 = (tile.y.keep_end + b - tile.y.start) * scale
    x0 = (tile.x.keep_start + b - tile.x.start) * scale
    x1 = (tile.x.keep_end + b - tile.x.start) * scale
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
    border = border_pad(pad, h, w)
    padded = pad_image(image, border, multiple)
    out = np.empty((h * scale, w * scale, c), dtype=dtype)
    tiles = tile_grid(h, w, tile, pad, multiple, border)
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
