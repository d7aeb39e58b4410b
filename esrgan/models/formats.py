"""Recognise a generator state dict's key layout and rename it to our modules' key names.

Every published ESRGAN generator family is the same network under different names, so loading is
"detect the family, infer the sizes, rename the keys". Sizes (scale, nb, nf, gc, channels) come
from key names and tensor shapes only, never from file names:

- ``esrgan``: this project's files, the spec is in the metadata.
- ``basicsr``: BasicSR / Real-ESRGAN ``RRDBNet`` (conv_first, body.N.rdbK.convJ, conv_body,
  conv_upK, conv_hr, conv_last). These are our own names. Real-ESRGAN's x2/x1 models
  pixel-unshuffle the input first, which shows as conv_first having 4x/16x the output channels.
- ``esrgan-official``: the ESRGAN authors' ``RRDBNet_arch.py`` (RRDB_trunk.N.RDBk.convj,
  trunk_conv, upconvK, HRconv, conv_last).
- ``esrgan-old-arch``: the authors' earlier sequential model (model.0, model.1.sub.N.RDBk.convj.0,
  model.1.sub.{nb} = trunk conv, then per x2 stage [upsample, conv, lrelu], then HR conv, lrelu,
  last conv; so the indices of the upsampling convs shift with the scale).
- ``pytorch-gan``: PyTorch-GAN's ESRGAN ``GeneratorRRDB`` (conv1, res_blocks.N.dense_blocks.M.bK.0,
  conv2, upsampling.{3k}, conv3.0/conv3.2).

Layouts were checked against the authors' code (github.com/xinntao/ESRGAN, BasicSR,
eriklindernoren/PyTorch-GAN) and the way chaiNNer's spandrel recognises them; no code is copied.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from esrgan.errors import CheckpointError
from esrgan.metadata import SPEC
from esrgan.models.spec import GeneratorSpec

StateDict = dict[str, torch.Tensor]

OWN = "esrgan"
BASICSR = "basicsr"
OFFICIAL = "esrgan-official"
OLD_ARCH = "esrgan-old-arch"
PYTORCH_GAN = "pytorch-gan"

#: Human-readable names, for describe_checkpoint and the table in docs/models.md.
FORMAT_TITLES = {
    OWN: "this project, spec in metadata",
    BASICSR: "BasicSR / Real-ESRGAN RRDBNet",
    OFFICIAL: "original ESRGAN repo, RRDBNet_arch.py",
    OLD_ARCH: "original ESRGAN old arch, sequential model.N",
    PYTORCH_GAN: "PyTorch-GAN GeneratorRRDB",
}


class UnknownLayoutError(CheckpointError):
    """No ESRGAN family matches the keys: the loader then offers the file to spandrel."""


@dataclass(frozen=True)
class Layout:
    """A recognised family: its spec and the key renaming both ways (theirs -> ours for loading,
    ours -> theirs to name a missing tensor the way the file would)."""

    fmt: str
    spec: GeneratorSpec
    to_ours: Callable[[str], str | None]
    to_theirs: Callable[[str], str] = field(default=lambda key: key)


def convert_state_dict(
    state: StateDict, meta: dict[str, str], src: str, *, finite: bool = True
) -> tuple[str, GeneratorSpec, StateDict]:
    """Return (format name, spec, state dict with our key names, as FP32).

    Raises ``CheckpointError`` with one line naming the expected and the found key or shape, or
    (``finite``, for anything that will compute with the weights) the first tensor holding NaN/inf:
    such weights make every output NaN, black images, never an error.
    """
    fmt, spec, converted = _convert(state, meta, src)
    if finite:
        check_finite(converted, src)
    return fmt, spec, converted


def nonfinite_tensors(state: StateDict) -> list[str]:
    """Keys of the floating-point tensors holding NaN or infinite values."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def check_finite(state: StateDict, src: str) -> None:
    """Refuse weights with NaN or infinite values, naming the first such tensor."""
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(
            f"{src}: tensor {bad[0]!r} holds NaN or infinite values ({len(bad)} such tensor(s) in all); "
            "the weights are unusable"
        )


