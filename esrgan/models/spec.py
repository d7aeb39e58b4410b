"""GeneratorSpec: the few numbers that rebuild any supported generator.

It is torch-free on purpose: checkpoints, ONNX metadata and the runtime all carry it as JSON,
and the runtime must read it without importing torch.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from esrgan.errors import CheckpointError

ARCHS = ("rrdbnet", "pytorch-gan")
SCALES = (1, 2, 4, 8)
_SIZE_FIELDS = ("num_feat", "num_block", "num_grow_ch", "num_in_ch", "num_out_ch")
# Upper bounds of the size fields. Published ESRGAN generators stay far below them (the paper: nf 64,
# nb 23, gc 32, 3 channels); a spec is a claim of an untrusted file, and without bounds a claim such as
# nb 10**6 or nf 2**40 hangs or overflows model building before any tensor is compared with it.
MAX_SIZES = {"num_feat": 1024, "num_block": 256, "num_grow_ch": 1024, "num_in_ch": 16, "num_out_ch": 16}
# A spec's JSON is about 150 characters; a longer metadata string is no spec (and deep nesting in
# an arbitrary one would exhaust the parser's recursion).
MAX_SPEC_JSON = 4096


@dataclass(frozen=True)
class GeneratorSpec:
    """Architecture and size of a generator.

    ``arch``: ``rrdbnet`` (the paper's official network, BasicSR parameter names) or ``pytorch-gan``
    (PyTorch-GAN's ESRGAN ``GeneratorRRDB``: PixelShuffle upsampling, LeakyReLU 0.01, ImageNet-normalised I/O).
    ``pixel_unshuffle``: only for rrdbnet at scale 1 or 2. True is Real-ESRGAN's layout (the input is
    pixel-unshuffled by 4/scale, then upsampled x4); False is the old layout with log2(scale) upsamplers.
    For ``pytorch-gan`` the growth channels equal ``num_feat`` (that code has no separate gc).
    """

    arch: str = "rrdbnet"
    scale: int = 4
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32
    num_in_ch: int = 3
    num_out_ch: int = 3
    pixel_unshuffle: bool = False

    def __post_init__(self) -> None:
        # Every field is type-checked here, the one place a spec is made: specs come from untrusted
        # JSON (checkpoint and ONNX metadata), where null, 8.0, true, [8] or "8" must be refused in
        # one line rather than break model building somewhere later.
        if not isinstance(self.arch, str) or self.arch not in ARCHS:
            raise CheckpointError(f"unknown generator arch {_show(self.arch)}; expected one of {', '.join(ARCHS)}")
        for name in ("scale", *_SIZE_FIELDS):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise CheckpointError(f"spec field {name} must be an integer, got {_show(value)}")
            object.__setattr__(self, name, int(value))  # numpy/torch integers become plain ints (JSON)
        if not isinstance(self.pixel_unshuffle, bool):
            raise CheckpointError(f"spec field pixel_unshuffle must be true or false, got {_show(self.pixel_unshuffle)}")
        if self.scale not in SCALES:
            raise CheckpointError(f"unsupported scale {self.scale}; expected one of {SCALES}")
        for name in _SIZE_FIELDS:
            if getattr(self, name) <= 0:
                raise CheckpointError(f"spec field {name} must be positive, got {getattr(self, name)}")
            if getattr(self, name) > MAX_SIZES[name]:
                raise CheckpointError(
                    f"spec field {name} must be at most {MAX_SIZES[name]}, got {_show(getattr(self, name))}"
                )
        if self.pixel_unshuffle and (self.arch != "rrdbnet" or self.scale not in (1, 2)):
            raise CheckpointError("pixel_unshuffle applies only to rrdbnet at scale 1 or 2")
        if self.arch == "pytorch-gan" and self.num_grow_ch != self.num_feat:
            raise CheckpointError("pytorch-gan generators have num_grow_ch == num_feat")
        if self.arch == "pytorch-gan" and self.scale == 1:
            raise CheckpointError("pytorch-gan generators upsample at least x2")

    # ---- derived sizes -------------------------------------------------------------------------
    @property
    def unshuffle_factor(self) -> int:
        """How much the input is pixel-unshuffled before the trunk (1 = not at all)."""
        return 4 // self.scale if self.pixel_unshuffle else 1

    @property
    def num_upsample(self) -> int:
        """Number of x2 upsampling stages."""
        return int(math.log2(self.scale * self.unshuffle_factor))

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this (the model pads and crops internally)."""
        return self.unshuffle_factor

    @property
    def size_requirements(self) -> SizeRequirements:
        """Any input size works: the network pads to its unshuffle factor and crops internally."""
        return SizeRequirements()

    def macs_per_pixel(self) -> float:
        """Multiply-accumulates per *input* pixel (convolutions only), for FLOP/s figures."""
        k = 9
        nf, gc = self.num_feat, self.num_grow_ch
        u = self.unshuffle_factor
        lr = 1.0 / (u * u)  # trunk pixels per input pixel
        macs = 0.0
        if self.arch == "rrdbnet":
            macs += self.num_in_ch * u * u * nf * k * lr  # conv_first
            rdb = sum((nf + i * gc) * gc for i in range(4)) + (nf + 4 * gc) * nf
            macs += self.num_block * 3 * rdb * k * lr
            macs += nf * nf * k * lr  # conv_body
            area = lr
            for _ in range(self.num_upsample):
                area *= 4
                macs += nf * nf * k * area
            macs += (nf * nf + nf * self.num_out_ch) * k * area  # conv_hr, conv_last
        else:
            macs += self.num_in_ch * nf * k
            rdb = sum((i + 1) * nf * nf for i in range(5))
            macs += self.num_block * 3 * rdb * k
            macs += nf * nf * k
            area = 1.0
            for _ in range(self.num_upsample):
                macs += nf * 4 * nf * k * area
                area *= 4
            macs += (nf * nf + nf * self.num_out_ch) * k * area
        return macs

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorSpec:
        if not isinstance(data, dict):
            raise CheckpointError(f"spec is not a mapping of field names to values, got {_show(data)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise CheckpointError(f"unknown spec fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> GeneratorSpec:
        """An ESRGAN-family spec from metadata text (``spec_from_json`` also takes foreign specs)."""
        return cls.from_dict(spec_json_object(text))

    def replace(self, **changes: Any) -> GeneratorSpec:
        return replace(self, **changes)

    def describe(self) -> str:
        extra = ", pixel-unshuffle" if self.pixel_unshuffle else ""
        return (
            f"{self.arch} x{self.scale} nf{self.num_feat} nb{self.num_block} gc{self.num_grow_ch} "
            f"in{self.num_in_ch} out{self.num_out_ch}{extra}"
        )


def _show(value: Any, limit: int = 40) -> str:
    """A field value for a one-line message: its repr (shortened) and its JSON-ish type."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's digit limit for str()
        text = "<too many digits>"
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    kind = "null" if value is None else type(value).__name__
    return f"{text} ({kind})"


def paper_spec(scale: int = 4) -> GeneratorSpec:
    """The paper's generator: 23 RRDBs, 64 features, 32 growth channels."""
    return GeneratorSpec(arch="rrdbnet", scale=scale, pixel_unshuffle=scale in (1, 2))


# ---- architectures loaded through spandrel -------------------------------------------------------

#: Arch names of generators that spandrel builds start with this, then spandrel's architecture id.
FOREIGN_PREFIX = "spandrel:"


@dataclass(frozen=True)
class SizeRequirements:
    """Input sizes a network accepts (spandrel's ``SizeRequirements``, kept torch-free for the runtime).

    H and W must be multiples of ``multiple_of`` and at least ``minimum``; ``square`` wants H == W.
    The runtime pads a window that does not fit (reflecting the image) and crops the output.
    """

    multiple_of: int = 1
    minimum: int = 0
    square: bool = False

    def __post_init__(self) -> None:
        for name in ("multiple_of", "minimum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise CheckpointError(f"size requirement {name} must be an integer, got {_show(value)}")
            object.__setattr__(self, name, int(value))
        if self.multiple_of < 1 or self.minimum < 0:
            raise CheckpointError(f"size requirements need multiple_of >= 1 and minimum >= 0, got {self}")
        if not isinstance(self.square, bool):
            raise CheckpointError(f"size requirement square must be true or false, got {_show(self.square)}")

    @property
    def none(self) -> bool:
        return self.multiple_of == 1 and self.minimum == 0 and not self.square

    def fit(self, height: int, width: int) -> tuple[int, int]:
        """The smallest accepted (H, W) that holds a ``height`` x ``width`` input."""
        def up(n: int) -> int:
            n = max(n, self.minimum)
            return n + (-n) % self.multiple_of

        h, w = up(height), up(width)
        return (max(h, w), max(h, w)) if self.square else (h, w)

    def describe(self) -> str:
        parts = ([f"multiple of {self.multiple_of}"] if self.multiple_of > 1 else []) + (
            [f"at least {self.minimum}"] if self.minimum else []) + (["square"] if self.square else [])
        return ", ".join(parts) or "any"


@dataclass(frozen=True)
class ForeignSpec:
    """An image-to-image SR network that spandrel recognised and built (SwinIR, SPAN, ...).

    Its weights keep the published layout and are rebuilt by spandrel from the keys alone; the spec
    carries what export and the runtime need to know without torch or spandrel: scale, channels and
    the input sizes the network accepts. ``arch`` is ``FOREIGN_PREFIX`` + spandrel's architecture id.
    """

    arch: str
    name: str
    scale: int
    num_in_ch: int = 3
    num_out_ch: int = 3
    multiple_of: int = 1
    minimum: int = 0
    square: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str) or not self.arch.startswith(FOREIGN_PREFIX) or self.arch == FOREIGN_PREFIX:
            raise CheckpointError(f"foreign generator arch must be '{FOREIGN_PREFIX}<id>', got {_show(self.arch)}")
        if not isinstance(self.name, str):
            raise CheckpointError(f"spec field name must be a string, got {_show(self.name)}")
        for name in ("scale", "num_in_ch", "num_out_ch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise CheckpointError(f"spec field {name} must be a positive integer, got {_show(value)}")
            object.__setattr__(self, name, int(value))
        self.size_requirements  # noqa: B018 (validates multiple_of, minimum, square)

    @property
    def size_requirements(self) -> SizeRequirements:
        return SizeRequirements(self.multiple_of, self.minimum, self.square)

    @property
    def size_multiple(self) -> int:
        """What tile starts and sizes are aligned to (as for ``GeneratorSpec``)."""
        return self.multiple_of

    def macs_per_pixel(self) -> float:
        """Unknown for a network this project does not build itself (NaN, shown as n/a)."""
        return math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def describe(self) -> str:
        return (f"{self.name} (spandrel) x{self.scale} in{self.num_in_ch} out{self.num_out_ch}, "
                f"input size: {self.size_requirements.describe()}")


AnySpec = GeneratorSpec | ForeignSpec


def spec_from_dict(data: Any) -> AnySpec:
    """A ``GeneratorSpec``, or a ``ForeignSpec`` when ``arch`` names a spandrel architecture."""
    if isinstance(data, dict) and isinstance(data.get("arch"), str) and data["arch"].startswith(FOREIGN_PREFIX):
        known = {f.name for f in fields(ForeignSpec)}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise CheckpointError(f"unknown spec fields {unknown}; known: {sorted(known)}")
        return ForeignSpec(**data)
    return GeneratorSpec.from_dict(data)


def spec_from_json(text: str) -> AnySpec:
    """``spec_from_dict`` of JSON text (checkpoint and ONNX metadata), errors in one line."""
    return spec_from_dict(spec_json_object(text))


def spec_json_object(text: object) -> dict[str, Any]:
    """The one reader of spec metadata text: a JSON object, or one line saying what it is instead.

    The text comes from files anyone can write, so its length and nesting are bounded before and
    while it is parsed (deep nesting would otherwise end in a RecursionError traceback).
    """
    if not isinstance(text, str):
        raise CheckpointError(f"spec metadata is not text, got {_show(text)}")
    if len(text) > MAX_SPEC_JSON:
        raise CheckpointError(f"spec metadata is {len(text):,} characters long; a spec is under {MAX_SPEC_JSON:,}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"spec metadata is not valid JSON: {exc}") from None
    except RecursionError:
        raise CheckpointError("spec metadata is not a spec: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise CheckpointError("spec metadata is not a JSON object")
    return data
