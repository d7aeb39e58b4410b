"""Folders of images through the tile engine, with decoding and encoding off the model's thread.

Decoding the next images and encoding finished ones run in worker threads (Pillow, zlib and numpy
release the GIL) while the main thread feeds the backend, so the model is rarely idle: the
end-to-end rate is measured against the raw model rate in benchmarks/reports/runtime/.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from esrgan.errors import ImageError
from esrgan.native_output import debugging
from esrgan.runtime import images
from esrgan.runtime.backends.base import Backend
from esrgan.runtime.engine import ImageWork, TileEngine
from esrgan.runtime.options import RunOptions
from esrgan.runtime.paths import Job, remove_stale_temps


def format_rate(megapixels_per_s: float) -> str:
    """A throughput with three significant digits and no exponent: 0.00412, 0.412, 41.2, 4120."""
    if megapixels_per_s <= 0 or not math.isfinite(megapixels_per_s):
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(megapixels_per_s)))
    return f"{megapixels_per_s:.{decimals}f}"


@dataclass
class Summary:
    """What a folder run did; ``exit_code`` is 1 when any input failed or a folder could not be listed.

    Every input planned is counted exactly once: written, skipped (a complete output exists) or failed.
    """

    written: int = 0
    skipped: int = 0
    failed: int = 0
    unreadable_folders: int = 0
    seconds: float = 0.0
    output_megapixels: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.unreadable_folders else 0

    def describe(self) -> str:
        rate = self.output_megapixels / self.seconds if self.seconds else 0.0
        folders = (f", {self.unreadable_folders} folder{'s' if self.unreadable_folders > 1 else ''} unreadable"
                   if self.unreadable_folders else "")
        why = " (outputs exist; --overwrite to redo)" if self.skipped else ""
        speed = f" ({format_rate(rate)} output MP/s)" if self.written else ""
        return (f"{self.written} written, {self.skipped} skipped{why}, {self.failed} failed{folders} in "
                f"{self.seconds:.1f} s{speed}")


def finish_image(work: ImageWork, outscale: float | None, scale: int) -> np.ndarray:
    """Model planes -> the final array in the input's layout, resized for ``--outscale``."""
    decoded = work.decoded
    h, w = decoded.size
    rgb = work.outputs[0]
    alpha = None
    if decoded.alpha is not None:
        alpha = work.outputs[1] if decoded.alpha_varies else images.resize_alpha(decoded.alpha, (h * scale, w * scale), decoded.dtype)
    arr = images.assemble(decoded, rgb, alpha)
    if outscale and outscale != scale:
        arr = images.resize_output(arr, (max(1, round(h * outscale)), max(1, round(w * outscale))))
    return arr