def _convert(state: StateDict, meta: dict[str, str], src: str) -> tuple[str, GeneratorSpec, StateDict]:
    if SPEC in meta:
        try:
            spec = GeneratorSpec.from_json(meta[SPEC])
        except CheckpointError as exc:
            raise CheckpointError(f"{src}: metadata {SPEC}: {exc}") from None
        # The spec is a claim of the file: the tensors must match it before anything is built at
        # its size (a small file claiming nf 4096 would otherwise allocate gigabytes first).
        check_against_spec(state, spec, src)
        return OWN, spec, _as_float32(state)
    _refuse_unsupported(state, src)
    for detect in (_detect_basicsr, _detect_official, _detect_old_arch, _detect_pytorch_gan):
        layout = detect(state, src)
        if layout is not None:
            converted, origin = _rename_all(state, layout, src)
            check_against_spec(converted, layout.spec, src, origin, layout.to_theirs)
            return layout.fmt, layout.spec, _as_float32(converted)
    raise UnknownLayoutError(
        f"{src}: unknown checkpoint layout: expected an ESRGAN generator (keys such as conv_first.weight, "
        f"RRDB_trunk.0..., model.0.weight or conv1.weight + res_blocks.0...), found {_preview(state)}"
    )


# ---- family detectors: (format, spec, rename their key -> our key) or None ------------------------


def _detect_basicsr(state: StateDict, src: str) -> Layout | None:
    if "conv_first.weight" not in state or not _has_prefix(state, "body."):
        return None
    return Layout(BASICSR, _named_spec(state, src, "body", "conv_up", "body.0.rdb1.conv1.weight"), lambda key: key)


def _named_spec(state: StateDict, src: str, trunk: str, upconv: str, first_rdb_conv: str) -> GeneratorSpec:
    """Spec of the two layouts with named modules (BasicSR, official): same network, other names."""
    return _rrdb_spec(
        src, first=state["conv_first.weight"], last=_need(state, "conv_last.weight", src),
        num_block=_count(state, rf"{trunk}\.(\d+)\."), grow=_need(state, first_rdb_conv, src),
        num_up=len(_numbered(state, rf"{upconv}(\d+)\.weight")),
    )


def _detect_official(state: StateDict, src: str) -> Layout | None:
    if "conv_first.weight" not in state or not _has_prefix(state, "RRDB_trunk."):
        return None
    spec = _named_spec(state, src, "RRDB_trunk", "upconv", "RRDB_trunk.0.RDB1.conv1.weight")
    return _template_layout(OFFICIAL, spec, [
        ("RRDB_trunk.{n}.RDB{k}.conv{j}.{p}", "body.{n}.rdb{k}.conv{j}.{p}"),
        ("upconv{i}.{p}", "conv_up{i}.{p}"),
        ("conv_first.{p}", "conv_first.{p}"),
        ("trunk_conv.{p}", "conv_body.{p}"),
        ("HRconv.{p}", "conv_hr.{p}"),
        ("conv_last.{p}", "conv_last.{p}"),
    ])


def _detect_old_arch(state: StateDict, src: str) -> Layout | None:
    if "model.0.weight" not in state or not _has_prefix(state, "model.1.sub."):
        return None
    num_block = _count(state, r"model\.1\.sub\.(\d+)\.RDB")
    # Top-level convs after the trunk: [upsample, conv, lrelu] per x2 stage, then HR conv, lrelu, last conv.
    tail = _numbered(state, r"model\.(\d+)\.weight")
    tail = [i for i in tail if i >= 2]
    if len(tail) < 2:
        raise CheckpointError(
            f"{src}: old-arch ESRGAN layout without its final convolutions: expected model.K.weight for the "
            f"HR and last convs after model.1, found {_preview(state)}"
        )
    *up_idx, hr_idx, last_idx = tail
    nf = state["model.0.weight"].shape[0]
    if any(state[f"model.{i}.weight"].shape[0] == 4 * nf for i in up_idx):
        raise CheckpointError(
            f"{src}: old-arch ESRGAN with pixel-shuffle upsampling (a conv to {4 * nf} channels at model.{up_idx[0]}) "
            "is not supported; expected nearest-neighbour 'upconv' upsampling (conv to nf channels)"
        )
    expected = [3 + 3 * i for i in range(len(up_idx))] + [2 + 3 * len(up_idx), 4 + 3 * len(up_idx)]
    if tail != expected:
        raise CheckpointError(
            f"{src}: old-arch ESRGAN layout with unexpected conv indices: expected model.{expected} "
            f"for {len(up_idx)} upsampler(s), found model.{tail}"
        )
    spec = _rrdb_spec(
        src, first=state["model.0.weight"], last=state[f"model.{last_idx}.weight"], num_block=num_block,
        grow=_need(state, "model.1.sub.0.RDB1.conv1.0.weight", src), num_up=len(up_idx),
    )
    pairs = [
        ("model.1.sub.{n}.RDB{k}.conv{j}.0.{p}", "body.{n}.rdb{k}.conv{j}.{p}"),
        (f"model.1.sub.{num_block}.{{p}}", "conv_body.{p}"),
        ("model.0.{p}", "conv_first.{p}"),
        *[(f"model.{idx}.{{p}}", f"conv_up{n}.{{p}}") for n, idx in enumerate(up_idx, start=1)],
        (f"model.{hr_idx}.{{p}}", "conv_hr.{p}"),
        (f"model.{last_idx}.{{p}}", "conv_last.{p}"),
    ]
    return _template_layout(OLD_ARCH, spec, pairs)


