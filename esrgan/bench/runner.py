"""Run every selected row at every tile x batch: parity against the reference, then speed.

For each tile x batch the rows are timed interleaved (see ``timing.interleaved``) on crops of
real photographs; each repetition feeds the next photograph, and every output is kept, so the
parity figures come from the very runs that were timed (no separate, possibly different, path),
over as many photographs as there are repetitions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from esrgan.bench.config import BenchConfig
from esrgan.bench.env import collect_environment, peak_gflops
from esrgan.bench.inputs import source_images, tile_batch
from esrgan.bench.models import PreparedModel
from esrgan.bench.report import Result
from esrgan.bench.rows import Row, RowOptions, Unavailable
from esrgan.bench.timing import PeakRss, interleaved
from esrgan.errors import BackendError, EsrganError
from esrgan.parity import compare, passes
from esrgan.runtime.backends.base import Backend
from esrgan.runtime.cpu_features import probe_cpu_features


@dataclass
class Loaded:
    """A row with its backend and the outputs of its latest timed runs (by input index)."""

    row: Row
    backend: Backend
    outputs: dict[int, np.ndarray] = field(default_factory=dict)

    def sync(self) -> None:
        sync = getattr(self.backend, "sync", None)
        if sync:
            sync()

    def caller(self, inputs: list[np.ndarray]) -> Callable[[], None]:
        """A zero-argument call for the timer that walks through ``inputs`` and keeps each output."""
        state = {"k": 0}

        def call() -> None:
            i = state["k"] % len(inputs)
            self.outputs[i] = self.backend.run(inputs[i])
            self.sync()
            state["k"] += 1

        return call


def load_rows(
    rows: list[Row], model: PreparedModel, opts: RowOptions, progress: Any = None
) -> tuple[list[Loaded], dict[str, str]]:
    """Load each row once; rows that cannot run here are returned as {key: reason}.

    Loading can take a while (OpenVINO compiles, TensorRT deserialises): ``progress`` (the bar)
    names the row being loaded.
    """
    loaded, skipped = [], {}
    for row in rows:
        if progress is not None:
            progress.set_postfix_str(f"loading {row.key}")
        try:
            loaded.append(Loaded(row, row.factory(model, opts)))
        except (Unavailable, EsrganError) as exc:  # e.g. no GPU, or an engine that has no kernel for a model
            skipped[row.key] = str(exc)
    return loaded, skipped


def measure_case(
    loaded: list[Loaded], model: PreparedModel, tile: int, batch: int, config: BenchConfig,
    images: list[np.ndarray], peak: float | None, on_step: Callable[[], None] | None = None,
) -> tuple[list[Result], dict[str, str]]:
    """One tile x batch: interleaved timing of all rows, then parity and memory per row."""
    n_inputs = max(1, min(config.repeat, len(images)))
    inputs = [tile_batch(images[k:] + images[:k], tile, batch) for k in range(n_inputs)]
    failed: dict[str, str] = {}
    live = []
    for item in loaded:  # one untimed call first: a row that fails on this size is dropped, not fatal
        try:
            item.outputs.clear()
            item.caller(inputs[:1])()
            live.append(item)
        except BackendError as exc:
            failed[item.row.key] = f"tile {tile} batch {batch}: {exc}"
        if on_step:
            on_step()
    stats = interleaved(
        [(item.row.key, item.caller(inputs)) for item in live],
        repeat=config.repeat, warmup=max(0, config.warmup - 1), on_step=on_step,
    )
    refs = {item.row.device: item for item in live if item.row.reference}
    macs = model.spec.macs_per_pixel()
    in_px = batch * tile * tile
    results = []
    for item in live:
        row, s = item.row, stats[item.row.key]
        ref = refs.get(row.device)
        with PeakRss() as mem:
            item.caller(inputs[:1])()
        if ref is not None:
            order = sorted(ref.outputs)
            parity = compare(
                np.concatenate([ref.outputs[i] for i in order]), np.concatenate([item.outputs[i] for i in order])
            )
        gflops = 2 * macs * in_px / s.median / 1e9
        results.append(Result(
            backend=row.key, engine=item.backend.info.name, precision=row.precision,
            device=item.backend.info.device, tile=tile, batch=batch,
            latency_ms=s.median * 1e3, latency_min_ms=s.min * 1e3, latency_max_ms=s.max * 1e3,
            spread=s.spread, repeats=len(s.samples),
            throughput_mpix_s=in_px / s.median / 1e6,
            output_mpix_s=in_px * model.spec.scale ** 2 / s.median / 1e6,
            speedup_vs_torch=(stats[ref.row.key].median / s.median) if ref else None,
            max_abs_err=parity.max_abs_err if ref else None,
            mean_abs_err=parity.mean_abs_err if ref else None,
            psnr_vs_torch_db=parity.psnr_db if ref else None,
            nonfinite_fraction=parity.nonfinite_fraction if ref else None,
            parity_ok=passes(parity, row.precision) if ref else None,
            parity_images=len(item.outputs),
            peak_mem_mb=mem.peak_mb, run_mem_mb=mem.delta_mb,
            gpu_mem_mb=_gpu_peak_mb(item),
            # Only FP32 rows are compared with the FP32 peak: BF16 (VDPBF16PS) and INT8 (VNNI) units
            # do 2x and 4x the FP32 FLOPs per cycle, so their "share" of the FP32 peak would mislead.
            gflops=gflops, peak_share=(gflops / peak) if (peak and row.device == "cpu" and row.precision == "fp32") else None,
            reference=row.reference, peer=row.peer,
        ))
        if on_step:
            on_step()
    return results, failed


def _gpu_peak_mb(item: Loaded) -> float | None:
    if not item.row.device.startswith("cuda") or not item.backend.info.name.startswith("torch"):
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


def steps_per_case(n_rows: int, config: BenchConfig) -> int:
    return n_rows * (1 + max(0, config.warmup - 1) + config.repeat + 1)


def run_benchmark(
    model: PreparedModel, rows: list[Row], config: BenchConfig, progress: Any = None,
    images: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """The whole measurement; returns the report's data (``report.write_report`` renders it).

    ``images`` (RGB uint8 arrays) replace ``config.images`` and the scikit-image photographs, for a
    caller that has to bring its own (benchmarks/gpu_check.py where scikit-image is not installed).
    """
    if images is None:
        images = source_images(config.images, count=config.repeat)
    loaded, skipped = load_rows(rows, model, RowOptions(threads=config.threads), progress)
    peak = peak_gflops(probe_cpu_features(), config.threads)
    results: list[Result] = []
    step = progress.update if progress is not None else None
    if progress is not None:  # only the rows that loaded will run
        progress.reset(total=steps_per_case(len(loaded), config) * len(config.tiles) * len(config.batches))
    try:
        for tile in config.tiles:
            for batch in config.batches:
                if progress is not None:
                    progress.set_postfix_str(f"tile {tile} batch {batch}")
                res, failed = measure_case(loaded, model, tile, batch, config, images, peak, step)
                results += res
                skipped.update(failed)
    finally:
        for item in loaded:
            item.backend.close()
    return {
        "environment": collect_environment(config.threads, model.describe()),
        "config": {
            "tiles": list(config.tiles), "batches": list(config.batches), "repeat": config.repeat,
            "warmup": config.warmup, "threads": config.threads,
            "images": str(config.images) if config.images else "scikit-image photographs",
            "check_tile": config.check_tile, "check_pad": config.check_pad,
            "rows": [r.key for r in rows],
        },
        "results": results,
        "skipped": skipped,
    }
