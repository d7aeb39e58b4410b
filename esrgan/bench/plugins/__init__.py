"""Benchmark rows contributed by other parts of the project.

Every module in this package is imported when the benchmark lists its rows; each calls
``esrgan.bench.rows.register(Row(...))`` for the engines it adds (e.g. the ncnn peer). A factory raises ``esrgan.bench.rows.Unavailable`` to be skipped with a reason.
"""
