"""benchmarks/end_to_end.py's report words the machine's load from the figures, not a fixed phrase."""

from __future__ import annotations

from benchmarks import end_to_end


def test_the_load_is_worded_from_the_load_averages():
    idle = {"load_avg_at_end": (1.8, 1.6, 1.4), "threads": 2, "cores": 2}  # the benchmark's own 2 threads
    busy = {"load_avg_at_end": (6.5, 5.2, 3.0), "threads": 2, "cores": 2}  # the withdrawn 3.15x run's load
    assert end_to_end.load_words(idle) == "no other work of note on the machine"
    assert "other work ran on the machine too" in end_to_end.load_words(busy)
