"""Load, save and describe generator checkpoints.

Checkpoints are untrusted files: safetensors are read as plain tensors and ``.pth`` files with
``torch.load(weights_only=True)``, so a pickle that tries to run code is refused before it runs.
Our own files are safetensors with the ``GeneratorSpec`` as metadata, so any model we write can
be rebuilt from the file alone.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from esrgan.atomic import write_atomic
from esrgan.errors import CheckpointError, first_line
from esrgan.metadata import SPEC
from esrgan.models.build import build_generator, count_parameters, spec_of
from esrgan.models.spec import AnySpec, ForeignSpec, spec_from_dict, spec_from_json

FORMAT_KEY = "esrgan.format_version"
FORMAT_VERSION = "1"
# What reading had to do to reach the tensors ("; "-separated); describe_checkpoint shows it.
NOTES_KEY = "esrgan.read_notes"
# Wrappers that training frameworks put around a generator's state dict, in order of preference:
# BasicSR / Real-ESRGAN save the EMA weights as params_ema (the ones their releases are meant to use).
WRAPPERS = ("params_ema", "params", "state_dict", "model", "generator")
ZIP_MAGIC = b"PK\x03\x04"
# Tags of the ModelProto fields that follow ir_version in an ONNX file (fields 2-8, wire types 0/2).
_ONNX_SECOND_FIELD = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42})
_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP")

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``describe_checkpoint`` finds in a file."""

    path: str
    format: str
    spec: AnySpec
    num_params: int
    macs_per_pixel: float
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        from esrgan.models.formats import FORMAT_TITLES

        title = FORMAT_TITLES.get(self.format)
        lines = [
            f"{self.path}: format {self.format}" + (f" ({title})" if title else ""),
            f"  spec: {self.spec.describe()}",
            f"  parameters: {self.num_params:,}",
            f"  MAC per input pixel: {self.macs_per_pixel / 1e6:.2f} M" if self.macs_per_pixel == self.macs_per_pixel
            else "  MAC per input pixel: n/a",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def save_generator(model: nn.Module, path: str | os.PathLike[str], metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` as safetensors (or ``.pth``) with its spec, atomically."""
    spec = spec_of(model)
    dest = Path(path)
    # Integer buffers (a transformer's relative-position index) keep their dtype.
    state = {
        k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
        for k, v in model.state_dict().items()
    }
    meta = {SPEC: spec.to_json(), FORMAT_KEY: FORMAT_VERSION, **(metadata or {})}
    with write_atomic(dest) as tmp:
        if dest.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata=meta)
        else:
            torch.save({"spec": spec.to_dict(), "state_dict": state, "metadata": meta}, tmp)
    return dest


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, str]]:
    """Tensors and string metadata of a checkpoint file, read without running any code from it."""
    src = Path(path)
    if not src.exists():
        raise CheckpointError(f"{src}: no such file")
    if src.is_dir():
        raise CheckpointError(f"{src}: is a folder, expected a checkpoint file")
    if src.stat().st_size == 0:
        raise CheckpointError(f"{src}: empty file")
    other = _other_kind_of_file(src)
    if other:
        raise CheckpointError(f"{src}: {other}")
    state, meta = _read_safetensors(src) if _looks_like_safetensors(src) else _read_torch(src)
    state, prefix_note = _strip_prefix(state)
    notes = [n for n in (meta.get(NOTES_KEY, ""), prefix_note) if n]
    if notes:
        meta[NOTES_KEY] = "; ".join(notes)
    return state, meta


def _other_kind_of_file(src: Path) -> str | None:
    """What a file that is no checkpoint at all is, told by its first bytes, else None.

    An ONNX model or an image handed over as a checkpoint would otherwise reach the unpickler
    and be reported as a damaged checkpoint, which sends the user looking for the wrong problem.
    """
    with open(src, "rb") as f:
        head = f.read(9)
    if head[8:9] == b"{":  # a safetensors header (its u64 length may begin like an ONNX file)
        return None
    # An ONNX file is a protobuf ModelProto: field 1 (ir_version, a small varint) comes first, then
    # another ModelProto field (producer_name, ..., graph, opset_import), whatever the file name.
    if len(head) >= 3 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] in _ONNX_SECOND_FIELD:
        return "this is an ONNX model, not a checkpoint: pass it to esrgan-run --model directly"
    if head.startswith(ZIP_MAGIC) or head[:1] == b"\x80":  # torch's zip archive or a legacy pickle
        return None
    try:  # Pillow only tells; a checkpoint reader without it just skips this check
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        return None
    try:
        # Only formats with a real signature: weaker ones could claim random bytes.
        with Image.open(src, formats=_IMAGE_FORMATS) as image:
            return f"this is a {image.format} image, not a checkpoint"
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _looks_like_safetensors(src: Path) -> bool:
    """Decide by content, not by file name: safetensors start with a u64 header length and '{'."""
    with open(src, "rb") as f:
        head = f.read(9)
    if head.startswith(ZIP_MAGIC):  # torch's zip archive
        return False
    return (len(head) == 9 and head[8:9] == b"{") or src.suffix == ".safetensors"


def _read_safetensors(src: Path) -> tuple[StateDict, dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(src), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise CheckpointError(f"{src}: not a readable safetensors file ({first_line(exc)})") from None
    return state, meta


def _read_torch(src: Path) -> tuple[StateDict, dict[str, str]]:
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{src}: {torch_load_problem(src, exc)}") from None
    return _unwrap(obj, src)


def torch_load_problem(src: Path, exc: BaseException, kind: str = "PyTorch checkpoint") -> str:
    """What a failed ``torch.load(weights_only=True)`` of a ``kind`` file means, for a user, in one line.

    The one reading of torch.load's failures, for generator checkpoints and training states alike.
    Only a blocked GLOBAL is pickled code; a zip archive (what torch.save writes) that cannot be read
    is truncated or damaged; anything else failed to unpickle: random bytes or another kind of file.
    torch's own text is not shown: it suggests weights_only=False, which would run the file's code.
    """
    text = str(exc)
    culprit = re.search(r"GLOBAL ([\w.]+)", text)
    if culprit or "Unsupported global" in text:
        return (
            "refused: the file contains pickled code or objects, not just tensors "
            f"(loaded with weights_only=True for safety{'; blocked: ' + culprit[1] if culprit else ''})"
        )
    with open(src, "rb") as f:
        zipped = f.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    if zipped or isinstance(exc, EOFError) or "central directory" in text or "unexpected EOF" in text:
        # The reader's own error (often "OSError: [Errno 22] Invalid argument") says nothing useful.
        return f"truncated or damaged {kind}: the file ends early or is corrupt; copy or download it again"
    reason = f"{type(exc).__name__}: {first_line(exc)}"
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1]
        reason = next((line.strip() for line in detail.splitlines() if line.strip()), reason)
    elif "Weights only load failed" in text:
        reason = type(exc).__name__
    return f"not a {kind}, or a damaged one (unpickling failed: {first_line(reason, limit=120)})"


def _unwrap(obj: object, src: Path) -> tuple[StateDict, dict[str, str]]:
    meta: dict[str, str] = {}
    if isinstance(obj, dict) and isinstance(obj.get("spec"), dict) and isinstance(obj.get("state_dict"), dict):
        try:
            meta = {SPEC: spec_from_dict(obj["spec"]).to_json()}
        except CheckpointError as exc:
            raise CheckpointError(f"{src}: 'spec' entry: {exc}") from None
        obj = obj["state_dict"]
    elif isinstance(obj, dict):
        nested = [k for k in WRAPPERS if isinstance(obj.get(k), dict)]
        if nested:
            others = nested[1:]
            meta[NOTES_KEY] = f"weights from '{nested[0]}'" + (f" (also present: {', '.join(others)})" if others else "")
            obj = obj[nested[0]]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{src}: expected a dict of tensors, found {type(obj).__name__}")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state and _is_training_state(obj):
        from esrgan.train.state import weights_path

        weights = weights_path(src.parent, str(obj["stage"]))
        where = "" if weights.exists() else " (written there when the stage finishes)"
        raise CheckpointError(
            f"{src}: a training state (for esrgan-train --resume), not a generator checkpoint: "
            f"use {weights}{where}"
        )
    if not state:
        raise CheckpointError(f"{src}: contains no tensors (top-level keys: {_preview(obj.keys())})")
    return state, meta


def _is_training_state(obj: dict) -> bool:
    """esrgan-train's state_<stage>.pt: the generator, its optimiser and the stage that wrote them."""
    return isinstance(obj.get("stage"), str) and "opt_g" in obj


def _strip_prefix(state: StateDict) -> tuple[StateDict, str]:
    """Drop DataParallel's ``module.`` prefix when every key has it."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}, "DataParallel 'module.' prefix removed"
    return state, ""


def _preview(keys: object, n: int = 6) -> str:
    items = [str(k) for k in list(keys)[:n]]  # type: ignore[call-overload]
    return ", ".join(items) + (", ..." if len(list(keys)) > n else "")  # type: ignore[arg-type]


def load_state_into(model: nn.Module, state: StateDict, src: str) -> nn.Module:
    """Copy ``state`` into ``model``, naming the first missing/unexpected key or shape mismatch."""
    from esrgan.models.formats import check_state_shapes

    check_state_shapes(state, {k: tuple(v.shape) for k, v in model.state_dict().items()}, src)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model


def load_generator(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """An eval-mode generator from any supported checkpoint format."""
    state, meta = read_checkpoint(path)
    return _load(state, meta, str(path)).eval().to(device)


def _load(state: StateDict, meta: dict[str, str], src: str, finite: bool = True) -> nn.Module:
    """The ESRGAN family on the project's own loader; what it does not recognise, through spandrel.

    A file whose spec metadata names a spandrel architecture (one this project exported) goes
    straight to spandrel, which rebuilds it from the keys. ``finite``: refuse NaN/inf weights
    (anything that will compute with them); describing a file passes False.
    """
    from esrgan.models.foreign import load_foreign
    from esrgan.models.formats import UnknownLayoutError, check_finite, convert_state_dict

    claimed = _foreign_claim(meta)
    if claimed is not None:
        if finite:
            check_finite(state, src)
        model = load_foreign(state, src)
        if spec_of(model) != claimed:
            raise CheckpointError(f"{src}: metadata {SPEC} says {claimed.describe()}, the tensors are "
                                  f"{spec_of(model).describe()}")
        return model
    try:
        fmt, spec, converted = convert_state_dict(state, meta, src, finite=finite)
    except UnknownLayoutError as exc:
        if finite:
            check_finite(state, src)
        return load_foreign(state, src, exc)
    model = load_state_into(build_generator(spec), converted, src)
    model.format = fmt  # type: ignore[assignment]
    return model


def _foreign_claim(meta: dict[str, str]) -> ForeignSpec | None:
    """The spandrel spec in a file's metadata (one this project exported), else None (a broken spec
    is reported by ``convert_state_dict``)."""
    try:
        claimed = spec_from_json(meta[SPEC]) if SPEC in meta else None
    except CheckpointError:
        return None
    return claimed if isinstance(claimed, ForeignSpec) else None


def describe_checkpoint(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Detected format, spec, parameter count and cost of a checkpoint.

    Describing is not inference: weights holding NaN/inf are described, with a note saying so.
    """
    from esrgan.models.formats import nonfinite_tensors

    state, meta = read_checkpoint(path)
    model = _load(state, meta, str(path), finite=False)
    fmt, spec = model.format, spec_of(model)
    notes = [n for n in meta.get(NOTES_KEY, "").split("; ") if n]
    if bad := nonfinite_tensors(model.state_dict()):
        notes.append(
            f"{len(bad)} tensor(s) hold NaN or infinite values (first: {bad[0]}): unusable for inference"
        )
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in state.values() if v.is_floating_point()})
    if dtypes != ["float32"]:
        notes.append(f"stored as {'/'.join(dtypes)}, loaded as float32")
    return CheckpointInfo(
        path=str(path), format=fmt, spec=spec, num_params=count_parameters(model),
        macs_per_pixel=spec.macs_per_pixel(), notes=tuple(notes),
    )
