"""The two whole-pipeline checks: tiled vs whole-image output, and esrgan-run vs the raw model.

Both run the FP32 ONNX model through the runtime, the way users run it. Tiling must not show:
the PSNR of the tiled output against the whole-image output at the default tile and pad says
how much it does. And the pipeline around the model (decode, tile, stitch, encode, write) must
not eat the speed the backends win: the folder throughput of ``Upscaler.upscale_folder`` is
compared with the model alone running the very same tile windows. Neither comparison can see
work the tiler adds (padding, overlapping windows), so the end-to-end section also reports the
pixels the model runs per image pixel (``pixels_run_ratio``), for the measured layout and for
``esrgan-run``'s defaults.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from esrgan.bench.inputs import centre_crop, source_images
from esrgan.bench.models import PreparedModel
from esrgan.bench.timing import Stats, interleaved
from esrgan.errors import BackendError
from esrgan.parity import compare
from esrgan.runtime.backends.base import Backend, BackendInfo
from esrgan.runtime.options import RunOptions


def _runtime_backend(model: PreparedModel, threads: int) -> Any:
    from esrgan.bench.rows import all_rows

    return all_rows()["ort-fp32"].factory(model, _opts(threads))


def _opts(threads: int) -> Any:
    from esrgan.bench.rows import RowOptions

    return RowOptions(threads=threads)


def _sizes(config: Any, quick: bool) -> tuple[int, int, int]:
    """(tile, pad, image side) for the checks: 2 x 2 tiles, so every kind of seam, the least compute.

    Tile and pad are the config's (``BenchConfig.check_tile``/``check_pad``; the paper-size model at
    the default 256 px tile costs minutes per image on two cores); --quick uses small ones. The side
    exceeds one window (tile + 2 pad), else the runtime would run the image whole and there would be
    no seam to check.
    """
    tile, pad = (32, 8) if quick else (config.check_tile, config.check_pad)
    return tile, pad, tile + max(tile // 4, 2 * pad + 8)


def tiling_check(model: PreparedModel, config: Any, quick: bool = False) -> dict[str, Any]:
    """PSNR of tiled vs whole-image output (uint16 outputs, so rounding does not hide anything)."""
    from esrgan.runtime.tiling import run_tiled

    tile, pad, side = _sizes(config, quick)
    img = centre_crop(source_images(config.images, count=1)[0], side).astype(np.float32) / 255.0
    backend = _runtime_backend(model, config.threads)
    try:
        multiple = getattr(backend, "size_multiple", 1)
        whole = run_tiled(backend.run, img, backend.scale, 0, pad, dtype=np.uint16, multiple=multiple)
        tiled = run_tiled(backend.run, img, backend.scale, tile, pad, dtype=np.uint16, multiple=multiple)
    finally:
        backend.close()
    parity = compare(whole / 65535.0, tiled / 65535.0)
    psnr = parity.psnr_db
    return {
        "tile": tile, "pad": pad, "image": f"{side}x{side} crop", "psnr_db": psnr if np.isfinite(psnr) else "inf",
        "max_abs_err": parity.max_abs_err,
        "markdown": f"Tile {tile}, pad {pad}, on a {side}×{side} photograph crop (2×2 tiles): tiled output vs "
                    f"whole-image output PSNR **{psnr:.1f} dB**, max abs err {parity.max_abs_err:.3g}.",
    }


def end_to_end(model: PreparedModel, config: Any, quick: bool = False) -> dict[str, Any]:
    """Folder throughput of the runtime's Upscaler vs the raw backend on the same tile windows.

    One image: the pipeline's overhead per tile is what is measured, and more images of the
    paper-size model cost minutes. No warm-up pass: the backend is already warm from the main
    run (one untimed call on the new window shape is enough).
    """
    from PIL import Image


    tile, pad, side = _sizes(config, quick)
    batch = max(config.batches)
    images, repeat = 1, (2 if quick else 4)
    photos = [centre_crop(p, side) for p in source_images(config.images, count=images)[:images]]
    with tempfile.TemporaryDirectory(prefix="esrgan-bench-") as tmp:
        src, dst = Path(tmp, "in"), Path(tmp, "out")
        src.mkdir()
        for i, p in enumerate(photos):
            Image.fromarray(p).save(src / f"{i:03d}.png")
        backend = _runtime_backend(model, config.threads)
        try:
            stats, n_windows = pipeline_vs_raw(
                backend, src, dst, [p.astype(np.float32) / 255.0 for p in photos], tile, pad, batch, repeat, warmup=0
            )
        finally:
            backend.close()
    raw_s, e2e_s = stats["raw"], stats["pipeline"]
    mpix = len(photos) * side * side / 1e6
    ratio = raw_s.median / e2e_s.median
    from esrgan.runtime.tiling import pixels_run

    run_ratio = pixels_run(side, side, tile, pad) / (side * side)
    auto_ratio = pixels_run_ratio([(side, side)], spec=model.spec)
    return {
        "tile": tile, "pad": pad, "batch": batch, "images": len(photos), "image_side": side,
        "windows": n_windows, "raw": raw_s.as_dict(), "pipeline": e2e_s.as_dict(),
        "raw_mpix_s": mpix / raw_s.median, "pipeline_mpix_s": mpix / e2e_s.median, "pipeline_share_of_raw": ratio,
        "pixels_run_ratio": run_ratio, "default_pixels_run_ratio": auto_ratio,
        "markdown": (
            f"{len(photos)} PNG photograph(s) of {side}×{side} px, tile {tile}, pad {pad}, batch {batch} "
            f"({n_windows} windows), ORT FP32, median of {repeat} interleaved runs (order rotating): `Upscaler.upscale_folder` "
            f"{mpix / e2e_s.median:.3g} MP/s vs the raw model on the same windows {mpix / raw_s.median:.3g} MP/s: "
            f"**{ratio:.0%} of raw** (target ≥ 85 %).\n\n"
            f"Pixels the model runs per image pixel: {run_ratio:.2f}× in this layout (tile {tile}, chosen to cross "
            f"every kind of seam), **{auto_ratio:.2f}×** with `esrgan-run`'s defaults (`--tile auto`, "
            f"`--tile-pad {RunOptions.tile_pad}`) on a CPU (target ≤ 1.1× for an image within the memory budget). "
            "Both MP/s figures above count image pixels, so the layout's extra work is in them."
        ),
    }


class CountingBackend(Backend):
    """A stand-in x``scale`` model on the CPU (nearest neighbour) that counts the input pixels it is given:
    what the tiler would make a real model run, found without running one."""

    def __init__(self, scale: int = 4, size_multiple: int = 1, spec: Any = None) -> None:
        if spec is not None:  # the engine sizes --tile auto from the model's spec, as for the real backend
            scale, size_multiple = spec.scale, spec.size_multiple
            self.metadata = SimpleNamespace(spec=spec)
        self.scale, self.in_channels, self.size_multiple = scale, 3, size_multiple
        self.info = BackendInfo("counting", "fp32", "cpu")
        self.pixels = 0

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.pixels += batch.shape[0] * batch.shape[2] * batch.shape[3]
        return batch.repeat(self.scale, axis=2).repeat(self.scale, axis=3)


def pixels_run_ratio(
    sizes: list[tuple[int, int]], tile: int | str = RunOptions.tile, pad: int = RunOptions.tile_pad, size_multiple: int = 1,
    spec: Any = None,
) -> float:
    """Input pixels the runtime's tile engine makes the model run per image pixel, for images of ``sizes``
    (height, width), tiled as ``esrgan-run --tile TILE --tile-pad PAD`` would on this machine's CPU.
    ``spec``: the model's ``GeneratorSpec`` (its memory per pixel sizes ``--tile auto``, its pixel-unshuffle
    the size multiple); None: a paper-size x4 model."""
    from esrgan.runtime.engine import TileEngine
    from esrgan.runtime.images import from_array

    backend = CountingBackend(size_multiple=size_multiple, spec=spec)
    failed: list[str] = []
    engine = TileEngine(backend, tile, pad, on_done=lambda work: None, on_fail=lambda work, why: failed.append(why))
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        engine.submit(i, from_array(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    if failed:
        raise BackendError(f"the counting stand-in failed: {failed[0]}")
    return backend.pixels / sum(h * w for h, w in sizes)


def runtime_batches(images: list[np.ndarray], tile: int, pad: int, batch: int) -> list[np.ndarray]:
    """The batches the runtime makes for these [0, 1] HWC images (windows of one image never wait for the next)."""
    from esrgan.runtime import tiling

    out = []
    for img in images:
        padded = tiling.pad_image(img, tiling.border_pad(pad, *img.shape[:2]))
        wins = [tiling.extract_window(padded, t) for t in tiling.tile_grid(*img.shape[:2], tile, pad)]
        out += [np.stack(wins[i : i + batch]) for i in range(0, len(wins), batch)]
    return out


def pipeline_vs_raw(
    backend: Any, src: Path, dst: Path, images: list[np.ndarray], tile: int, pad: int, batch: int, repeat: int,
    warmup: int = 1,
) -> tuple[dict[str, Stats], int]:
    """Interleaved timing of ``Upscaler.upscale_folder(src -> dst)`` ("pipeline") and of the raw backend
    on exactly the windows it runs ("raw"); returns the stats and the number of windows.

    ``images`` are the folder's images as [0, 1] HWC arrays; the raw batches are built before the clock
    starts, and one loaded backend serves both, so only the pipeline around the model differs. The
    window shape's first call is never timed; ``warmup`` more untimed passes of each follow.
    """
    from esrgan.runtime.upscaler import Upscaler

    batches = runtime_batches(images, tile, pad, batch)
    up = Upscaler(backend=backend, tile=tile, tile_pad=pad, batch=batch, say=None)

    def raw() -> None:
        for b in batches:
            backend.run(b)

    def pipeline() -> None:
        summary = up.upscale_folder(src, dst, overwrite=True, progress=False)
        if summary.failed:
            raise BackendError(f"the pipeline failed on {summary.failed} image(s) of {src}")

    backend.run(batches[0])
    stats = interleaved([("raw", raw), ("pipeline", pipeline)], repeat=repeat, warmup=warmup)
    return stats, sum(len(b) for b in batches)
