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
import json
import os
import re
import stat
import time
from collections.abc import Callable
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


def _memo_file(path: str | os.PathLike[str], st: os.stat_result, kind: str) -> Path:
    key = f"{os.path.realpath(path)}|{'|'.join(map(str, _stamp(st)))}"
    return cache_dir() / kind / hashlib.sha256(key.encode()).hexdigest()[:32]


def _remembered(path: str | os.PathLike[str], kind: str, compute: Callable[[], str],
                valid: Callable[[str], bool]) -> str:
    """``compute()``, a text read from ``path``, remembered in the cache's ``kind`` folder for a large
    file that has settled (see the module docstring); a remembered text that is not ``valid`` is
    computed again."""
    before = os.stat(path)
    if before.st_size < MEMO_MIN_BYTES:
        return compute()
    memo = _memo_file(path, before, kind)
    try:
        known = memo.read_text()
        if valid(known):
            return known
    except (OSError, UnicodeDecodeError):
        pass
    value = compute()
    settled = time.time() - max(before.st_mtime, before.st_ctime) > SETTLE_SECONDS
    if settled and _stamp(os.stat(path)) == _stamp(before):  # not changed while it was read
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(memo, value)
        except OSError:  # a read-only cache: computed every time
            pass
    return value


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed (checkpoints can be hundreds of MB); remembered for large files
    that have settled (see the module docstring)."""
    return _remembered(path, "sha256", lambda: _digest(path), lambda text: bool(_HEX64.fullmatch(text)))


# How an ONNX file names a file holding one of its tensors: a TensorProto.external_data entry
# {key: "location", value: <path>}, which protobuf writes as field 1 (the key) then field 2 (the value),
# the entry itself being field 13 of its TensorProto (tag byte 0x6A) with its length before it. The
# model's own metadata_props use the same entry type under another field (tag 0x72): a metadata key
# "location" is no data file.
_LOCATION = b"\n\x08location\x12"
_EXTERNAL_DATA_TAG = 0x6A
_SCAN_VERSION = 2  # part of a remembered scan: entries from an older scan are scanned again
_CHUNK, _OVERLAP = 16 << 20, 1 << 16  # read in chunks (a file cut short while mapped would kill the process)


def external_data_files(path: str | os.PathLike[str]) -> list[str]:
    """The files an ONNX model keeps tensors in (paths relative to its folder), each once, in the order
    first named. Found by the entries' bytes, not by parsing the model: the runtime has no onnx package,
    and a scan costs a read (0.03 s for Real-ESRGAN x4plus's 67 MB from the page cache; remembered like
    a digest, as a start asks three times). A match needs the entry's key, its field tag and its exact
    length, so raw weights would have to hold all of them by chance."""
    text = _remembered(path, "onnx-external", lambda: json.dumps({"scan": _SCAN_VERSION, "files": _scan_locations(path)}),
                       _current_scan)
    return json.loads(text)["files"]


def _current_scan(text: str) -> bool:
    try:
        found = json.loads(text)
        return isinstance(found, dict) and found.get("scan") == _SCAN_VERSION and isinstance(found.get("files"), list)
    except ValueError:
        return False


def varint(data: bytes, at: int) -> tuple[int, int]:
    """A protobuf varint at ``at``: (value, the index after it); at most 5 bytes (values below 2**35)."""
    value, shift = 0, 0
    while at < len(data) and shift < 35:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            break
    return value, at


def _entry_name(data: bytes, at: int) -> str | None:
    """The location named by the entry whose key starts at ``at``, if it is a tensor's external_data
    entry: tagged as one, with the length of exactly this key and value before it."""
    length, start = varint(data, at + len(_LOCATION))
    if not length or start + length > len(data):
        return None
    entry = start + length - at
    for width in (1, 2, 3):  # the entry's own length, a varint of 1-3 bytes
        tag = at - width - 1
        if tag >= 0 and data[tag] == _EXTERNAL_DATA_TAG and varint(data, tag + 1) == (entry, at):
            return data[start:start + length].decode("utf-8", "surrogateescape")
    return None


def _scan_locations(path: str | os.PathLike[str]) -> list[str]:
    names: list[str] = []
    with open(path, "rb") as fh:
        buf, start = b"", 0  # matches at or after ``start`` in ``buf`` are not yet seen
        while True:
            chunk = fh.read(_CHUNK)
            buf += chunk
            end = len(buf) - _OVERLAP if chunk else len(buf)  # a match before ``end`` has its value in ``buf``
            at = buf.find(_LOCATION, start)
            while 0 <= at < end:
                name = _entry_name(buf, at)
                if name and name not in names:
                    names.append(name)
                at = buf.find(_LOCATION, at + 1)
            if not chunk:
                return names
            keep = max(end - 4, 0)  # a match's tag and length lie up to 4 bytes before it
            buf, start = buf[keep:], max(end, 0) - keep


def model_sha256(path: str | os.PathLike[str]) -> str:
    """The digest that names a model wherever it is keyed (measured figures, ncnn files, an output
    folder's record, a TensorRT engine's sidecar): the file's own sha256, or, for an ONNX file that keeps
    tensors in other files (``torch.onnx.export`` writes ``model.onnx.data`` by default), a digest over
    it and each of those, so that new weights under an unchanged graph file are a new model. A named file
    that is missing or not a regular file (a device would never end) enters by its name and state; the
    engine that loads the model reports it."""
    own = file_sha256(path)
    if Path(path).suffix.lower() != ".onnx":
        return own
    names = external_data_files(path)
    if not names:
        return own
    parts = [own]
    for name in names:
        target = Path(path).parent / name
        state = _file_state(target)
        parts.append(f"{name}={file_sha256(target) if state is None else state}")
    return hashlib.sha256("|".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def _file_state(path: Path) -> str | None:
    """None for a regular file, else what it is instead: "missing" or "not a regular file"."""
    try:
        return None if stat.S_ISREG(os.stat(path).st_mode) else "not a regular file"
    except OSError:
        return "missing"


def missing_external_data(path: str | os.PathLike[str]) -> str | None:
    """For an ONNX model whose external-data file is missing or not a regular file: which, and what it
    is instead (the engines' own messages take several lines of their internals to say so)."""
    for name in external_data_files(path):
        state = _file_state(Path(path).parent / name)
        if state is not None:
            return f"{name}, which is {state}"
    return None


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
