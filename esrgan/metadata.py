"""Names of the metadata that export writes into model files and the runtime reads back.

Torch-free: both sides import it, so the keys are defined once.
"""

from __future__ import annotations

from dataclasses import dataclass

from esrgan.errors import ModelError
from esrgan.models.spec import GeneratorSpec

PREFIX = "esrgan."
SPEC = PREFIX + "spec"  # GeneratorSpec as JSON
SCALE = PREFIX + "scale"  # int
PRECISION = PREFIX + "precision"  # fp32 | fp16 | int8
ALPHA = PREFIX + "alpha"  # network interpolation weight, float as text ("" when not interpolated)
IN_CHANNELS = PREFIX + "in_channels"
SOURCE_SHA256 = PREFIX + "source_sha256"  # JSON object {role: sha256}
EXPORTER = PREFIX + "exporter"
OPSET = PREFIX + "opset"
PARITY = PREFIX + "parity"  # JSON: the verified figures
VERSION = PREFIX + "version"  # esrgan package version that wrote the file

INPUT_NAME = "input"
OUTPUT_NAME = "output"


@dataclass(frozen=True)
class ModelMetadata:
    """The parts of a model file's metadata that the runtime needs."""

    scale: int
    precision: str
    spec: GeneratorSpec | None
    raw: dict[str, str]


def parse_metadata(props: dict[str, str], source: str) -> ModelMetadata:
    """Read scale/precision/spec from a file's key-value metadata; the scale is required."""
    spec = GeneratorSpec.from_json(props[SPEC]) if SPEC in props else None
    if SCALE in props:
        try:
            scale = int(props[SCALE])
        except ValueError:
            raise ModelError(f"{source}: metadata {SCALE}={props[SCALE]!r} is not an integer") from None
    elif spec is not None:
        scale = spec.scale
    else:
        raise ModelError(
            f"{source}: no '{SCALE}' in the model's metadata; export it with esrgan-export "
            "or pass the scale explicitly"
        )
    return ModelMetadata(scale=scale, precision=props.get(PRECISION, "fp32"), spec=spec, raw=dict(props))
