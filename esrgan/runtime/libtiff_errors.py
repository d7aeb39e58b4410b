"""libtiff's error messages, kept with the file being decoded instead of printed.

Why: Pillow decodes compressed TIFFs with libtiff, whose default error handler prints straight to the
process's stderr. A damaged TIFF then wrote a raw line such as ``ZIPDecode: Decoding error at scanline
0, incorrect data check.`` through the progress bar, apart from the runtime's own line naming the file.
Redirecting file descriptor 2 is no answer while decoding threads and the progress bar run. libtiff's
documented ``TIFFSetErrorHandler`` replaces the handler for the whole process; it is reached through
ctypes because no library wraps it. The handler keeps each thread's messages, so the failure line of a
file says what libtiff found (``cannot decode (decoder error -2; libtiff: ZIPDecode: ...)``).

Pillow silences libtiff's warnings itself. With ``--debug`` / ``ESRGAN_DEBUG`` libtiff prints as
before. Where libtiff is not reachable (a Pillow that links it statically without exporting it, as on
Windows), nothing changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Iterator
from typing import Any

from esrgan.native_output import debugging

#: libtiff's ``TIFFErrorHandler``: ``void (*)(const char *module, const char *fmt, va_list ap)``. A
#: va_list reaches a C function as a pointer on the common ABIs (an array on x86-64 System V, passed by
#: reference on AArch64, a ``char *`` on Apple arm64 and Windows), so it is handed on as one.
_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
_MESSAGE_BYTES = 512

_local = threading.local()
_lock = threading.Lock()
_state: dict[str, Any] = {}  # "handler": the installed callback (kept alive), or None when not possible


def _vsnprintf() -> Any | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        fn = libc.vsnprintf
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p)
    fn.restype = ctypes.c_int
    return fn


def _install() -> bool:
    """Install the handler once per process; False where libtiff or the C library is not reachable."""
    with _lock:
        if "handler" in _state:
            return _state["handler"] is not None
        _state["handler"] = None
        try:
            from PIL import _imaging

            # dlsym on Pillow's extension also searches the libraries it links, libtiff among them
            set_handler = ctypes.CDLL(_imaging.__file__).TIFFSetErrorHandler
        except (ImportError, OSError, AttributeError):
            return False
        vsnprintf = _vsnprintf()
        if vsnprintf is None:
            return False

        def handler(module: bytes | None, fmt: bytes | None, ap: int | None) -> None:
            if fmt is None:
                return
            buf = ctypes.create_string_buffer(_MESSAGE_BYTES)
            vsnprintf(buf, _MESSAGE_BYTES, fmt, ap)
            text = buf.value.decode("utf-8", "replace").strip().rstrip(".")
            name = module.decode("utf-8", "replace") if module else ""
            # libtiff names the codec (ZIPDecode) or, for some messages, the file: Pillow's internal
            # name for it ("tempfile.tif"), which is no file of the user's and is left out
            line = f"{name}: {text}" if name and not name.lower().endswith((".tif", ".tiff")) else text
            sink = getattr(_local, "sink", None)
            if sink is None:  # a decode outside ``collected()``: said as libtiff would
                sys.stderr.write(line + "\n")
            else:
                sink.append(line)

        callback = _HANDLER_TYPE(handler)
        set_handler.argtypes = (_HANDLER_TYPE,)
        set_handler.restype = ctypes.c_void_p
        set_handler(callback)
        _state["handler"] = callback
        return True


@contextlib.contextmanager
def collected() -> Iterator[list[str]]:
    """The libtiff errors raised in this thread during the block (empty while debugging: then they print)."""
    messages: list[str] = []
    if debugging() or not _install():
        yield messages
        return
    outer = getattr(_local, "sink", None)
    _local.sink = messages
    try:
        yield messages
    finally:
        _local.sink = outer
