"""Measuring speed properly on a noisy, shared machine.

Three habits make the ratios trustworthy: warm-up calls are never timed (first calls allocate,
JIT-compile and fill caches); the device is synchronised before the clock stops (GPU calls return
before the work is done); and the cases being compared are run *interleaved*, one repetition of
each in turn, so that a burst of load from another process hurts all of them alike instead of
whichever happened to run at that moment. We report the median and the spread, never the mean.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Stats:
    """Summary of repeated timings in seconds."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    @property
    def spread(self) -> float:
        """Relative spread: (max - min) / median; 0.05 means the runs agree within 5 %."""
        return (self.max - self.min) / self.median if self.median > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "median_s": self.median, "min_s": self.min, "max_s": self.max,
            "spread": self.spread, "n": len(self.samples),
        }


def time_once(fn: Callable[[], object], sync: Callable[[], None] | None = None) -> float:
    """Wall time of one call, synchronising the device (if any) before the clock stops."""
    if sync:
        sync()
    start = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - start


def interleaved(
    cases: Sequence[tuple[str, Callable[[], object]]],
    repeat: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
    on_step: Callable[[], None] | None = None,
) -> dict[str, Stats]:
    """Time every case ``repeat`` times, one repetition of each in turn.

    The starting case rotates each round so that no case always runs right after the same
    neighbour (caches and turbo states carry over between calls).
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    for _ in range(warmup):
        for _name, fn in cases:
            fn()
            if on_step:
                on_step()
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    n = len(cases)
    for r in range(repeat):
        for i in range(n):
            name, fn = cases[(i + r) % n]
            times[name].append(time_once(fn, sync))
            if on_step:
                on_step()
    return {name: Stats(tuple(t)) for name, t in times.items()}


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


class PeakRss:
    """Samples this process's RSS in a background thread while the block runs.

    ``peak_mb`` is the whole process (every loaded model included); ``delta_mb`` is the growth
    over the RSS at entry, i.e. the working memory of what ran inside the block. Sampling can
    miss a very short spike; the interval is small compared with a model call.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, current_rss_bytes())

    def __enter__(self) -> PeakRss:
        self.start = self.peak = current_rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def delta_mb(self) -> float:
        return max(0, self.peak - self.start) / 2**20
