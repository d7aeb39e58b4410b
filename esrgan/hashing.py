"""sha256 of files: how exports record their sources, caches key models and engines name their ONNX.

Large files' digests are remembered in the cache (``sha256`` folder), keyed by everything ``stat``
says changes when a file's bytes do (device, inode, size, modification and status-change times in
nanoseconds): a start of ``esrgan-run`` hashes the model files three times (export cache, measured
figures, the output folder's record), 0.2 s for Real-ESRGAN x4plus's 67 MB on 2 cores, more from a slow
disk. As git does with its index, a file changed in the last ``SETTLE_SECONDS`` is not remembered: a
filesystem with coarse timestamps could see a second write in the same tick with the same stat.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

from esrgan.atomic import write_text_atomic
from esrgan.cache import cache_dir

# Files smaller than this are hashed every time: fast, and not worth a cache entry.
MEMO_MIN_BYTES = 8 << 20
SETTLE_SECONDS = 2.0
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _digest(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _memo_file(path: str | os.PathLike[str], st: os.stat_result) -> Path:
    key = f"{os.path.realpath(path)}|{'|'.join(map(str, _stamp(st)))}"
    return cache_dir() / "sha256" / hashlib.sha256(key.encode()).hexdigest()[:32]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed (checkpoints can be hundreds of MB); remembered for large files
    that have settled (see the module docstring)."""
    before = os.stat(path)
    if before.st_size < MEMO_MIN_BYTES:
        return _digest(path)
    memo = _memo_file(path, before)
    try:
        known = memo.read_text().strip()
        if _HEX64.fullmatch(known):
            return known
    except OSError:
        pass
    digest = _digest(path)
    settled = time.time() - max(before.st_mtime, before.st_ctime) > SETTLE_SECONDS
    if settled and _stamp(os.stat(path)) == _stamp(before):  # not changed while it was read
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(memo, digest)
        except OSError:  # a read-only cache: hash every time
            pass
    return digest


def code_digest(*modules: object, extra: str = "") -> str:
    """A short digest of modules' source (and ``extra``): part of a cache key whose entries that code
    computed, so that a fix to it (a graph cut, a file writer) reaches entries made before, without a
    version number someone must remember to raise. The source is read through each module's loader,
    so a package imported from a zip file works too."""
    digest = hashlib.sha256(extra.encode())
    for module in modules:
        loader, source = getattr(module, "__loader__", None), module.__file__  # type: ignore[attr-defined]
        digest.update(loader.get_data(source) if hasattr(loader, "get_data") else Path(source).read_bytes())
    return digest.hexdigest()[:16]
