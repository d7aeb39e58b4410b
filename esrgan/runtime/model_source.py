"""Where the model comes from: a checkpoint exported to ONNX on the fly, cached by its sha256.

Exporting needs PyTorch and the export extra; the runtime alone does not have them, so without
them a checkpoint is refused with the one command that exports it once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from esrgan.atomic import write_atomic
from esrgan.errors import DependencyError, ModelError
from esrgan.hashing import file_sha256


def cache_dir() -> Path:
    """``$ESRGAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/esrgan``, else ``~/.cache/esrgan``."""
    if os.environ.get("ESRGAN_CACHE_DIR"):
        return Path(os.environ["ESRGAN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "esrgan"




def export_command(path: Path) -> str:
    return f"esrgan-export --gan {path} -o DIR --no-fp16, then --model DIR/model.onnx"


def checkpoint_to_onnx(path: str | os.PathLike[str]) -> Path:
    """The FP32 ONNX export of checkpoint ``path``, from the cache or exported now (verified)."""
    src = Path(path)
    if not src.is_file():
        raise ModelError(f"{src}: no such checkpoint")
    target = cache_dir() / "onnx" / f"{file_sha256(src)}.onnx"
    if target.is_file():
        return target
    try:
        import torch  # noqa: F401

        from esrgan.export.pipeline import export_artifacts
    except ImportError:
        raise DependencyError(
            f"{src.name} is a checkpoint: running it needs an ONNX export, and exporting needs PyTorch "
            f"(pip install 'esrgan[export]'); or export it once elsewhere: {export_command(src)}"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        result = export_artifacts(src, Path(tmp), fp16=False, verify=True)
        onnx = _fp32_onnx(result, Path(tmp))
        # A uniquely named temp file, then one rename: concurrent first runs on the same checkpoint
        # (a Slurm array) each stage their own copy, and the last rename wins with identical bytes.
        with write_atomic(target) as staged:
            shutil.copyfile(onnx, staged)
    return target


def _fp32_onnx(result: object, folder: Path) -> Path:
    """The FP32 ONNX file of an export: the result's attribute, else the only plain .onnx written."""
    for attr in ("fp32_onnx", "onnx_fp32", "onnx_path", "fp32"):
        value = getattr(result, attr, None)
        if value and Path(value).suffix == ".onnx":
            return Path(value)
    found = [p for p in folder.rglob("*.onnx") if not any(t in p.name.lower() for t in ("fp16", "int8"))]
    if len(found) != 1:
        raise ModelError(f"the export of the checkpoint wrote {len(found)} FP32 ONNX files, expected 1")
    return found[0]
