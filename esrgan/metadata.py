"""Names of the metadata that export writes into model files and the runtime reads back.

Torch-free: both sides import it, so the keys are defined once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from esrgan.errors import EsrganError, ModelError
from esrgan.models.spec import AnySpec, SizeRequirements, spec_from_json

PREFIX = "esrgan."
SPEC = PREFIX + "spec"  # GeneratorSpec as JSON
SCALE = PREFIX + "scale"  # int
PRECISION = PREFIX + "precision"  # one of PRECISIONS
PRECISIONS = ("fp32", "fp16", "int8")
ALPHA = PREFIX + "alpha"  # network interpolation weight, float as text ("" when not interpolated)
IN_CHANNELS = PREFIX + "in_channels"
SOURCE_SHA256 = PREFIX + "source_sha256"  # JSON object {role: sha256}
EXPORTER = PREFIX + "exporter"
OPSET = PREFIX + "opset"
PARITY = PREFIX + "parity"  # JSON: the verified figures
VERSION = PREFIX + "version"  # esrgan package version that wrote the file

# An FP32 model's INT8 version sits beside it as "<stem>_int8.onnx" (esrgan-export writes model.onnx and
# model_int8.onnx): --backend auto may run it instead when its parity measured on this machine passes
# (esrgan.runtime.cpu_parity).
INT8_SUFFIX = "_int8"


def int8_companion(fp32_path: Path) -> Path:
    """Where the INT8 version of an FP32 model file lives (whether or not it exists)."""
    return fp32_path.with_name(f"{fp32_path.stem}{INT8_SUFFIX}{fp32_path.suffix}")


# ModelProto's metadata_props field; an entry's key and value are its fields 1 and 2 (onnx.proto).
_METADATA_FIELD = 14
_MAX_ENTRY = 16 << 20  # an entry larger than this is not metadata this project reads


def onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """An ONNX file's ``metadata_props``, read from the model's top-level protobuf fields alone.

    The graph (weights included, nearly all of the file) is one field that is skipped by seeking, so
    this reads a few hundred bytes where an ONNX Runtime session reads and checks the whole model (0.17 s
    for Real-ESRGAN x4plus on every start). {} when the file is not an ONNX model that can be read this
    far; whether its graph loads is the backend's question, answered later in its own words."""

    props: dict[str, str] = {}
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size

            def number() -> int:
                value = shift = 0
                while byte := fh.read(1):
                    value |= (byte[0] & 0x7F) << shift
                    if byte[0] < 0x80:
                        return value
                    shift += 7
                    if shift > 63:
                        break
                raise ValueError("not a varint")

            while fh.tell() < size:
                tag = number()
                field, wire = tag >> 3, tag & 7
                if not field:
                    raise ValueError("field 0")
                if wire == 0:
                    number()
                elif wire in (1, 5):
                    fh.seek(8 if wire == 1 else 4, os.SEEK_CUR)
                elif wire == 2:
                    length = number()
                    if fh.tell() + length > size:
                        raise ValueError("a field runs past the end of the file")
                    if field == _METADATA_FIELD and length <= _MAX_ENTRY:
                        props.update([_entry(fh.read(length))])
                    else:
                        fh.seek(length, os.SEEK_CUR)
                else:
                    raise ValueError(f"wire type {wire}")
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return props


def _entry(data: bytes) -> tuple[str, str]:
    """A StringStringEntryProto: (key, value), each '' when absent, as protobuf reads them."""
    from esrgan.hashing import varint

    found = {1: "", 2: ""}
    at = 0
    while at < len(data):
        tag, at = varint(data, at)
        if tag & 7 != 2:
            raise ValueError("not a string entry")
        length, at = varint(data, at)
        if at + length > len(data):
            raise ValueError("an entry runs past its field")
        found[tag >> 3] = data[at:at + length].decode("utf-8")
        at += length
    return found[1], found[2]


INPUT_NAME = "input"
OUTPUT_NAME = "output"


@dataclass(frozen=True)
class ModelMetadata:
    """The parts of a model file's metadata that the runtime needs.

    ``scale`` is None only when the file says nothing about it and the caller allowed that
    (``require_scale=False``): a third-party ONNX model, whose scale the backend then measures.
    """

    scale: int | None
    precision: str
    spec: AnySpec | None
    raw: dict[str, str]

    @property
    def size_multiple(self) -> int:
        """What tile starts and sizes must be multiples of (the spec's pixel-unshuffle factor)."""
        return self.spec.size_multiple if self.spec is not None else 1

    @property
    def size_requirements(self) -> SizeRequirements:
        """The input sizes the network accepts (multiple-of, minimum, square); the tiler pads windows to them."""
        return self.spec.size_requirements if self.spec is not None else SizeRequirements()


def parse_metadata(props: dict[str, str], source: str, *, require_scale: bool = True) -> ModelMetadata:
    """Read scale/precision/spec from a file's key-value metadata, each checked, errors in one line."""
    spec = None
    if SPEC in props:
        try:
            spec = spec_from_json(props[SPEC])
        except EsrganError as exc:
            raise ModelError(f"{source}: metadata {SPEC}: {exc}") from None
    scale: int | None = spec.scale if spec is not None else None
    if SCALE in props:
        try:
            scale = int(props[SCALE])
        except ValueError:
            raise ModelError(f"{source}: metadata {SCALE}={props[SCALE]!r} is not an integer") from None
        if scale < 1:
            raise ModelError(f"{source}: metadata {SCALE}={props[SCALE]!r} is not a positive integer")
        if spec is not None and spec.scale != scale:
            raise ModelError(f"{source}: metadata {SCALE}={scale} contradicts {SPEC} (x{spec.scale})")
    if scale is None and require_scale:
        raise ModelError(f"{source}: no '{SCALE}' in the model's metadata; export it with esrgan-export")
    precision = props.get(PRECISION, "fp32")
    if precision not in PRECISIONS:
        raise ModelError(f"{source}: metadata {PRECISION}={precision!r}; expected one of {', '.join(PRECISIONS)}")
    return ModelMetadata(scale=scale, precision=precision, spec=spec, raw=dict(props))
