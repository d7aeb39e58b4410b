"""The model under test: a checkpoint or a preset, exported once and cached.

Exporting the paper-size model (and verifying it) takes longer than a quick benchmark, so the
ONNX files are kept in a cache folder keyed by the checkpoint's sha256: the same weights are
never exported twice, and changed weights can never reuse stale files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esrgan.atomic import write_text_atomic
from esrgan.cache import cache_dir
from esrgan.errors import UsageError
from esrgan.export.options import DEFAULT_EXPORTER
from esrgan.hashing import file_sha256
from esrgan.models.spec import GeneratorSpec, paper_spec

PRESETS = ("paper", "tiny", "default")
CACHE_ENV = "ESRGAN_BENCH_CACHE"
_DONE = "bench-export.json"
Say = Callable[[str], None]


def _silent(line: str) -> None:
    pass


@dataclass
class PreparedModel:
    """Everything a benchmark needs about its model: spec, files per precision, provenance."""

    name: str
    spec: GeneratorSpec
    checkpoint: Path | None
    sha256: str
    files: dict[str, Path] = field(default_factory=dict)  # precision -> ONNX path

    def describe(self) -> dict[str, Any]:

        return {
            "name": self.name, "spec": self.spec.to_dict(), "spec_text": self.spec.describe(),
            "checkpoint": str(self.checkpoint) if self.checkpoint else None, "sha256": self.sha256,
            "macs_per_input_pixel": self.spec.macs_per_pixel(),
            "files": {k: {"path": str(v), "sha256": file_sha256(v)} for k, v in self.files.items()},
        }

    def torch_model(self) -> Any:
        """A fresh eval-mode PyTorch generator (the reference), loaded from the checkpoint."""
        from esrgan.models.checkpoints import load_generator

        if self.checkpoint is None:
            raise UsageError(f"model {self.name!r} has no PyTorch checkpoint: no reference to compare with")
        return load_generator(self.checkpoint)


def cache_root() -> Path:
    """``$ESRGAN_BENCH_CACHE``, else the ``bench`` folder of the esrgan cache (``esrgan.cache``)."""
    return Path(os.environ.get(CACHE_ENV) or cache_dir() / "bench")


def preset_spec(name: str) -> GeneratorSpec:
    if name == "paper":
        return paper_spec(4)
    if name == "tiny":  # for tests and smoke runs: same graph structure, a few thousand parameters
        return GeneratorSpec(arch="rrdbnet", scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    raise UsageError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")


def preset_checkpoint(name: str, root: Path, suffix: str = ".safetensors") -> Path:
    """Random-weight checkpoint for a preset (seeded: the same file every time, on every machine).

    Random weights are fine for speed; parity is still measured on real photographs. ``suffix``
    ".pth" writes it with torch alone, where safetensors is not installed.
    """
    import torch

    from esrgan.models.build import build_generator
    from esrgan.models.checkpoints import save_generator

    dest = root / "presets" / f"{name}_x4_seed0{suffix}"
    if not dest.is_file():
        torch.manual_seed(0)
        save_generator(build_generator(preset_spec(name)).eval(), dest, metadata={"esrgan.preset": name})
    return dest


def _export(checkpoint: Path, out_dir: Path, fp16: bool, exporter: str, say: Say = _silent) -> dict[str, Path]:
    """The export pipeline's FP32 + FP16 ONNX; bench measures parity itself, so no verify."""
    from esrgan.export.pipeline import export_artifacts

    result = export_artifacts(checkpoint, out_dir, fp16=fp16, verify=False, exporter=exporter, progress=say)
    found = {"fp32": result.onnx_fp32, "fp16": result.onnx_fp16, "int8": result.onnx_int8, "engine": result.engine}
    return {k: Path(v) for k, v in found.items() if v is not None}


def prepare_model(
    checkpoint: str | Path | None = None, preset: str | None = None, fp16: bool = True, cache: Path | None = None,
    exporter: str = DEFAULT_EXPORTER, int8: bool = False, progress: Say | None = None,
) -> PreparedModel:
    """Resolve ``--model``/``--preset`` into a checkpoint plus cached ONNX exports.

    ``progress`` gets a line per preparation step: the first run exports (minutes for the
    paper-size model), later ones say that they found the cache.
    """
    say = progress or _silent
    root = cache or cache_root()
    if (checkpoint is None) == (preset is None):
        raise UsageError("give exactly one of --model CKPT or --preset")
    if preset == "default":
        return default_model(root, fp16, exporter, int8, progress=say)
    if preset is not None:
        say(f"{preset} preset: random-weight checkpoint (seeded, made once) in {root / 'presets'}")
        ckpt, name = preset_checkpoint(preset, root), f"{preset}_x4"
    else:
        ckpt = Path(checkpoint)  # type: ignore[arg-type]
        if not ckpt.is_file():
            raise UsageError(f"--model {ckpt}: no such file")
        name = ckpt.stem
    from esrgan.models.checkpoints import describe_checkpoint

    spec = describe_checkpoint(ckpt).spec
    digest = file_sha256(ckpt)
    out_dir = root / "exports" / f"{name}-{digest[:16]}-{exporter}"
    done = out_dir / _DONE
    files: dict[str, Path] = {}
    had_fp16 = False
    if done.is_file():
        record = json.loads(done.read_text())
        files = {k: Path(v) for k, v in record.get("files", {}).items()}
        had_fp16 = bool(record.get("fp16"))
    if not files or not all(p.is_file() for p in files.values()) or (fp16 and not had_fp16):
        say(f"exporting {name} ({spec.describe()}) to ONNX once, cached in {out_dir}")
        out_dir.mkdir(parents=True, exist_ok=True)
        files = _export(ckpt, out_dir, fp16, exporter, lambda line: say(f"  {line}"))
        had_fp16 = fp16
    else:
        say(f"using the cached ONNX export of {name} in {out_dir}")
    if int8 and "int8" not in files:
        say("quantising to INT8 once (calibrating on photographs the parity check never uses)")
        files["int8"] = quantize(files["fp32"], out_dir / "model_int8.onnx", root)
    record = {"files": {k: str(v) for k, v in files.items()}, "fp16": had_fp16}
    write_text_atomic(done, json.dumps(record, indent=1))
    return PreparedModel(name=name, spec=spec, checkpoint=ckpt, sha256=digest, files=files)


