import math

import numpy as np
import pytest

from esrgan.parity import Parity, compare, passes, threshold_text, worst


def test_identical_arrays_are_exact():
    a = np.random.default_rng(0).random((1, 3, 5, 7), dtype=np.float32)
    p = compare(a, a.copy())
    assert p.max_abs_err == 0 and p.mean_abs_err == 0 and math.isinf(p.psnr_db) and p.nonfinite_fraction == 0
    assert passes(p, "fp32") and passes(p, "fp16") and passes(p, "int8")


def test_figures_match_hand_computation():
    ref = np.zeros((2, 2), np.float32)
    out = np.array([[0.1, 0.0], [0.0, -0.1]], np.float32)
    p = compare(ref, out)
    assert p.max_abs_err == pytest.approx(0.1)
    assert p.mean_abs_err == pytest.approx(0.05)
    assert p.psnr_db == pytest.approx(10 * math.log10(1 / 0.005), rel=1e-5)


def test_nonfinite_values_are_counted_and_fail_every_precision():
    ref = np.zeros(8, np.float32)
    out = ref.copy()
    out[0] = np.nan
    out[1] = np.inf
    p = compare(ref, out)
    assert p.nonfinite_fraction == pytest.approx(0.25)
    assert p.max_abs_err == 0  # the finite rest is exact
    assert not passes(p, "fp16") and not passes(p, "fp32")
    assert "non-finite" in str(p)


def test_all_nonfinite():
    p = compare(np.zeros(3), np.full(3, np.nan))
    assert p.nonfinite_fraction == 1 and math.isinf(p.max_abs_err) and not passes(p, "int8")


@pytest.mark.parametrize(
    ("parity", "precision", "expected"),
    [
        (Parity(1e-4, 0, 90, 0), "fp32", True),
        (Parity(1.1e-4, 0, 90, 0), "fp32", False),
        (Parity(1, 0, 45.0, 0), "fp16", True),
        (Parity(1, 0, 44.9, 0), "bf16", False),
        (Parity(1, 0, 40.0, 0), "int8", True),
        (Parity(1, 0, 39.9, 0), "int8", False),
    ],
)
def test_thresholds(parity, precision, expected):
    assert passes(parity, precision) is expected


def test_worst_combines_least_favourable_figures():
    w = worst([Parity(1e-5, 1e-6, 60, 0), Parity(2e-5, 1e-7, 50, 0.1)])
    assert w == Parity(2e-5, 1e-6, 50, 0.1)


def test_errors():
    with pytest.raises(ValueError, match="shape"):
        compare(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="precision"):
        passes(Parity(0, 0, 99, 0), "fp8")
    assert "45" in threshold_text("fp16") and "0.0001" in threshold_text("fp32")


def test_a_parity_record_round_trips_and_a_damaged_one_is_refused():
    p = Parity(1e-5, 1e-6, math.inf, 0.0)
    assert Parity.from_dict(p.to_dict()) == p
    good = p.to_dict()
    for bad in (None, [], "x", {**good, "psnr_db": "55"}, {**good, "psnr_db": None}, {**good, "psnr_db": True},
                {**good, "nonfinite_fraction": math.nan},
                {k: v for k, v in good.items() if k != "psnr_db"}, {**good, "extra": 1.0}):
        with pytest.raises(ValueError):
            Parity.from_dict(bad)
