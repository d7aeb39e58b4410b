import time

import numpy as np
import pytest

from esrgan.bench.timing import PeakRss, Stats, interleaved, time_once


def test_stats_median_and_spread():
    s = Stats((0.3, 0.1, 0.2, 0.2))
    assert s.median == pytest.approx(0.2)
    assert s.spread == pytest.approx((0.3 - 0.1) / 0.2)
    assert s.as_dict()["n"] == 4


def test_interleaved_rotates_excludes_warmup_and_counts():
    order = []
    cases = [(n, (lambda n=n: order.append(n))) for n in "abc"]
    stats = interleaved(cases, repeat=3, warmup=2)
    assert order[:6] == list("abcabc")  # warm-up, untimed
    assert order[6:] == list("abc") + list("bca") + list("cab")  # each round starts one later
    assert {k: len(v.samples) for k, v in stats.items()} == {"a": 3, "b": 3, "c": 3}


def test_interleaved_measures_the_slow_case_as_slower():
    stats = interleaved([("fast", lambda: None), ("slow", lambda: time.sleep(0.01))], repeat=3, warmup=0)
    assert stats["slow"].median > stats["fast"].median + 0.005


def test_time_once_syncs_before_stopping_the_clock():
    events = []
    time_once(lambda: events.append("run"), sync=lambda: events.append("sync"))
    assert events == ["sync", "run", "sync"]


def test_repeat_must_be_positive():
    with pytest.raises(ValueError):
        interleaved([("a", lambda: None)], repeat=0)


def test_peak_rss_sees_an_allocation():
    with PeakRss(interval_s=0.001) as mem:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        time.sleep(0.02)
        del block
    assert mem.delta_mb > 40
    assert mem.peak_mb >= mem.delta_mb