# Photographs bundled with scikit-image that the parity inputs (inputs.PHOTOS) do not use: INT8
# calibration must not see the images it is judged on.
CALIBRATION_FILES = ("motorcycle_left.png", "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "coins.png",
                     "clock_motion.png")


def calibration_folder(root: Path) -> Path:
    import shutil

    import skimage.data

    folder = root / "calibration"
    if not folder.is_dir():
        tmp = root / ".calibration.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for name in CALIBRATION_FILES:
            shutil.copy(Path(skimage.data.__file__).parent / name, tmp / name)
        tmp.rename(folder)
    return folder


def quantize(fp32: Path, dest: Path, root: Path) -> Path:
    """The INT8 model through the export API (``esrgan.export.int8``), calibrated on photographs parity never uses."""
    from esrgan.export.int8 import quantize_int8

    return Path(quantize_int8(fp32, calibration_folder(root), dest))


def checkpoint_from_onnx(onnx_path: Path, dest: Path) -> Path:
    """Rebuild a PyTorch checkpoint from an exported model's weights (for the reference row).

    The shipped default model is ONNX only; its initializers keep the PyTorch parameter names, so
    the generator its metadata describes can be refilled from them and compared with the file.
    """
    import torch
    from onnx import numpy_helper

    from esrgan.export.onnx_metadata import load_onnx, props_of
    from esrgan.metadata import parse_metadata
    from esrgan.models.build import build_generator
    from esrgan.models.checkpoints import load_state_into, save_generator

    proto = load_onnx(onnx_path)
    meta = parse_metadata(props_of(proto), str(onnx_path))
    if meta.spec is None:
        raise UsageError(f"{onnx_path}: no generator spec in its metadata; cannot build the PyTorch reference")
    tensors = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in proto.graph.initializer}
    alias = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Identity" and n.input}

    def resolve(name: str) -> torch.Tensor | None:
        while name not in tensors and name in alias:
            name = alias[name]
        return tensors.get(name)

    state = {name: t for name in {*tensors, *alias} if (t := resolve(name)) is not None}
    # Exporters share identical tensors (e.g. the zero biases of a freshly initialised RRDBNet) under one
    # initializer, or drop a zero bias altogether (dynamo); such a conv bias is found through its conv,
    # whose weight keeps the parameter's name.
    for node in proto.graph.node:
        weight = resolve(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if weight is None or not node.input[1].endswith(".weight"):
            continue
        has_bias = len(node.input) > 2 and node.input[2]
        bias = resolve(node.input[2]) if has_bias else torch.zeros(weight.shape[0], dtype=weight.dtype)
        if bias is not None:
            state.setdefault(node.input[1].removesuffix("weight") + "bias", bias)
    model = build_generator(meta.spec)
    own = model.state_dict()
    load_state_into(model, {k: state[k] for k in own if k in state}, str(onnx_path))
    return save_generator(model.eval(), dest)


def default_model(root: Path, fp16: bool = True, exporter: str = DEFAULT_EXPORTER, int8: bool = False,
                  progress: Say = _silent) -> PreparedModel:
    """The model the runtime ships, with a PyTorch reference rebuilt from its weights."""
    from esrgan.runtime.default_model import MODEL_DIR, MODEL_NAME

    onnx_path = MODEL_DIR / MODEL_NAME
    if not onnx_path.is_file():
        raise UsageError(f"--preset default: the default model is not shipped with this installation ({onnx_path})")
    digest = file_sha256(onnx_path)
    ckpt = root / "default" / f"{onnx_path.stem}-{digest[:16]}.safetensors"
    if not ckpt.is_file():
        progress(f"rebuilding a PyTorch checkpoint (the reference) from the shipped {onnx_path.name}")
        checkpoint_from_onnx(onnx_path, ckpt)
    model = prepare_model(ckpt, fp16=fp16, cache=root, exporter=exporter, int8=int8, progress=progress)
    model.name = "default"
    model.files["fp32"] = onnx_path  # benchmark the shipped file itself, not a re-export
    return model
