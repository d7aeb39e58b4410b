"""Status lines stamped with the seconds since a step began: the one format every command uses.

Long one-time work (an export, a model's preparation) prints what it is doing as it goes, and the
stamp shows it is moving and how long each part took: ``[  12.3s] verifying model.onnx...``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Say = Callable[[str], None]


def stamp(seconds: float) -> str:
    return f"[{seconds:6.1f}s]"


def timed(say: Say) -> Say:
    """``say`` with every line prefixed by the time since this call."""
    start = time.perf_counter()

    def timed_say(message: str) -> None:
        say(f"{stamp(time.perf_counter() - start)} {message}")

    return timed_say
