"""Status lines stamped with the seconds since a step began: the one format every command uses.

Long one-time work (an export, a model's preparation) prints what it is doing as it goes, and the
stamp shows it is moving and how long each part took: ``[  12.3s] verifying model.onnx...``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

Say = Callable[[str], None]
#: How often ``heartbeat`` says a long step is still running.
HEARTBEAT_SECONDS = 5.0


def stamp(seconds: float) -> str:
    return f"[{seconds:6.1f}s]"


def timed(say: Say) -> Say:
    """``say`` with every line prefixed by the time since this call."""
    start = time.perf_counter()

    def timed_say(message: str) -> None:
        say(f"{stamp(time.perf_counter() - start)} {message}")

    return timed_say


@contextlib.contextmanager
def heartbeat(say: Say, message: str, every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """While the block runs, ``say`` a line every ``every`` seconds that it still does ``message``.

    For single steps that take long and print nothing themselves (an exporter, a verification on the
    paper-size model: up to a minute on a loaded machine), so that no command is silent for long.
    """
    start = time.perf_counter()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            say(f"{message}: still running, {time.perf_counter() - start:.0f} s")

    thread = threading.Thread(target=beat, name="esrgan-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
