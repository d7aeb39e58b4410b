"""Benchmarks: ``run_benchmark`` and the ``esrgan-bench`` command (speed and parity of every backend).

Rows are plug-ins: ``register(Row(...))`` from a module in ``esrgan/bench/plugins/`` or the
``esrgan.bench_rows`` entry-point group. Attributes are imported lazily, so that
``import esrgan.bench`` stays light.
"""

from __future__ import annotations

from esrgan.lazy import lazy_exports

_LAZY = {
    "BenchConfig": "esrgan.bench.runner",
    "run_benchmark": "esrgan.bench.runner",
    "Row": "esrgan.bench.rows",
    "RowOptions": "esrgan.bench.rows",
    "Unavailable": "esrgan.bench.rows",
    "register": "esrgan.bench.rows",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
