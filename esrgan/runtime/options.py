"""``RunOptions``: every ``esrgan-run`` setting except the model and the paths, and the one owner of
their defaults.

The click options of ``esrgan-run``, the keywords of ``Upscaler`` and ``Upscaler.upscale_folder``,
and ``TileEngine`` all read their defaults from these fields (``RunOptions.tile`` and so on) rather
than restating them, so the command line and the Python API cannot drift apart. The numbers with a
measured rationale keep it next to the code they tune: the tile pad in ``tiling``, the pixel limit
in ``images``; they are referenced here, not copied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from esrgan.errors import UsageError
from esrgan.runtime.images import DEFAULT_MAX_PIXELS
from esrgan.runtime.tiling import DEFAULT_TILE_PAD


@dataclass(frozen=True)
class RunOptions:
    """How the model is loaded and how each image is tiled, processed and written."""

    backend: str = "auto"  # a name from esrgan.runtime.backends.registry.CHOICES
    precision: str = "auto"  # auto = the backend's choice; or fp32/fp16/bf16 (registry.PRECISION_CHOICES)
    tile: int | str = "auto"  # px per tile side; "auto" = the largest that fits; 0 = whole image
    tile_pad: int = DEFAULT_TILE_PAD
    batch: int = 1  # tiles per model call
    format: str = "same"  # output format; "same" = the input's
    suffix: str = ""  # output name NAME_SUFFIX.ext (Real-ESRGAN's --suffix); "" = the input's name
    quality: int = 95  # JPEG/WebP quality
    outscale: float | None = None  # final scale factor; None = the model's
    overwrite: bool = False  # redo outputs that already exist
    shard: tuple[int, int] | None = None  # (I, N): a stable 1/N share of the inputs
    max_pixels: int = DEFAULT_MAX_PIXELS
    device_id: int = 0  # GPU index
    threads: int | None = None  # CPU threads for the backend; None = the backend's choice
    workers: int = 2  # decode and encode threads each (no CLI flag)

    def __post_init__(self) -> None:
        object.__setattr__(self, "outscale", check_outscale(self.outscale))


# --outscale's range. Above MAX_OUTSCALE the resize of even a modest image runs out of memory (x16
# already makes a 4000 px photo 64000 px wide); below MIN_OUTSCALE the output of any image within
# the pixel limit would shrink to a few pixels, which is no use as a result.
MIN_OUTSCALE = 1 / 64
MAX_OUTSCALE = 16.0


def check_outscale(value: float | None) -> float | None:
    """``--outscale`` must be a number in [MIN_OUTSCALE, MAX_OUTSCALE] (or None): checked before any model runs."""
    if value is None:
        return None
    expected = f"expected a number from {MIN_OUTSCALE:g} to {MAX_OUTSCALE:g}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--outscale {value!r}: {expected}") from None
    if not math.isfinite(number) or not MIN_OUTSCALE <= number <= MAX_OUTSCALE:
        raise UsageError(f"--outscale {value}: {expected}")
    return number
