"""Measure, once per model and machine, how far and how fast OpenVINO's reduced precisions run
against its FP32 path.

``--backend auto`` may only pick BF16 or INT8 when it is within its threshold (>= 45 dB) for *this*
model, and only when it is faster *here*: BF16 keeps 8 mantissa bits and INT8 rounds every
activation, and what that costs depends on the weights; how much they save depends on the model's
shape as much as on the CPU (OpenVINO BF16 ran the paper-size model about 2x faster than FP32 on an
AMD EPYC with AVX-512 BF16, but 0.66x as fast on an Intel Xeon whose flags list AVX-512 BF16 too, and
the built-in 32-channel model 0.7x there). The check runs the model at FP32, in the BF16
layouts (CPUs with native BF16) and as its INT8 companion file (``esrgan.metadata.int8_companion``,
when one exists for this model) on a real photograph (a 64x64 crop of scikit-image's astronaut,
NASA, public domain, shipped as package data so the torch-free runtime needs nothing else) and on a
synthetic test card (``synthetic_card``: graphics, line art, flat saturated colour), compares with
``esrgan.parity.compare`` (the worse of the two counts), times a few interleaved runs of each on the
photograph, and caches the figures next to OpenVINO's compiled-model cache, keyed by the files'
digests (``esrgan.hashing.model_sha256``: with an ONNX file's external data), the CPU, the OpenVINO
version, the thread count and the measuring code (``parity_cache_file``).
Later starts read the figures back.

The photograph may have been among an INT8 file's calibration images, so the INT8 figure used is the
lower of this measurement and the held-out parity export recorded in the file (``esrgan.parity``).

Why the card: people upscale drawings, screenshots and anime as well as photographs, and INT8 files
calibrated on photographs clip such content. The built-in model's INT8 file, 47.6 dB from FP32 on
held-out photographs, was 17.6 dB on the card (Real-ESRGAN x4plus's: 36.1 dB photograph, 18.4 dB card)
and 40.0-43.3 dB on whole synthetic images of scikit-image (horse, chessboard, colour wheel, logo);
BF16 kept 50.9 dB or more on the card for both models, so its choice is unchanged. A photograph
alone would let ``auto`` run INT8 where it breaks the picture.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from esrgan.cache import cache_problem, keep_record, read_record
from esrgan.elapsed import heartbeat, timed
from esrgan.errors import EsrganError, OutOfMemoryError, first_line
from esrgan.hashing import code_digest, model_sha256
from esrgan.metadata import PARITY, PRECISION, SOURCE_SHA256, int8_companion, onnx_metadata
from esrgan.parity import Parity, compare, worst
from esrgan.runtime.cpu_features import (
    BF16_LAYOUT_KEYS,
    FP32_KEY,
    INT8_KEY,
    OPENVINO,
    CpuChoice,
    CpuFeatures,
    choose_cpu_backend,
    probe_cpu_features,
)

PARITY_TILE = Path(__file__).parent / "data" / "parity_tile.png"
# Timed runs of each path after its first (untimed) run; the median is kept. Interleaved, so a burst
# of load on a shared machine slows every path alike.
TIMED_RUNS = 3
# What a path that does not work here raises: the backends' own errors (compile, run, out of memory),
# OpenVINO's RuntimeError, compare's ValueError on an output of another shape.
PATH_FAILURES = (EsrganError, RuntimeError, ValueError, MemoryError)
# How the progress lines name each path.
PATH_NAMES = {FP32_KEY: "FP32", BF16_LAYOUT_KEYS["head"]: "BF16 (first conv FP32)",
              BF16_LAYOUT_KEYS["ends"]: "BF16 (first conv and tail FP32)", BF16_LAYOUT_KEYS["all"]: "BF16",
              INT8_KEY: "the INT8 file"}


def load_parity_tile(path: str | os.PathLike[str] = PARITY_TILE) -> np.ndarray:
    """The photograph as a (1, 3, H, W) float32 batch in [0, 1]."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


