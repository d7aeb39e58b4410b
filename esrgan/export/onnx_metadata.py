"""Read and write the ``esrgan.*`` metadata_props of ONNX files (key names live in esrgan.metadata).

Kept apart from the exporter because every artefact step (FP32 export, FP16 conversion, INT8
quantisation, verification) adds or rewrites a few keys on a file written by an earlier step.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from esrgan import __version__
from esrgan import metadata as meta
from esrgan.atomic import write_atomic
from esrgan.errors import ModelError, first_line
from esrgan.models.spec import AnySpec


def base_metadata(spec: AnySpec, precision: str) -> dict[str, str]:
    """The keys every artefact carries, known from the model alone."""
    return {
        meta.SPEC: spec.to_json(),
        meta.SCALE: str(spec.scale),
        meta.IN_CHANNELS: str(spec.num_in_ch),
        meta.PRECISION: precision,
        meta.VERSION: __version__,
    }


def props_of(proto: onnx.ModelProto) -> dict[str, str]:
    """metadata_props of a loaded model as a dict."""
    return {p.key: p.value for p in proto.metadata_props}


def set_props(proto: onnx.ModelProto, props: dict[str, str]) -> onnx.ModelProto:
    """Add or replace metadata_props entries in ``proto`` (in place; returned for chaining)."""
    current = props_of(proto)
    current.update({k: str(v) for k, v in props.items()})
    del proto.metadata_props[:]
    for key in sorted(current):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, current[key]
    return proto


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """metadata_props of an ONNX file as a dict (weights are not loaded)."""
    return props_of(load_onnx(path, load_weights=False))


def update_metadata(path: str | os.PathLike[str], props: dict[str, str]) -> Path:
    """Rewrite ``path`` with ``props`` merged into its metadata, atomically."""
    proto = load_onnx(path)
    save_onnx(set_props(proto, props), path)
    return Path(path)


def load_onnx(path: str | os.PathLike[str], load_weights: bool = True) -> onnx.ModelProto:
    src = Path(path)
    if not src.is_file():
        raise ModelError(f"{src}: no such ONNX file")
    try:
        return onnx.load(str(src), load_external_data=load_weights)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelError(f"{src}: not a readable ONNX file ({first_line(exc)})") from None


def save_onnx(proto: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    """Write ``proto`` atomically (temp file + rename)."""
    with write_atomic(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return Path(path)
