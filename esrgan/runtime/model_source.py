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
from esrgan.cache import cache_dir
from esrgan.errors import DependencyError, ModelError
from esrgan.hashing import file_sha256


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
    try:  # the export extra's packages that the export pipeline imports
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise DependencyError(
            f"{src.name} is a checkpoint: running it needs an ONNX export, and exporting needs PyTorch "
            f"(pip install 'esrgan[export]'); or export it once elsewhere: {export_command(src)}"
        ) from None
    from esrgan.export.pipeline import export_artifacts

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        result = export_artifacts(src, Path(tmp), fp16=False, verify=True)
        # A uniquely named temp file, then one rename: concurrent first runs on the same checkpoint
        # (a Slurm array) each stage their own copy, and the last rename wins with identical bytes.
        with write_atomic(target) as staged:
            shutil.copyfile(result.onnx_fp32, staged)
    return target

