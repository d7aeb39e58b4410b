"""Atomic file writes: a temp file in the destination folder, synced, then one rename.

A killed process leaves either the old file or the new one, never half of one; the file's data is
flushed to disk before the rename and the folder after it, so this holds across a power loss too
(as far as the disk honours flushes). Temp files are named ``.<name>.<random>.tmp`` so that readers
and reruns can recognise and ignore them. On POSIX systems the writer holds a lock on its temp file
until it is renamed or removed, so ``remove_if_stale`` deletes only what a dead process left behind,
never the temp file of another run writing the same folder.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, see remove_if_stale
    fcntl = None  # type: ignore[assignment]

TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; some file systems cannot sync a folder: ignored)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_durably(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Sync a finished file written elsewhere (a download's .part) and rename it onto ``dest``:
    a crash right after must leave the whole file or none, never a named but empty one."""
    with open(src, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(src, dest)
    _fsync_folder(Path(dest).parent)


@contextlib.contextmanager
def write_atomic(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; sync it and rename it onto ``path`` if the block succeeds.

    The caller writes the temp path with whatever library it likes (Pillow, safetensors, torch.save);
    those truncate and rewrite the file mkstemp made, so the descriptor kept here syncs their data.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=TMP_SUFFIX, dir=dest.parent)
    tmp = Path(tmp_name)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)  # "in use", until the descriptor is closed below
    else:
        os.close(fd)  # Windows cannot rename a file that is still open
        fd = -1
    try:
        yield tmp
        # mkstemp creates 0600 files; finished files get the usual mode.
        os.chmod(tmp, 0o666 & ~_umask())
        if fd >= 0:
            os.fsync(fd)
        else:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
        _fsync_folder(dest.parent)
    finally:
        tmp.unlink(missing_ok=True)
        if fd >= 0:
            os.close(fd)


def remove_if_stale(path: str | os.PathLike[str]) -> bool:
    """Delete a temp file no live writer holds; False when it is in use (or when that cannot be told).

    POSIX: the writer's lock is released when its process dies, so a lock we can take marks a stale
    file. Windows: a file another process has open cannot be deleted, which protects it the same way
    while it is being written.
    """
    target = Path(path)
    if fcntl is None:
        try:
            target.unlink()
            return True
        except OSError:
            return False
    try:
        fd = os.open(target, os.O_RDWR)  # NFS emulates flock with write locks: needs write access
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Still the same file: its writer may have renamed it into place between our open and lock.
        if os.fstat(fd).st_ino != os.stat(target).st_ino:
            return False
        target.unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def temp_target(name: str) -> str | None:
    """The file name a temp file named ``name`` was going to become, or None if it is no temp file."""
    if not is_temp_file(name):
        return None
    stem = name[1 : -len(TMP_SUFFIX)]
    return stem.rsplit(".", 1)[0] if "." in stem else None


def create_text_atomic(path: str | os.PathLike[str], text: str) -> bool:
    """Write ``path`` only if no file has that name, all at once; False (nothing written) if one has.

    Processes racing to create the same file see either no file or a complete one: the text goes to
    a synced temp file (locked like ``write_atomic``'s) that is then hard-linked to the name, which
    fails when the name is taken. On file systems without hard links it is renamed instead if the
    name is still free (there the last of two racing writers wins).
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=TMP_SUFFIX, dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # "in use": remove_if_stale leaves it alone
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.link(tmp, dest)
        except FileExistsError:
            return False
        except OSError:
            if dest.exists():
                return False
            os.replace(tmp, dest)
        _fsync_folder(dest.parent)
        return True
    finally:
        os.close(fd)  # first: Windows cannot delete an open file
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with write_atomic(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def is_temp_file(path: str | os.PathLike[str]) -> bool:
    name = Path(path).name
    return name.startswith(".") and name.endswith(TMP_SUFFIX)