class FolderRun:
    """One ``esrgan-run`` over a list of jobs: skip complete outputs, decode ahead, encode behind."""

    def __init__(self, backend: Backend, options: RunOptions, say: Callable[[str], None] | None = None,
                 progress: bool = True, before_writing: Callable[[], None] | None = None) -> None:
        self.backend = backend
        self.options = options
        # Called once, before the first output is written (the output folder's record of settings).
        self._before_writing = before_writing
        self._writing_lock = threading.Lock()
        self.say = say or (lambda line: tqdm.write(line, file=sys.stderr))  # notices (--quiet drops them)
        self.progress = progress
        self.summary = Summary()
        self._said: set[str] = set()

    def _note(self, note: str, job: Job) -> None:
        """What an output format lost, said once per run with the first image it concerns: the same
        loss on every image of a folder would bury the summary, and the name says where to look."""
        if note not in self._said:
            self._said.add(note)
            self._say_once(f"note: {note} ({job.src.name}; not repeated for later images)")

    def _say_once(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            # any ``say`` (the CLI's echoes too) writes around the progress bar, as tqdm.write does:
            # the bar is cleared first and drawn again after, so a notice is never glued to it
            with tqdm.external_write_mode(file=sys.stderr):
                self.say(line)

    def _error(self, line: str, exc: BaseException | None = None) -> None:
        self.summary.failures.append(line)
        if exc is not None and debugging():
            traceback.print_exception(exc, file=sys.stderr)
        tqdm.write(f"error: {line}", file=sys.stderr)  # always shown, even with --quiet

    def _fail(self, job: Job, message: str, exc: BaseException | None = None) -> None:
        self.summary.failed += 1
        self._error(message if message.startswith(str(job.src)) else f"{job.src}: {message}", exc)

    def _prepare(self, job: Job) -> images.Decoded | None:
        """In a decode worker: None when a complete output exists (a rerun keeps it), else the input.

        Checking an output reads all of it, so it runs here, in parallel and ahead of the model.
        """
        if not self.options.overwrite and images.is_intact(job.dst, job.format):
            return None
        return images.read_image(job.src, self.options.max_pixels)

    def run(self, jobs: list[Job], unreadable: list[str] | tuple[str, ...] = ()) -> Summary:
        """Process ``jobs``; ``unreadable`` (folders that could not be listed) are reported and counted."""
        opts = self.options
        started = time.perf_counter()
        for line in unreadable:
            self.summary.unreadable_folders += 1
            self._error(line)
        remove_stale_temps(jobs)
        todo = list(jobs)
        bar = tqdm(total=len(todo), unit="img", disable=not self.progress, file=sys.stderr, dynamic_ncols=True)
        status = _BarStatus(bar)
        encodes: deque[tuple[Job, Future]] = deque()
        scale = self.backend.scale

        def collect(block_until: int) -> None:
            """Account for finished writes, waiting while more than ``block_until`` are queued."""
            while encodes and (encodes[0][1].done() or len(encodes) > block_until):
                job, fut = encodes.popleft()
                try:
                    notes, megapixels = fut.result()
                except ImageError as exc:
                    self._fail(job, str(exc), exc)
                except Exception as exc:  # an encoder's failure is this one image's, whatever it raises
                    self._fail(job, f"cannot write {job.dst} ({images.reason(exc)})", exc)
                else:
                    for note in notes:
                        self._note(note, job)
                    self.summary.written += 1
                    self.summary.output_megapixels += megapixels
                    elapsed = time.perf_counter() - started
                    status.show(rate=f"{format_rate(self.summary.output_megapixels / elapsed)} MP/s")
                bar.update(1)

        with ThreadPoolExecutor(opts.workers, thread_name_prefix="decode") as dec_pool, \
                ThreadPoolExecutor(opts.workers, thread_name_prefix="encode") as enc_pool:
            by_key: dict[Hashable, Job] = dict(enumerate(todo))

            def write(work: ImageWork) -> None:
                job = by_key[work.key]
                status.show(image="")  # its tiles are done: the next image's batch names itself
                encodes.append((job, enc_pool.submit(self._encode, job, work, scale)))

            def failed(work: ImageWork, message: str) -> None:
                self._fail(by_key[work.key], message)
                bar.update(1)

            def tiles(work: ImageWork) -> None:
                name = by_key[work.key].src.name
                status.show(image=f"{name} tile {work.tiles_done}/{work.total}" if work.total > 1 else name)

            engine = TileEngine(
                self.backend, opts.tile, opts.tile_pad, opts.batch, on_done=write, on_fail=failed, say=self._say_once,
                on_tiles=tiles,
            )
            lookahead = opts.workers + 1
            decodes: deque[Future] = deque(dec_pool.submit(self._prepare, job) for job in todo[:lookahead])
            for i, job in enumerate(todo):
                fut = decodes.popleft()
                if i + lookahead < len(todo):
                    decodes.append(dec_pool.submit(self._prepare, todo[i + lookahead]))
                try:
                    decoded = fut.result()
                except Exception as exc:  # read_image names the file; anything else is still this file's
                    self._fail(job, str(exc) if isinstance(exc, ImageError) else f"cannot decode ({images.reason(exc)})",
                               exc)
                    bar.update(1)
                    continue
                if decoded is None:
                    self.summary.skipped += 1
                    bar.update(1)
                    continue
                if decoded.bits == 16 and self.backend.info.precision != "fp32":
                    self._say_once(
                        f"note: 16-bit inputs run through a {self.backend.info.precision} model keep about that "
                        "precision, not 16 bits; --backend onnxruntime-cpu with an FP32 model keeps them exact"
                    )
                more = bool(decodes) and decodes[0].done()
                status.show(draw=False, image=job.src.name)  # entering the model; tiles() adds its count
                engine.submit(i, decoded, more_coming=more)
                collect(block_until=2 * opts.workers)
            engine.flush()
            collect(block_until=0)
        status.close()
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _encode(self, job: Job, work: ImageWork, scale: int) -> tuple[list[str], float]:
        arr = finish_image(work, self.options.outscale, scale)
        with self._writing_lock:
            if self._before_writing is not None:
                self._before_writing()
                self._before_writing = None
        notes = images.write_image(job.dst, arr, work.decoded, job.format, self.options.quality)
        return notes, arr.shape[0] * arr.shape[1] / 1e6


class _BarStatus:
    """The progress bar's postfix: the folder's output MP/s and the image in the model with its tiles.

    A large image is many batches behind one bar step; its tile count says the run is moving. The
    bar is redrawn at most twice a second, whatever the tile rate.
    """

    REFRESH_S = 0.5
    TICK_S = 1.0

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar
        self.parts = {"image": "", "rate": ""}
        self.drawn = 0.0
        self._stop = threading.Event()
        if not bar.disable:
            # One model call on a large image can take minutes with nothing to count: redrawing each
            # second keeps the bar's elapsed time moving, so a working run never looks hung.
            threading.Thread(target=self._tick, name="progress", daemon=True).start()

    def _tick(self) -> None:
        while not self._stop.wait(self.TICK_S):
            self.bar.refresh()

    def close(self) -> None:
        self._stop.set()
        self.bar.close()

    def show(self, draw: bool = True, **parts: str) -> None:
        """Set parts of the postfix; ``draw=False`` leaves the drawing to the next redraw or tick."""
        self.parts.update(parts)
        self.bar.set_postfix_str(", ".join(p for p in self.parts.values() if p), refresh=False)
        now = time.perf_counter()
        if draw and now - self.drawn >= self.REFRESH_S:
            self.drawn = now
            self.bar.refresh()
