"""The one folder where esrgan keeps what it can rebuild: exports, compiled models, measured figures.

``$ESRGAN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/esrgan`` (the XDG base-directory convention),
else ``~/.cache/esrgan``. Each user of the cache takes its own subfolder (``onnx``, ``openvino``,
``bench``...). Torch-free: the runtime uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from esrgan.atomic import write_text_atomic
from esrgan.errors import CacheError

CACHE_ENV = "ESRGAN_CACHE_DIR"


def cache_dir() -> Path:
    """The esrgan cache folder (not created here: each user makes its subfolder when it writes).

    ``~`` is expanded and a relative value made absolute: a value from a systemd or docker environment
    file reaches the process unexpanded, and a relative one would put a cache into every working folder.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.path.abspath(os.path.expanduser(os.environ[CACHE_ENV])))
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "esrgan"


@contextlib.contextmanager
def writing_cache(folder: Path) -> Iterator[None]:
    """Around writes under ``folder`` in the cache: an OSError there (a read-only home, a cache path
    that names a file, a full disk) ends as one CacheError line that names the folder and the fix.
    Callers that can do without the cache (a compiled-model cache, measured figures) catch it and go on.
    """
    try:
        yield
    except OSError as exc:
        raise CacheError(f"cannot write into the esrgan cache at {folder} ({exc.strerror or exc}): "
                         f"set {CACHE_ENV} to a writable folder") from None


def ensure_writable(folder: Path) -> Path:
    """``folder`` in the cache, created, and known to take files: before seconds of work whose result
    it must hold (an export, a download, measured figures), a CacheError line now rather than after."""
    with writing_cache(folder):
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    return folder


def cache_problem(folder: Path) -> str | None:
    """Why ``folder`` in the cache cannot take files (one line), or None when it can."""
    try:
        ensure_writable(folder)
    except CacheError as exc:
        return str(exc)
    return None


def read_record(path: Path) -> dict | None:
    """A measured-figures record (JSON) from the cache; None when absent or damaged (measured again)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def keep_record(path: Path, record: dict, say: Callable[[str], None] | None = None) -> None:
    """Write a measured-figures record atomically; a cache that cannot be written costs only the
    measurement at the next start, and ``say`` tells the user so."""
    try:
        with writing_cache(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(record, indent=1))
    except CacheError as exc:
        if say is not None:
            say(f"{exc}; the figures are not kept")
