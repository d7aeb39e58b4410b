"""The tile engine: images in, upscaled integer images out, with tiles batched across images.

It owns what happens between a decoded image and its upscaled planes: laying out tiles, batching
them (several images may be in flight so that small images fill a batch), running the backend,
stitching into one uint8/uint16 buffer per plane, and shrinking the tile when the device runs
out of memory. File reading/writing lives in ``pipeline.py``; tile geometry in ``tiling.py``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from esrgan.errors import BackendError, OutOfMemoryError, UsageError
from esrgan.runtime import tiling
from esrgan.runtime.backends.base import MEMORY_FACTORS, Backend, BackendInfo
from esrgan.runtime.images import Decoded
from esrgan.runtime.options import RunOptions

MIN_TILE = 16
MAX_AUTO_TILE = 1024
CPU_BUDGET_BYTES = 4 << 30
GPU_BUDGET_BYTES = 8 << 30  # without a memory probe; an OOM halves the tile anyway


def bytes_per_input_pixel(spec: object | None, scale: int) -> float:
    """Rough peak activation memory per input pixel of one tile (float32), for ``--tile auto``.

    The trunk holds the dense block's concatenated features (nf + 4 gc channels) at input
    resolution; the upsampler holds two nf-channel maps at output resolution, which dominate.
    """
    nf = getattr(spec, "num_feat", 64)
    gc = getattr(spec, "num_grow_ch", 32)
    return 4.0 * (2 * (nf + 4 * gc) + 2 * nf * scale * scale)


def memory_budget(info: BackendInfo) -> int:
    """Bytes one call may take: on a CPU a quarter of the available memory (at most 4 GiB), on a GPU half its free memory."""
    if info.device == "cpu":
        return min(CPU_BUDGET_BYTES, _available_memory() // 4)
    free = info.free_memory
    if free is None and info.device.startswith("cuda"):  # nvidia-smi numbers CUDA devices, not Vulkan ones
        free = gpu_free_bytes(int(info.device.split(":")[-1]) if ":" in info.device else 0)
    # Half the free memory: the framework's workspace and fragmentation take the rest.
    return free // 2 if free else GPU_BUDGET_BYTES


def auto_tile(info: BackendInfo, pad: int, per_pixel: float, budget: int | None = None) -> int:
    """The largest tile that fits the engine profile, else the memory budget (multiple of 8)."""
    if info.max_input is not None:
        _, max_h, max_w = info.max_input
        return max(MIN_TILE, min(max_h, max_w) - 2 * pad)
    budget = memory_budget(info) if budget is None else budget
    side = int(math.sqrt(budget / per_pixel)) - 2 * pad
    return max(MIN_TILE, min(MAX_AUTO_TILE, side // 8 * 8))


def whole_image_pixels(info: BackendInfo, pad: int, per_pixel: float, budget: int | None = None) -> int:
    """With ``--tile auto``: the largest window, in pixels, in which an image may run whole.

    Tiling an image that fits the memory budget only adds work (every window carries its context),
    so such an image runs as one window of any aspect ratio, as large as the largest auto tile's
    window. An engine with a fixed input profile has no such freedom: 0.
    """
    if info.max_input is not None:
        return 0
    budget = memory_budget(info) if budget is None else budget
    return min(int(budget / per_pixel), (MAX_AUTO_TILE + 2 * pad) ** 2)


def parse_nvidia_smi_free(text: str, device_id: int) -> int | None:
    """Bytes free on ``device_id`` from ``nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits``."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    try:
        return int(float(lines[device_id])) << 20  # MiB
    except (IndexError, ValueError):
        return None


