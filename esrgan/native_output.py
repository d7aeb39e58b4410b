"""What C++ libraries print past Python: dropped unless debugging.

Some libraries write straight to the process's file descriptors from C++, where neither Python's
``logging`` nor ``contextlib.redirect_stdout`` reaches (OpenVINO's TensorFlow frontend prints protobuf
parse errors to fd 2 while it probes a file that is no model; torch's TorchScript ONNX exporter prints
its whole IR graph to fd 1 when it cannot export a network). Our own one line says what failed.
Torch-free: the runtime uses it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

DEBUG_ENV = "ESRGAN_DEBUG"


def debugging() -> bool:
    """Whether ``--debug`` / ``ESRGAN_DEBUG`` asks for tracebacks and everything the libraries say."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def native_output_dropped(fd: int = 2) -> Iterator[None]:
    """Drop what native code writes to file descriptor ``fd`` (1 or 2) during the block, unless debugging.

    Only for calls made before any worker thread starts: the descriptor is the process's.
    """
    stream = sys.stdout if fd == 1 else sys.stderr
    if debugging():
        yield
        return
    try:
        stream.flush()
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):  # no such fd (closed, or a replaced stream): nothing to drop
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), fd)
            try:
                yield
            finally:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    stream.flush()  # what Python buffered during the block goes to the sink, not after it
                os.dup2(saved, fd)
    finally:
        os.close(saved)
