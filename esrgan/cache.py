"""The one folder where esrgan keeps what it can rebuild: exports, compiled models, measured figures.

``$ESRGAN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/esrgan`` (the XDG base-directory convention),
else ``~/.cache/esrgan``. Each user of the cache takes its own subfolder (``onnx``, ``openvino``,
``bench``...). Torch-free: the runtime uses it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from esrgan.errors import CacheError

CACHE_ENV = "ESRGAN_CACHE_DIR"


def cache_dir() -> Path:
    """The esrgan cache folder (not created here: each user makes its subfolder when it writes)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
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
