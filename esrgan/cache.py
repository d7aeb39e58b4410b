"""The one folder where esrgan keeps what it can rebuild: exports, compiled models, measured figures.

``$ESRGAN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/esrgan`` (the XDG base-directory convention),
else ``~/.cache/esrgan``. Each user of the cache takes its own subfolder (``onnx``, ``openvino``,
``bench``...). Torch-free: the runtime uses it.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ESRGAN_CACHE_DIR"


def cache_dir() -> Path:
    """The esrgan cache folder (not created here: each user makes its subfolder when it writes)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "esrgan"