def gpu_free_bytes(device_id: int) -> int | None:
    """Free memory of a CUDA device from nvidia-smi (ships with the driver); None where unknown."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi_free(out, device_id)


def _available_memory() -> int:
    """Bytes of memory this process may still take; a large number where unknown.

    Linux's MemAvailable counts the page cache the kernel can drop, which MemFree (sysconf's
    SC_AVPHYS_PAGES) leaves out: on a machine that has been up a while MemFree is a small part of
    what can be used, and tiles sized from it would be needlessly small. A cgroup v2 memory limit
    (containers) caps the figure further.
    """
    available = _meminfo_available()
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 1 << 40
    limit = _cgroup_room()
    return min(available, limit) if limit is not None else available


def _meminfo_available(path: str = "/proc/meminfo") -> int | None:
    """MemAvailable from /proc/meminfo in bytes, or None (not Linux, or a kernel before 3.14)."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) << 10  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room(root: str = "/sys/fs/cgroup", self_cgroup: str = "/proc/self/cgroup") -> int | None:
    """Bytes this process's memory cgroups still allow, the tightest of its own and every parent's
    limit (cgroup v2; v1's memory controller too); None without a limit.

    A cgroup's usage counts its page cache, which the kernel reclaims before it kills anything: the
    inactive file pages are subtracted, as MemAvailable does for the machine. A container (or Slurm
    job, or ``systemd-run -p MemoryMax``) that goes over its limit is killed, not told it is out of memory,
    so the tile engine's retry with smaller tiles never gets a chance: the budget must respect it.
    """
    try:
        with open(self_cgroup, encoding="ascii") as f:
            entries = [line.strip().split(":", 2) for line in f if line.count(":") >= 2]
    except OSError:
        return None
    rooms = []
    for _, controllers, path in entries:
        if controllers == "":  # v2: one hierarchy, limits on each level
            files = ("memory.max", "memory.current", "inactive_file")
            base = root
        elif "memory" in controllers.split(","):  # v1: the memory controller's own hierarchy
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
            base = os.path.join(root, "memory")
        else:
            continue
        base = os.path.normpath(base)
        folder = os.path.normpath(os.path.join(base, path.lstrip("/")))
        if os.path.commonpath([base, folder]) != base:
            # a cgroup outside this cgroup namespace's root shows as "/../...": its files are not here
            continue
        while True:
            room = _cgroup_level_room(folder, *files)
            if room is not None:
                rooms.append(room)
            if folder == base:
                break
            folder = os.path.dirname(folder)
    return min(rooms) if rooms else None