def synthetic_card(size: int = 64) -> np.ndarray:
    """A synthetic (1, 3, size, size) float32 batch in [0, 1], made here (no file): an 8 px black and
    white checkerboard, six flat saturated colour sectors, a white disc on black and 1 px black lines on
    white, one per quadrant: the hard edges and flat extremes of graphics that photographs lack."""
    q = size // 2
    yy, xx = np.mgrid[0:q, 0:q].astype(np.float32)
    img = np.zeros((size, size, 3), np.float32)
    img[:q, :q] = (((yy // 8) + (xx // 8)) % 2)[..., None]
    sector = np.floor((np.arctan2(yy - q / 2, xx - q / 2) / (2 * np.pi) + 0.5) * 6) % 6
    img[:q, q:] = np.stack([np.clip(np.abs(sector - 3) - 1, 0, 1), np.clip(2 - np.abs(sector - 2), 0, 1),
                            np.clip(2 - np.abs(sector - 4), 0, 1)], -1)
    img[q:, :q] = (((yy - q / 2) ** 2 + (xx - q / 2) ** 2) < (0.35 * q) ** 2)[..., None]
    lines = np.ones((size - q, size - q), np.float32)
    lines[::4, :] = 0
    lines[:, ::6] = 0
    img[q:, q:] = lines[..., None]
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])


@dataclass(frozen=True)
class PathFigures:
    """Per path key (BF16_LAYOUT_KEYS values, FP32_KEY, INT8_KEY): parity vs FP32 and seconds per run;
    ``failed``: the reduced-precision paths that could not compile or run here, with OpenVINO's reason."""

    parity: dict[str, Parity]
    seconds: dict[str, float]
    failed: dict[str, str] = field(default_factory=dict)
    # a failure that may not recur (out of memory): the figures are used this once, not cached
    transient: bool = False

    def to_json(self) -> dict:
        return {"figures": {k: p.to_dict() for k, p in self.parity.items()}, "seconds": self.seconds,
                "failed": self.failed}

    @classmethod
    def from_json(cls, record: dict) -> PathFigures:
        return cls({k: Parity.from_dict(v) for k, v in record["figures"].items()},
                   {k: float(v) for k, v in record["seconds"].items()},
                   {k: str(v) for k, v in record.get("failed", {}).items()})


def int8_file_for(model_path: str | os.PathLike[str]) -> Path | None:
    """The model's INT8 companion when it exists and was quantised from this very model (same source
    checkpoint in the metadata, FP32 source precision); None otherwise, so a stale or foreign
    ``*_int8.onnx`` beside a model is never run in its place."""
    src = Path(model_path)
    candidate = int8_companion(src)
    if src.suffix.lower() != ".onnx" or not candidate.is_file():
        return None
    mine, theirs = onnx_metadata(src), onnx_metadata(candidate)
    if theirs.get(PRECISION) != "int8" or not mine.get(SOURCE_SHA256) or theirs.get(SOURCE_SHA256) != mine[SOURCE_SHA256]:
        return None
    return candidate


def recorded_int8_parity(int8_path: Path) -> Parity | None:
    """The held-out parity esrgan-export wrote into an INT8 file (None when absent or unreadable)."""
    try:
        record = json.loads(onnx_metadata(int8_path)[PARITY])
        return Parity.from_dict({f.name: record[f.name] for f in fields(Parity)})
    except (KeyError, ValueError, TypeError):
        return None


# oneDNN's documented switch that caps the instruction set its kernels use (OpenVINO's CPU plugin and
# PyTorch obey it): with it, the same CPU runs other kernels, so its figures are other figures.
ISA_CAP_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def isa_cap() -> str | None:
    """The instruction-set cap set for oneDNN in this process's environment, if any."""
    cap = next((os.environ[name] for name in ISA_CAP_ENV if os.environ.get(name)), None)
    return cap.strip().upper() if cap else None  # oneDNN reads it case-insensitively


def measuring_digest() -> str:
    """A digest of what every measured parity figure depends on besides the model and the machine:
    this module (the images, how they are run and timed), the path keys and thresholds
    (``cpu_features``), the metric (``esrgan.parity``), the size fitting (``tiling``) and the shipped
    photograph. Part of each cached record's key, so that a change to any of them measures again."""
    from esrgan import parity
    from esrgan.runtime import cpu_features, tiling

    return code_digest(sys.modules[__name__], cpu_features, parity, tiling, extra=PARITY_TILE.read_bytes().hex())


def thread_key(threads: int | None) -> str:
    """The thread count a measurement ran with, for a cache key: an explicit ``--threads``, or the
    engine's default on the CPUs this process may use (a Slurm job's share, a container's cpuset)."""
    if threads:
        return str(threads)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return f"default/{usable}"


def parity_cache_file(
    model_path: str | os.PathLike[str], features: CpuFeatures, cache_dir: Path, int8_path: Path | None = None,
    threads: int | None = None,
) -> Path:
    """One JSON file per (model, INT8 companion, CPU, OpenVINO version, thread count, measuring code):
    the CPU's kernels do the rounding, the thread count changes which path is fastest, and the code
    here and in the backend (the BF16 graph cut) decides what was measured."""
    import openvino

    from esrgan.runtime.backends import openvino_backend, openvino_split

    int8 = model_sha256(int8_path) if int8_path else "-"
    code = code_digest(openvino_backend, openvino_split, extra=measuring_digest())
    key = (f"{model_sha256(model_path)}|{int8}|{features.model}|{' '.join(features.relevant_flags())}|"
           f"{openvino.__version__}|{isa_cap() or '-'}|threads={thread_key(threads)}|{code}")
    return cache_dir / "parity" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def measure_cpu_paths(
    model_path: str | os.PathLike[str],
    *,
    bf16: bool = True,
    int8_path: str | os.PathLike[str] | None = None,
    images: Sequence[np.ndarray] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> PathFigures:
    """Parity against OpenVINO's FP32 output, the worst over ``images`` (default: the photograph and the
    synthetic card), and seconds per run on the first image, of the BF16 layouts (``bf16``) and of the
    INT8 file (``int8_path``); FP32 is timed too. ``progress`` gets a line per step (the paper-size
    model takes 18 s on 2 idle cores). Only FP32 goes into OpenVINO's compiled-model cache: the other
    paths are compiled to be measured, and most of them are not run afterwards (x4plus's two BF16
    layouts would add 136 MB to the cache on a CPU where FP32 wins).

    BF16 keys are ``BF16_LAYOUT_KEYS`` values: the ``head`` and ``ends`` layouts, each under the layout
    the backend really ran (a model that cannot be cut runs all layers in BF16: ``openvino:bf16``).
    """
    from esrgan.runtime.backends.base import check_rgb
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend

    images = [load_parity_tile(), synthetic_card()] if images is None else list(images)
    x = images[0]
    paths: list[tuple[Path, str, str]] = [(Path(model_path), "fp32", "head")]
    if bf16:
        paths += [(Path(model_path), "bf16", "head"), (Path(model_path), "bf16", "ends")]
    if int8_path is not None:
        paths.append((Path(int8_path), "fp32", "head"))  # an INT8 file: OpenVINO runs its QDQ convs in INT8
    runs: dict[str, Callable[[], np.ndarray]] = {}
    refs: list[np.ndarray] = []  # FP32's outputs, the first path's
    parity: dict[str, Parity] = {}
    failed: dict[str, str] = {}
    transient = False
    backends = []
    say = progress or (lambda _line: None)

    def drop(key: str, exc: BaseException) -> None:
        # A reduced precision that cannot compile or run here, or returns no image of the right shape
        # (seen under a oneDNN ISA cap that OpenVINO's capability list does not reflect: BF16 failed to
        # compile one model and returned an empty output for another; a broken INT8 file) is one path
        # fewer, not a failed run: FP32 remains. FP32's own failure is the model's and is raised, and so
        # are programming errors (other exception types).
        nonlocal transient
        if key == FP32_KEY:
            raise exc
        failed[key] = first_line(exc)
        transient |= isinstance(exc, (OutOfMemoryError, MemoryError))  # may pass another time: not cached
        runs.pop(key, None)
        parity.pop(key, None)
        say(f"{PATH_NAMES[key]}: failed here ({failed[key]})")

    try:
        for path, precision, layout in paths:
            is_int8 = path != Path(model_path)
            planned = INT8_KEY if is_int8 else FP32_KEY if precision == "fp32" else BF16_LAYOUT_KEYS[layout]
            step = f"{PATH_NAMES[planned]}: compiling, then running the photograph and the test card"
            say(step)
            try:
                with heartbeat(say, step):  # a step takes seconds, more on a loaded machine
                    backend = OpenVinoBackend(path, precision=precision, threads=threads, mode="latency",
                                              cache_dir=cache_dir if planned == FP32_KEY else "", bf16_layout=layout)
                    backends.append(backend)
                    if planned == FP32_KEY:  # the measuring images are RGB, as the tiler's windows are
                        check_rgb(backend, str(model_path))
                    key = planned if is_int8 or precision == "fp32" else BF16_LAYOUT_KEYS[backend.info.extra["bf16_layout"]]
                    if key not in runs:  # a model that cannot be cut runs "all" for both layouts: run it once
                        outs = [fitted_run(backend, img) for img in images]  # the first run of x is the untimed one
                        if key == FP32_KEY:
                            refs = outs
                        else:  # an output of another shape raises here: that path is broken, not the run
                            parity[key] = worst([compare(r, o) for r, o in zip(refs, outs, strict=True)])
                        runs[key] = functools.partial(fitted_run, backend, x)
            except PATH_FAILURES as exc:
                drop(planned, exc)
        times: dict[str, list[float]] = {key: [] for key in runs}
        for round_ in range(TIMED_RUNS):
            step = f"timing {', '.join(PATH_NAMES[k] for k in runs)}: round {round_ + 1} of {TIMED_RUNS}"
            say(step)
            with heartbeat(say, step):
                for key, run in list(runs.items()):
                    start = time.perf_counter()
                    try:
                        run()
                    except PATH_FAILURES as exc:
                        drop(key, exc)
                        continue
                    times[key].append(time.perf_counter() - start)
    finally:
        for backend in backends:
            backend.close()
    return PathFigures(parity, {key: float(np.median(times[key])) for key in runs}, failed, transient)


def fitted_run(backend, image: np.ndarray) -> np.ndarray:  # backend: any Backend
    """The backend's output for ``image``, padded to the model's size requirements; a model that takes
    only one input size (some third-party exports) runs the image as windows of that size covering all
    of it, edge-padded at the far borders. Seams between windows do not matter here: every path
    compared sees the same windows."""
    from esrgan.runtime.tiling import run_fitted

    if not backend.fixed_size:
        return run_fitted(backend.run, image, backend.scale, backend.size_requirements)
    (h, w), (height, width), s = backend.fixed_size, image.shape[2:], backend.scale
    padded = np.pad(image, ((0, 0), (0, 0), (0, -height % h), (0, -width % w)), mode="edge")
    out = None
    for top in range(0, padded.shape[2], h):
        for left in range(0, padded.shape[3], w):
            y = run_fitted(backend.run, padded[:, :, top : top + h, left : left + w], s, backend.size_requirements)
            if out is None:
                out = np.zeros((image.shape[0], y.shape[1], padded.shape[2] * s, padded.shape[3] * s), y.dtype)
            out[:, :, top * s : (top + h) * s, left * s : (left + w) * s] = y
    return out[:, :, : height * s, : width * s]


def cached_path_figures(
    model_path: str | os.PathLike[str],
    features: CpuFeatures,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    int8_path: Path | None = None,
    threads: int | None = None,
    say: Callable[[str], None] | None = None,
) -> PathFigures:
    """The cached figures for this model (and INT8 companion) on this machine, measuring (and caching)
    them the first time."""
    from esrgan.runtime.backends.openvino_backend import default_cache_dir

    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    record = parity_cache_file(model_path, features, root, int8_path, threads)
    known = read_record(record)
    if known is not None:
        try:
            return PathFigures.from_json(known)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # a damaged record is measured again and overwritten
    unkept = cache_problem(record.parent)
    progress = timed(lambda line: say(f"  {line}")) if say else None
    if say is not None:
        what = " and ".join(p for p, on in (("BF16", features.bf16_native), ("INT8", int8_path)) if on)
        where = f"once; cached in {record.parent}" if unkept is None else f"not kept: {unkept}"
        say(f"measuring {what} against FP32 for this model on this CPU ({where})")
    figures = measure_cpu_paths(model_path, bf16=features.bf16_native, int8_path=int8_path, cache_dir=root,
                                threads=threads, progress=progress)
    if progress is not None:
        progress("measured")
    if figures.transient or unkept is not None:  # the figures serve this run only
        return figures
    payload = {"model": str(model_path), "int8_model": str(int8_path) if int8_path else None,
               "cpu": features.describe(), **figures.to_json()}
    keep_record(record, payload, say)
    return figures


def select_cpu_backend(
    model_path: str | os.PathLike[str],
    model_precision: str,
    available_backends: Collection[str],
    *,
    features: CpuFeatures | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    int8_requested: bool = False,
    say: Callable[[str], None] | None = None,
) -> CpuChoice:
    """What ``--backend auto`` runs without a GPU: measures BF16 and INT8 first where they could win."""
    features = probe_cpu_features() if features is None else features
    figures = PathFigures({}, {})
    int8_path = None
    if OPENVINO in available_backends and model_precision == "fp32" and not int8_requested:
        int8_path = int8_file_for(model_path)
        if features.bf16_native or int8_path is not None:
            figures = cached_path_figures(model_path, features, cache_dir, int8_path=int8_path, threads=threads,
                                          say=say)
    parity = dict(figures.parity)
    unrecorded = ""
    if int8_path is not None and INT8_KEY in parity:
        recorded = recorded_int8_parity(int8_path)
        if recorded is None:  # esrgan-export always records it: the file's metadata was changed
            del parity[INT8_KEY]
            unrecorded = f"; {int8_path.name} records no held-out parity, so it is not used"
        elif recorded.psnr_db < parity[INT8_KEY].psnr_db:  # the held-out figure, if lower
            parity[INT8_KEY] = recorded
    choice = choose_cpu_backend(features, available_backends, model_precision, parity,
                                int8_requested=int8_requested, measured_seconds=figures.seconds,
                                failed_paths=figures.failed)
    choice = replace(choice, reason=choice.reason + unrecorded)
    if choice.precision == "int8" and int8_path is not None and model_precision == "fp32":
        choice = replace(choice, model=str(int8_path), reason=f"{int8_path.name}: {choice.reason}")
    return choice
