"""Where the model comes from: a checkpoint exported to ONNX on the fly, cached by its sha256.

The cached file's own sha256 is recorded beside it (``<name>.onnx.sha256``): a file changed since it
was written is exported again. Seen: onnx2tf, given the cached file to convert, saved its fixed-shape
version over it, and every later run tiled x4plus into 128 px windows at a third of its speed. A cached
file from a version that wrote no record is exported again, once: nothing else tells it from a file
rewritten in place (onnx2tf keeps the metadata). Where no export can run (the runtime alone), such a
file is used as it is, as that version did.

Exporting needs PyTorch and the export extra; the runtime alone does not have them, so without
them a checkpoint is refused with the one command that exports it once. The export runs once per
checkpoint: it is announced, its steps are stamped with the elapsed time, and the end says where the
cached file is.

The exporters are tried in ``RUNTIME_EXPORTERS`` order, the first whose file passes verification wins.
TorchScript comes first because a user waits for it on a first run: for Real-ESRGAN x4plus its export
step took 5.0 s against 61.4 s with dynamo (Intel Xeon, 2 cores), to a graph of the same size
that starts as fast (``esrgan.export.onnx_export``). Networks it cannot trace faithfully (some spandrel
architectures, e.g. RealCUGAN and DITN, whose traced graphs fail in ONNX Runtime) fail verification
and go to dynamo.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from esrgan.atomic import write_atomic, write_text_atomic
from esrgan.cache import cache_dir, ensure_writable, writing_cache
from esrgan.elapsed import stamp, timed
from esrgan.errors import (
    BackendError,
    DependencyError,
    ModelError,
    UsageError,
    VerificationError,
    first_line,
    install_hint,
)
from esrgan.hashing import file_sha256

RUNTIME_EXPORTERS = ("torchscript", "dynamo")


def export_command(path: Path) -> str:
    return f"esrgan-export --gan {path} -o DIR --no-fp16, then --model DIR/model.onnx"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def cached_export(sha256: str) -> Path:
    """Where the ONNX export of the checkpoint with this sha256 is cached."""
    return cache_dir() / "onnx" / f"{sha256}.onnx"


def _digest_record(target: Path) -> Path:
    return target.with_name(f"{target.name}.sha256")


_NO_RECORD = "has no record of its sha256 (an older version wrote it)"


def _stale(target: Path) -> str | None:
    """Why the cached export cannot be used as it is (see the module docstring); None when it can."""
    try:
        recorded = _digest_record(target).read_text().strip()
    except FileNotFoundError:
        return _NO_RECORD
    except (OSError, UnicodeDecodeError):
        return "has an unreadable record of its sha256"
    return None if recorded == file_sha256(target) else "changed after it was written"


def _can_export() -> bool:
    # Looked up, not imported: importing torch takes seconds, and the export announces itself first.
    # A package that is found but broken fails at its import, where handle_errors names it in one line.
    return all(importlib.util.find_spec(module) is not None for module in ("onnx", "torch"))


def require_export(name: str, elsewhere: str) -> None:
    """Refuse, in one line, a checkpoint that needs exporting where the export extra is missing."""
    if not _can_export():
        raise DependencyError(
            f"{name} is a checkpoint: running it needs an ONNX export, and exporting needs PyTorch "
            f"({install_hint('export')}); or export it once elsewhere: {elsewhere}"
        )


def check_published_runnable(filename: str, sha256: str) -> None:
    """Before a published file is downloaded: can this install run it? (A checkpoint's export may be cached.)"""
    if Path(filename).suffix.lower() in (".onnx", ".engine") or cached_export(sha256).is_file():
        return
    name = Path(filename).stem
    require_export(name, f"esrgan-export --gan {name} -o DIR --no-fp16, then --model DIR/model.onnx")


def _reason(exc: Exception, folder: Path) -> str:
    """One exporter's failure in a few words: a failed verification's figures, else the first line without
    the temporary folder (deleted when the export ends) or esrgan-export's ``--exporter`` hint (the runtime
    tries every exporter itself)."""
    text = exc.failures if isinstance(exc, VerificationError) else first_line(exc, 200)
    text = text.replace(f"{folder}{os.sep}", "").replace(str(folder), "")
    return re.sub(r";\s*(try|use) --exporter\b.*$", "", text)


def checkpoint_to_onnx(path: str | os.PathLike[str], say: Callable[[str], None] = _stderr) -> Path:
    """The FP32 ONNX export of checkpoint ``path``, from the cache or exported now (verified).

    ``say`` gets the status lines of an export (the runtime's notice channel: --quiet drops them).
    """
    src = Path(path)
    if not src.is_file():
        raise ModelError(f"{src}: no such checkpoint")
    target = cached_export(file_sha256(src))
    if target.is_file():
        if (why := _stale(target)) is None or (why == _NO_RECORD and not _can_export()):
            return target
        say(f"the cached export {target} {why}: exporting {src.name} again")
    require_export(src.name, export_command(src))
    ensure_writable(target.parent)  # before seconds of export: a cache it cannot write says so now
    say(f"{src.name} is a checkpoint: exporting it to ONNX and verifying it, once (seconds to a minute), "
        "then cached")
    started = time.perf_counter()
    progress = timed(lambda line: say(f"  {line}"))
    progress("importing PyTorch...")
    from esrgan.export.pipeline import export_artifacts  # imports torch: seconds

    try:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
            reasons: list[str] = []
            for exporter in RUNTIME_EXPORTERS:
                folder = Path(tmp, exporter)
                folder.mkdir()
                try:
                    result = export_artifacts(src, folder, fp16=False, verify=True, exporter=exporter,
                                              progress=progress)
                    break
                except (ModelError, UsageError, VerificationError, BackendError) as exc:
                    last = exporter == RUNTIME_EXPORTERS[-1]
                    if last and isinstance(exc, VerificationError):
                        raise  # worded below: the model's export does not match PyTorch
                    why = _reason(exc, folder)
                    reasons.append(f"{exporter}: {why}")
                    if last:
                        raise ModelError(f"{src}: no exporter could export it ({'; '.join(reasons)})") from None
                    progress(f"the {exporter} exporter's file is not usable ({why}); trying the next exporter")
            # A uniquely named temp file, then one rename: concurrent first runs on the same checkpoint
            # (a Slurm array) each stage their own copy, and the last rename wins with identical bytes.
            with writing_cache(target.parent):
                with write_atomic(target) as staged:
                    shutil.copyfile(result.onnx_fp32, staged)
                write_text_atomic(_digest_record(target), file_sha256(target))
    except VerificationError as exc:
        # The export's folder is temporary and gone by now: the model is at fault, not an input (exit 2).
        raise ModelError(
            f"{src}: its ONNX export does not match PyTorch ({exc.failures}); nothing was cached. To keep "
            f"the files for a look: {export_command(src)}"
        ) from None
    say(f"{stamp(time.perf_counter() - started)} exported {src.name}; cached as {target} "
        "(later runs of this checkpoint start at once)")
    return target

