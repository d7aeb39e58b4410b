"""TensorRT optimisation profiles: the input shapes an engine accepts, and their defaults.

Why here: the engine builder (``esrgan.export.tensorrt_build``) and the engine runner
(``esrgan.runtime.backends.tensorrt_backend``) must agree on these shapes, and the defaults follow
the runtime's tiles (sizes and ``DEFAULT_TILE_PAD``), so the one owner sits in the runtime, which
the export side may import. Pure arithmetic: no tensorrt, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from esrgan.errors import UsageError
from esrgan.runtime.tiling import DEFAULT_TILE_PAD as RUNTIME_TILE_PAD

Shape = tuple[int, int, int, int]

# Default profile: the runtime's tiles are 64-512 px plus tile_pad on each side, batches of 1-4.
DEFAULT_TILE_MIN, DEFAULT_TILE_OPT, DEFAULT_TILE_MAX = 64, 256, 512
DEFAULT_TILE_PAD = RUNTIME_TILE_PAD  # the runtime's pad, so its windows always fit the default profile
DEFAULT_BATCH_MIN, DEFAULT_BATCH_OPT, DEFAULT_BATCH_MAX = 1, 4, 4


@dataclass(frozen=True)
class Profile:
    """One TensorRT optimisation profile for the NCHW input: the shapes the engine accepts."""

    min: Shape
    opt: Shape
    max: Shape

    def accepts(self, shape: Sequence[int]) -> bool:
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True))

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def default_profile(
    channels: int = 3, *, tile_min: int = DEFAULT_TILE_MIN, tile_opt: int = DEFAULT_TILE_OPT,
    tile_max: int = DEFAULT_TILE_MAX, tile_pad: int = DEFAULT_TILE_PAD, batch_min: int = DEFAULT_BATCH_MIN,
    batch_opt: int = DEFAULT_BATCH_OPT, batch_max: int = DEFAULT_BATCH_MAX, multiple: int = 1,
) -> Profile:
    """Shapes for the runtime's tiles: the smallest tile alone, up to the largest padded tile x batch_max.

    ``min`` has no padding (an image smaller than a tile is one tile of its own size, padded up to the
    minimum by the runtime); ``opt``/``max`` include ``tile_pad`` on both sides. Sizes are rounded up to
    ``multiple`` (the model's pixel-unshuffle factor) so every accepted size is valid for the network.
    """
    def side(tile: int, pad: int) -> int:
        return _round_up(tile + 2 * pad, multiple)

    return validate_profile(Profile(
        min=(batch_min, channels, _round_up(tile_min, multiple), _round_up(tile_min, multiple)),
        opt=(batch_opt, channels, side(tile_opt, tile_pad), side(tile_opt, tile_pad)),
        max=(batch_max, channels, side(tile_max, tile_pad), side(tile_max, tile_pad)),
    ))


def parse_shape(text: str) -> Shape:
    """``"4x3x532x532"`` -> (4, 3, 532, 532); what --min-shape/--opt-shape/--max-shape take."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"shape {text!r}: expected NxCxHxW with integers, e.g. 1x3x64x64") from None
    if len(dims) != 4 or min(dims) <= 0:
        raise UsageError(f"shape {text!r}: expected four positive integers NxCxHxW, e.g. 1x3x64x64")
    return dims  # type: ignore[return-value]


def validate_profile(profile: Profile) -> Profile:
    """min <= opt <= max in every dimension and one channel count, or one line saying which differs."""
    names = ("N", "C", "H", "W")
    for shape in (profile.min, profile.opt, profile.max):
        if len(shape) != 4 or min(shape) <= 0:
            raise UsageError(f"profile shape {shape}: expected four positive integers NxCxHxW")
    for i, name in enumerate(names):
        lo, mid, hi = profile.min[i], profile.opt[i], profile.max[i]
        if not lo <= mid <= hi:
            raise UsageError(f"profile dimension {name}: need min <= opt <= max, got {lo}, {mid}, {hi}")
    if profile.min[1] != profile.max[1]:
        raise UsageError(f"profile channels differ: min {profile.min[1]}, max {profile.max[1]}")
    return profile
