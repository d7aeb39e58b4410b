"""Parity figures between a reference output and an exported artefact's output, and their thresholds.

Torch-free and numpy-only: export verification, the runtime's tests and the benchmarks all judge
artefacts with these same figures and limits, so "passes" means the same thing everywhere.

Figures are computed on the raw outputs (no clipping to [0, 1]) with a data range of 1.0, the range
of the images the generators take and return. Non-finite values (the FP16 overflow failure mode of
ESRGAN: black or NaN images) are counted separately and the error figures use only the finite
positions, so a report says both "how many values broke" and "how close the rest is".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

# The thresholds every artefact and CPU path is held to, project-wide: FP32 must match to rounding;
# 45 dB is where half-precision differences stop being visible; INT8 trades some of that for speed.
FP32_MAX_ABS = 1e-4
HALF_MIN_PSNR_DB = 45.0  # fp16 and bf16
INT8_MIN_PSNR_DB = 40.0
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class Parity:
    """How close ``output`` is to ``reference``: PSNR is inf for identical arrays."""

    max_abs_err: float
    mean_abs_err: float
    psnr_db: float
    nonfinite_fraction: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: object) -> Parity:
        """A record ``to_dict`` wrote (a cached measurement); ValueError for anything else, so that a
        damaged or hand-edited record is measured again instead of failing later in a comparison."""
        names = [f.name for f in fields(cls)]
        if not isinstance(record, dict) or sorted(record) != sorted(names):
            raise ValueError(f"not a parity record: {record!r:.120}")
        values = [record[name] for name in names]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v) for v in values):
            raise ValueError(f"not a parity record: {record!r:.120}")
        return cls(*(float(v) for v in values))

    def __str__(self) -> str:
        text = f"max abs err {self.max_abs_err:.3g} / PSNR {self.psnr_db:.2f} dB"
        if self.nonfinite_fraction:
            text += f" / {self.nonfinite_fraction:.3%} non-finite"
        return text


def compare(reference: np.ndarray, output: np.ndarray, data_range: float = 1.0) -> Parity:
    """Parity of ``output`` against ``reference`` (same shape; any float dtype)."""
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape} vs output {out.shape}")
    if ref.size == 0:
        raise ValueError("cannot compare empty arrays")
    finite = np.isfinite(out) & np.isfinite(ref)
    nonfinite = 1.0 - float(finite.mean())
    if not finite.any():
        return Parity(math.inf, math.inf, -math.inf, nonfinite)
    diff = np.abs(ref[finite] - out[finite])
    mse = float(np.mean(diff * diff))
    psnr = math.inf if mse == 0.0 else 10.0 * math.log10(data_range * data_range / mse)
    return Parity(float(diff.max()), float(diff.mean()), psnr, nonfinite)


def worst(parities: list[Parity]) -> Parity:
    """The least favourable figure of each kind over several comparisons (e.g. input sizes)."""
    if not parities:
        raise ValueError("no parity figures to combine")
    return Parity(
        max_abs_err=max(p.max_abs_err for p in parities),
        mean_abs_err=max(p.mean_abs_err for p in parities),
        psnr_db=min(p.psnr_db for p in parities),
        nonfinite_fraction=max(p.nonfinite_fraction for p in parities),
    )


def threshold_text(precision: str) -> str:
    """The rule ``passes`` applies, in words, for error messages and reports."""
    precision = _check_precision(precision)
    if precision == "fp32":
        return f"max abs err <= {FP32_MAX_ABS:g}"
    limit = INT8_MIN_PSNR_DB if precision == "int8" else HALF_MIN_PSNR_DB
    return f"PSNR >= {limit:g} dB and no non-finite value"


def passes(parity: Parity, precision: str) -> bool:
    """Whether ``parity`` is within the threshold for ``precision`` (fp32, fp16, bf16 or int8)."""
    precision = _check_precision(precision)
    if parity.nonfinite_fraction > 0:
        return False
    if precision == "fp32":
        return parity.max_abs_err <= FP32_MAX_ABS
    limit = INT8_MIN_PSNR_DB if precision == "int8" else HALF_MIN_PSNR_DB
    return parity.psnr_db >= limit


def _check_precision(precision: str) -> str:
    p = precision.lower()
    if p not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    return p