def _detect_pytorch_gan(state: StateDict, src: str) -> Layout | None:
    if "conv1.weight" not in state or not _has_prefix(state, "res_blocks.0.dense_blocks."):
        return None
    first = state["conv1.weight"]
    last = _need(state, "conv3.2.weight", src)
    ups = _numbered(state, r"upsampling\.(\d+)\.weight")
    if ups != [3 * k for k in range(len(ups))]:
        raise CheckpointError(
            f"{src}: PyTorch-GAN layout with unexpected upsampling indices: expected "
            f"upsampling.{[3 * k for k in range(len(ups))]}, found upsampling.{ups}"
        )
    if first.shape[1] != last.shape[0]:
        raise CheckpointError(
            f"{src}: PyTorch-GAN GeneratorRRDB has as many output as input channels: conv1 takes "
            f"{first.shape[1]}, conv3.2 gives {last.shape[0]}"
        )
    spec = _make_spec(
        src, arch="pytorch-gan", scale=2 ** len(ups), num_feat=first.shape[0],
        num_block=_count(state, r"res_blocks\.(\d+)\."), num_grow_ch=first.shape[0],
        num_in_ch=first.shape[1], num_out_ch=last.shape[0],
    )
    return Layout(PYTORCH_GAN, spec, lambda key: key)


def _template_layout(fmt: str, spec: GeneratorSpec, pairs: list[tuple[str, str]]) -> Layout:
    """A Layout from (their template, our template) pairs such as ("upconv{i}.{p}", "conv_up{i}.{p}").

    ``{p}`` is weight/bias, any other field an integer; the same pairs rename in both directions.
    """
    def compile_(template: str) -> re.Pattern[str]:
        parts = re.split(r"\{(\w+)\}", template)
        regex = "".join(
            re.escape(part) if i % 2 == 0 else (r"(?P<p>weight|bias)" if part == "p" else rf"(?P<{part}>\d+)")
            for i, part in enumerate(parts)
        )
        return re.compile(regex)

    compiled = [(compile_(theirs), theirs, compile_(ours), ours) for theirs, ours in pairs]

    def to_ours(key: str) -> str | None:
        for pattern, _, _, ours in compiled:
            if m := pattern.fullmatch(key):
                return ours.format(**m.groupdict())
        return None

    def to_theirs(key: str) -> str:
        for _, theirs, pattern, _ in compiled:
            if m := pattern.fullmatch(key):
                return theirs.format(**m.groupdict())
        return key

    return Layout(fmt, spec, to_ours, to_theirs)


def _refuse_unsupported(state: StateDict, src: str) -> None:
    """Known relatives of ESRGAN that look similar but compute something else."""
    for key in state:
        if ".conv1x1." in key:
            raise CheckpointError(
                f"{src}: ESRGAN+ (nESRGAN+) checkpoints are not supported: found {key!r}; expected plain RRDB "
                "blocks with conv1..conv5 only"
            )


# ---- spec inference ------------------------------------------------------------------------------


def _rrdb_spec(
    src: str, *, first: torch.Tensor, last: torch.Tensor, num_block: int, grow: torch.Tensor, num_up: int
) -> GeneratorSpec:
    """The rrdbnet spec implied by the first/last convs, the block count and the upsampler count.

    Pixel-unshuffle by f multiplies conv_first's input channels by f*f; Real-ESRGAN always unshuffles
    down to an x4 trunk, so f = 4 / scale (x2: f 2, x1: f 4) and the network keeps two upsamplers.
    """
    out_ch, in_total = last.shape[0], first.shape[1]
    ratio = in_total // out_ch if in_total % out_ch == 0 else 1
    factor = math.isqrt(ratio) if ratio in (4, 16) else 1
    if factor > 1 and num_up != 2:
        raise CheckpointError(
            f"{src}: pixel-unshuffle x{factor} input (conv_first takes {in_total} channels for {out_ch} outputs) "
            f"with {num_up} upsampler(s) is not supported; expected 2 upsamplers (Real-ESRGAN x2/x1 layout)"
        )
    return _make_spec(
        src, arch="rrdbnet", scale=2**num_up // factor, num_feat=first.shape[0], num_block=num_block,
        num_grow_ch=grow.shape[0], num_in_ch=in_total // (factor * factor), num_out_ch=out_ch,
        pixel_unshuffle=factor > 1,
    )