def _cgroup_level_room(folder: str, limit_file: str, usage_file: str, inactive_key: str) -> int | None:
    """One cgroup's limit minus its usage less reclaimable page cache; None where it has no limit."""
    try:
        with open(os.path.join(folder, limit_file), encoding="ascii") as f:
            limit = f.read().strip()
        if limit == "max" or int(limit) >= 1 << 60:  # v1 writes "no limit" as a huge number
            return None
        with open(os.path.join(folder, usage_file), encoding="ascii") as f:
            usage = int(f.read().strip())
        inactive = 0
        with contextlib.suppress(OSError, ValueError), open(os.path.join(folder, "memory.stat"), encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == inactive_key:
                    inactive = int(value)
        return max(0, int(limit) - max(0, usage - inactive))
    except (OSError, ValueError):
        return None


def fit_profile(info: BackendInfo, tile: int, pad: int, batch: int) -> tuple[int, int, str | None]:
    """Clamp tile and batch to an engine's largest input profile; say why when something changed."""
    if info.max_input is None:
        return tile, batch, None
    max_n, max_h, max_w = info.max_input
    limit = min(max_h, max_w) - 2 * pad
    if limit < MIN_TILE:
        raise UsageError(
            f"--tile-pad {pad} leaves no room for a {MIN_TILE} px tile in the engine's largest input "
            f"{max_h}x{max_w}: use a smaller --tile-pad or rebuild the engine with a larger --max-shape"
        )
    new_tile = limit if tile == 0 or tile > limit else tile
    new_batch = min(batch, max_n)
    if (new_tile, new_batch) == (tile, batch):
        return tile, batch, None
    return new_tile, new_batch, (
        f"the engine's profile takes at most {max_n}x{max_h}x{max_w}: using tile {new_tile}, batch {new_batch}"
    )


def fit_fixed(size: tuple[int, int], pad: int) -> tuple[int, int, str]:
    """(tile, pad, notice) for a model that takes only ``size`` inputs: every window is exactly that.

    The pad shrinks when ``size`` leaves no room for a MIN_TILE core; batches are of one tile, as
    such exports usually fix the batch size too. Backends refuse non-square sizes at load
    (``check_fixed_size``): tiles are square.
    """
    side = size[0]
    new_pad = min(pad, max(0, (side - MIN_TILE) // 2))
    tile = side - 2 * new_pad
    return tile, new_pad, f"the model takes only {side}x{side} inputs: using tile {tile}, tile pad {new_pad}, batch 1"


def pad_for_min_input(info: BackendInfo, size: tuple[int, int], pad: int) -> int:
    """A border pad large enough that an image smaller than the engine's smallest profile still fits it."""
    if info.min_input is None:
        return pad
    _, min_h, min_w = info.min_input
    return max(pad, -(-(min_h - size[0]) // 2), -(-(min_w - size[1]) // 2))


NON_FINITE = "the model produced NaN or infinite values (broken weights?); nothing written"
CONSTANT = "the model produced a constant image for a non-constant input (broken weights?); nothing written"


@dataclass
class ImageWork:
    """One image in flight: its model planes, their output buffers and how many tiles are still out."""

    key: Hashable
    decoded: Decoded
    scale: int
    pad: int  # context around each tile, from its neighbours
    multiple: int = 1  # the model's size multiple: tiles are aligned to it
    border: int = 0  # reflect padding at the image's outer border (see tiling.border_pad)
    fit: int = 0  # a fixed-size model's window: smaller images are reflect-padded up to it, then cropped
    tile: int = 0
    outputs: list[np.ndarray] = field(default_factory=list)
    remaining: int = 0
    # Whether any tile's input / output so far holds more than one value (see TileEngine._check).
    input_varies: bool = False
    output_varies: bool = False
    total: int = 0  # tiles of every plane at the current tile size
    _padded: list[np.ndarray] = field(default_factory=list)

    def start(self, tile: int) -> list[tiling.TileJob]:
        """(Re)lay out the tiles at ``tile`` px; return every tile job of every plane."""
        h, w = self.laid_out_size
        planes = self.decoded.planes()
        if not self._padded:
            self._padded = [tiling.pad_image(self._fitted(p), self.border, self.multiple) for p in planes]
            # One integer buffer per plane for the whole run: no float copy of the upscaled image.
            self.outputs = [np.empty((h * self.scale, w * self.scale, 3), self.decoded.dtype) for _ in planes]
        self.tile = tile
        self.input_varies = self.output_varies = False
        # a fixed-size model takes windows of exactly its input size, never smaller equal tiles
        grid = tiling.tile_grid(h, w, tile, self.pad, self.multiple, self.border, equal=not self.fit)
        jobs = [
            tiling.TileJob((self.key, i), t, tiling.extract_window(padded, t))
            for i, padded in enumerate(self._padded) for t in grid
        ]
        self.remaining = self.total = len(jobs)
        return jobs

    @property
    def laid_out_size(self) -> tuple[int, int]:
        """The image's size, raised to at least ``fit`` on each axis."""
        h, w = self.decoded.size
        return max(h, self.fit), max(w, self.fit)

    def _fitted(self, plane: np.ndarray) -> np.ndarray:
        h, w = self.laid_out_size
        extra = [(0, h - plane.shape[0]), (0, w - plane.shape[1])] + [(0, 0)] * (plane.ndim - 2)
        return np.pad(plane, extra, mode="reflect") if any(e for _, e in extra) else plane

    def crop_outputs(self) -> None:
        """Drop what padding up to ``fit`` added: the outputs are then the image's own size."""
        h, w = self.decoded.size
        if (h, w) != self.laid_out_size:
            self.outputs = [np.ascontiguousarray(o[: h * self.scale, : w * self.scale]) for o in self.outputs]

    @property
    def done(self) -> bool:
        return self.remaining == 0

    @property
    def tiles_done(self) -> int:
        return self.total - self.remaining

    def release_inputs(self) -> None:
        self._padded = []


class TileEngine:
    """Runs tiles of many images through one backend, batch by batch.

    ``on_done(work)`` is called for each finished image, ``on_fail(work, message)`` for an image the
    model cannot process; ``say`` gets the one-time notices (tile halved after an out-of-memory).
    ``on_tiles(work)`` reports progress within an image: once its tiles are laid out and after every
    batch that advanced it (``work.tiles_done`` of ``work.total``); a large image takes many batches.
    Tile, pad and batch default to ``RunOptions``' values, so the engine alone tiles like ``esrgan-run``.
    With ``tile="auto"`` an image whose whole window fits the memory budget runs whole (``tile_for``):
    tiles only add work, their context; larger images get the largest square tile the budget allows.
    """

    def __init__(
        self,
        backend: Backend,
        tile: int | str = RunOptions.tile,
        tile_pad: int = RunOptions.tile_pad,
        batch: int = RunOptions.batch,
        *,
        on_done: Callable[[ImageWork], None],
        on_fail: Callable[[ImageWork, str], None],
        say: Callable[[str], None] = lambda line: None,
        on_tiles: Callable[[ImageWork], None] = lambda work: None,
        max_in_flight: int = 4,
    ) -> None:
        self.backend = backend
        self.scale = backend.scale
        self.pad = tile_pad
        max_batch = getattr(backend, "max_batch", None)
        if max_batch is not None and batch > max_batch and not getattr(backend, "fixed_size", None):
            say(f"the model takes batches of at most {max_batch}: using batch {max_batch}")
            batch = max_batch
        self.batch = batch
        # With --tile auto, an image whose whole window fits the memory budget runs whole (0: never).
        self.whole_pixels = 0
        if tile == "auto":
            spec = getattr(getattr(backend, "metadata", None), "spec", None)
            per_pixel = bytes_per_input_pixel(spec, backend.scale) * MEMORY_FACTORS.get(backend.info.name, 1.0)
            # Every window of a batch is in memory at once: each gets its share of the budget.
            budget = None if backend.info.max_input is not None else memory_budget(backend.info) // max(1, batch)
            tile = auto_tile(backend.info, tile_pad, per_pixel, budget)
            self.whole_pixels = whole_image_pixels(backend.info, tile_pad, per_pixel, budget)
        if int(tile) < 0 or tile_pad < 0 or batch < 1:
            raise ValueError("tile and tile pad must be >= 0 and batch >= 1")
        self.fixed = getattr(backend, "fixed_size", None)
        if self.fixed:
            self.tile, self.pad, why = fit_fixed(self.fixed, tile_pad)
            self.batch = 1
        else:
            self.tile, self.batch, why = fit_profile(backend.info, int(tile), tile_pad, batch)
        if why:
            say(why)
        self.on_done, self.on_fail, self.say, self.on_tiles = on_done, on_fail, say, on_tiles
        self.max_in_flight = max_in_flight
        self.batcher = tiling.TileBatcher(self.batch)
        self.in_flight: dict[Hashable, ImageWork] = {}
        self._oom_said = False

    @property
    def shrunk(self) -> bool:
        """Whether an out-of-memory error made the tile smaller than asked."""
        return self._oom_said

    # ---- feeding ----------------------------------------------------------------------------
    def submit(self, key: Hashable, decoded: Decoded, more_coming: bool = False) -> None:
        """Queue an image. With ``more_coming`` a partial batch may wait for the next image's tiles."""
        border = pad_for_min_input(self.backend.info, decoded.size, tiling.border_pad(self.pad, *decoded.size))
        # A fixed-size model's windows are exactly its input: an image smaller than one is padded up to it.
        fit = self.fixed[0] if self.fixed else 0
        work = ImageWork(key, decoded, self.scale, self.pad, getattr(self.backend, "size_multiple", 1), border, fit)
        self.in_flight[key] = work
        self._guarded(lambda: self._feed(work, self.tile_for(work)))
        if not more_coming or len(self.in_flight) >= self.max_in_flight:
            self.flush()

    def flush(self) -> None:
        """Run every queued tile now."""
        def run_all() -> None:
            for group in list(self.batcher.flush()):
                self._run(group)

        self._guarded(run_all)

    def tile_for(self, work: ImageWork) -> int:
        """The tile for this image: 0 (whole) under ``--tile auto`` when its whole window fits the budget."""
        if self.fixed:  # every window is the model's fixed input
            return self.tile
        h, w = work.decoded.size
        side = 2 * work.border + work.multiple - 1
        return 0 if (h + side) * (w + side) <= self.whole_pixels else self.tile

    def _feed(self, work: ImageWork, tile: int) -> None:
        jobs = work.start(tile)
        self.on_tiles(work)
        for job in jobs:
            group = self.batcher.add(job)
            if group:
                self._run(group)

    # ---- running ----------------------------------------------------------------------------
    def _run(self, group: list[tiling.TileJob]) -> None:
        """Run one batch and stitch each tile; every backend's output is checked here.

        NaN/inf would be clipped to black and written as a valid image (which a rerun then skips as
        complete), so such a tile fails its image. An image whose every tile came out constant although
        its input was not is what broken weights give (zeroed, or NaN folded into a constant); it fails
        too. The second check is per image, not per tile: a nearly flat tile may legitimately come
        out flat at reduced precision.
        """
        batch = np.stack([job.window for job in group])
        try:
            needs = getattr(self.backend, "size_requirements", None)
            out = tiling.run_fitted(self.backend.run, batch, self.scale, needs)
        except OutOfMemoryError:
            raise
        except BackendError as exc:
            self._fail_keys({job.key[0] for job in group}, str(exc))
            return
        expected = (len(group), 3, batch.shape[2] * self.scale, batch.shape[3] * self.scale)
        if out.shape != expected:
            self._fail_keys({job.key[0] for job in group},
                            f"the model returned {out.shape} for a {batch.shape} batch, expected {expected}")
            return
        advanced: dict[Hashable, ImageWork] = {}
        for job, res in zip(group, out, strict=True):
            key, plane = job.key
            work = self.in_flight.get(key)
            if work is None:
                continue  # failed meanwhile
            if not np.isfinite(res).all():
                self._fail_keys({key}, NON_FINITE)
                advanced.pop(key, None)
                continue
            tiling.stitch(work.outputs[plane], res, job.tile, self.scale)
            if not work.output_varies:
                work.output_varies = bool(res.min() != res.max())
                work.input_varies = work.input_varies or bool(job.window.min() != job.window.max())
            work.remaining -= 1
            if work.done:
                del self.in_flight[key]
                advanced.pop(key, None)
                work.release_inputs()
                work.crop_outputs()
                if work.input_varies and not work.output_varies:
                    self.on_fail(work, CONSTANT)
                else:
                    self.on_done(work)
            else:
                advanced[key] = work
        for work in advanced.values():
            self.on_tiles(work)

    def _fail_keys(self, keys: set[Hashable], message: str) -> None:
        for key in keys:
            work = self.in_flight.pop(key, None)
            if work is not None:
                self.on_fail(work, message)

    def _guarded(self, action: Callable[[], None]) -> None:
        """Run ``action``; on out-of-memory halve the tile and redo every image still in flight."""
        while True:
            try:
                action()
                return
            except OutOfMemoryError as exc:
                shrunk = self._shrink()
                self.batcher = tiling.TileBatcher(self.batch)
                if not shrunk:
                    where = (f"the model takes only {self.fixed[0]}x{self.fixed[1]} inputs, which cannot shrink"
                             if self.fixed else f"even with {self._windows()}, one at a time")
                    self._fail_keys(set(self.in_flight), f"{exc} ({where})")
                    return
                pending = [w for w in self.in_flight.values() if not w.done]

                def action(pending: list[ImageWork] = pending) -> None:
                    for work in pending:
                        if work.key in self.in_flight:
                            self._feed(work, self.tile_for(work))
                    for group in list(self.batcher.flush()):
                        self._run(group)

    def _shrink(self) -> bool:
        """After an out-of-memory: halve the tile (down to MIN_TILE, which is tried too), then the batch.
        False when neither can shrink (or the model takes one input size only)."""
        if self.fixed:
            return False
        if self.tile == 0:
            current = max([max(w.decoded.size) for w in self.in_flight.values()] or [2 * MIN_TILE])
        else:
            current = self.tile
        new = max(MIN_TILE, current // 2)
        if new < current:
            self.whole_pixels = 0  # the budget was too optimistic: tile from now on
            if not self._oom_said:
                old = "the whole image" if self.tile == 0 else f"tile {self.tile}"
                self.say(f"out of memory with {old}: halving the tile to {new} px and retrying (said once)")
                self._oom_said = True
            self.tile = new
            return True
        if self.batch > 1:
            self.batch //= 2
            self.say(f"out of memory with {self._windows()}: batch lowered to {self.batch}")
            self._oom_said = True
            return True
        return False

    def _windows(self) -> str:
        return "whole images" if self.tile == 0 else f"{self.tile} px tiles"