def _make_spec(src: str, **fields: object) -> GeneratorSpec:
    try:
        return GeneratorSpec(**fields)  # type: ignore[arg-type]
    except CheckpointError as exc:
        raise CheckpointError(f"{src}: {exc}") from None


# ---- renaming and checking -----------------------------------------------------------------------


def _rename_all(state: StateDict, layout: Layout, src: str) -> tuple[StateDict, dict[str, str]]:
    """Rename to our keys; also returns our-key -> their-key (to name their key in errors)."""
    converted: StateDict = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        ours = layout.to_ours(key)
        if ours is None:
            raise CheckpointError(
                f"{src}: unexpected tensor {key!r} for the {FORMAT_TITLES[layout.fmt]} layout "
                f"(shape {tuple(value.shape)})"
            )
        converted[ours] = value
        origin[ours] = key
    return converted, origin


def check_against_spec(
    state: StateDict, spec: GeneratorSpec, src: str, origin: dict[str, str] | None = None,
    theirs: Callable[[str], str] = lambda key: key,
) -> None:
    """Raise one line for the first missing, unexpected or mis-shaped tensor that ``spec`` needs.

    The reference shapes come from ``expected_shapes`` (no memory, no init cost, no time in proportion
    to the size the spec claims). ``origin`` maps our key names back to the file's and ``theirs``
    names a key the file lacks in the file's own layout, so the message names a key the user can find.
    """
    expected = expected_shapes(spec)
    check_state_shapes(state, expected, src, f" for {spec.describe()}", origin, theirs)


def expected_shapes(spec: GeneratorSpec) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the generator ``spec`` describes, in state-dict order.

    A one-block generator is built on the ``meta`` device and its block repeated by name: building
    all blocks would take time in proportion to ``num_block``, a number an untrusted file claims.
    """
    from esrgan.models.build import build_generator

    with torch.device("meta"):
        one = {k: tuple(v.shape) for k, v in build_generator(spec.replace(num_block=1)).state_dict().items()}
    block = re.compile(r"(body|res_blocks)\.0\.(.*)")  # the trunk's block list in either arch
    in_block = {key: m for key in one if (m := block.fullmatch(key))}
    expected: dict[str, tuple[int, ...]] = {}
    for key, shape in one.items():
        if key not in in_block:
            expected[key] = shape
        elif key == next(iter(in_block)):  # the whole trunk goes where its first block was
            for n in range(spec.num_block):
                expected.update({f"{m[1]}.{n}.{m[2]}": one[k] for k, m in in_block.items()})
    return expected


def check_state_shapes(
    state: StateDict, expected: dict[str, tuple[int, ...]], src: str, context: str = "",
    origin: dict[str, str] | None = None, theirs: Callable[[str], str] = lambda key: key,
) -> None:
    """Raise one line for the first tensor of ``expected`` (key -> shape) that ``state`` lacks, has
    extra or shapes differently; ``context`` ends each message (e.g. " for <spec>"), ``origin`` and
    ``theirs`` name keys in the file's own layout (see ``check_against_spec``)."""
    origin = origin or {}
    missing = [k for k in expected if k not in state]
    if missing:
        raise CheckpointError(
            f"{src}: missing tensor {theirs(missing[0])!r} (shape {expected[missing[0]]}){context}; "
            f"{len(missing)} missing in all"
        )
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise CheckpointError(
            f"{src}: unexpected tensor {origin.get(unexpected[0], unexpected[0])!r}{context}; "
            f"{len(unexpected)} unexpected in all"
        )
    for key, shape in expected.items():
        found = tuple(state[key].shape)
        if found != shape:
            raise CheckpointError(f"{src}: tensor {origin.get(key, key)!r} has shape {found}, expected {shape}{context}")


# ---- small helpers -------------------------------------------------------------------------------


def _as_float32(state: StateDict) -> StateDict:
    """FP16/BF16 checkpoints load as FP32: every generator here computes in FP32."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _has_prefix(state: StateDict, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in state)


def _numbered(state: StateDict, pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` over the keys (full match)."""
    return sorted({int(m[1]) for k in state if (m := re.fullmatch(pattern, k))})


def _count(state: StateDict, pattern: str) -> int:
    """Number of numbered blocks: highest index + 1 (a gap shows up later as a missing tensor)."""
    found = {int(m[1]) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _need(state: StateDict, key: str, src: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{src}: missing tensor {key!r} (found {_preview(state)})")
    return state[key]


def _preview(state: StateDict, n: int = 5) -> str:
    keys = list(state)
    shown = ", ".join(f"{k} {tuple(state[k].shape)}" for k in keys[:n])
    return f"{len(keys)} tensors: {shown}" + (", ..." if len(keys) > n else "")
