"""OpenVINO backend: the fastest CPU path (BF16 on CPUs that do it natively, INT8 for INT8 files).

Torch-free. Reads our ONNX files directly (OpenVINO's ONNX frontend keeps the ``esrgan.*`` metadata in
the model's ``framework`` rt_info), compiles for the CPU with a compiled-model cache on disk
(OpenVINO's ``CACHE_DIR``: a second start loads the compiled blob instead of compiling), and runs a
batch of tiles either as one request or one request per tile, several in flight over CPU streams.

Why these settings (measured in benchmarks/reports/cpu/report.md):
* ``INFERENCE_PRECISION_HINT``: OpenVINO's CPU plugin already defaults to BF16 on CPUs with AVX-512
  BF16/AMX, so we always set it explicitly, so that ``fp32`` really is FP32 and ``auto`` is stated.
* Several tiles in flight, two ways: ``mode="latency"`` (default) sends the whole batch of tiles as
  ONE request compiled with the ``LATENCY`` hint (all threads share each convolution over the N
  tiles); ``mode="throughput"`` compiles with the ``THROUGHPUT`` hint, which splits the cores into
  streams (on 2 cores: 2 streams x 1 thread), and runs the N tiles as N requests from a small thread
  pool (one request chain per stream; ``infer`` releases the GIL); a 1-tile batch then uses a
  ``LATENCY``-compiled model so that no core idles. Measured on this 2-core machine (4 tiles of 64x64,
  paper model, BF16, 2 threads, machine loaded by other jobs): one batched request 0.39 tiles/s,
  2 streams 0.33, tiles one by one 0.30, hence the default. Both modes share the compiled-model cache.
"""

from __future__ import annotations

import functools
import os
import queue
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from esrgan.cache import cache_dir
from esrgan.errors import (
    BackendError,
    DependencyError,
    ModelError,
    ModelShapeError,
    OutOfMemoryError,
    UsageError,
    install_hint,
)
from esrgan.metadata import PRECISION, parse_metadata
from esrgan.native_output import native_output_dropped
from esrgan.runtime.backends.base import (
    IMAGE_CHANNELS,
    Backend,
    BackendInfo,
    check_batch,
    check_fixed_size,
    check_io,
    probe_scale,
)
from esrgan.runtime.backends.openvino_split import BF16_LAYOUTS, LAYOUT_NOTES, split_for_bf16

PRECISIONS = ("auto", "fp32", "bf16")
MODES = ("throughput", "latency")
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def _static(shape: object, i: int) -> int | None:
    """Dimension ``i`` of a 4-D OpenVINO partial shape when fixed, else None."""
    rank = shape.rank  # type: ignore[attr-defined]
    if not (rank.is_static and rank.get_length() == 4 and shape[i].is_static):  # type: ignore[index]
        return None
    return int(shape[i].get_length())  # type: ignore[index]


def default_cache_dir() -> Path:
    """Where compiled models and measured parity live: the ``openvino`` folder of the esrgan cache."""
    return cache_dir() / "openvino"


def import_openvino():  # -> the openvino module
    """OpenVINO, or the one-line DependencyError that says how to get it."""
    try:
        import openvino
    except ImportError:
        raise DependencyError(
            f"the openvino backend needs OpenVINO, which is not installed: {install_hint('openvino')}"
        ) from None
    return openvino


@functools.cache
def openvino_core():  # -> ov.Core
    """The one OpenVINO Core of this process, kept until it exits.

    OpenVINO's CPU plugin gives the thread that first uses a Core a signal stack of its own and, when
    that Core goes, puts back the one it found, but only if its own is still current: Cores that go in
    the order they came (two backends closed first-made first) leave the thread's signal stack pointing
    at unmapped memory, and the next signal handled there (Ctrl-C, a child process ending) kills the
    process with SIGSEGV. One Core that never goes makes that impossible; it is also what OpenVINO
    recommends (a Core holds the loaded plugins). Per-model settings go to ``compile_model``.
    """
    return import_openvino().Core()


def openvino_metadata(model: object) -> dict[str, str]:
    """The ONNX file's metadata_props, which OpenVINO keeps under rt_info['framework']."""
    try:
        framework = model.get_rt_info()["framework"]  # type: ignore[attr-defined]
    except (KeyError, RuntimeError, TypeError):
        return {}
    if not isinstance(framework, dict):  # an ONNX file without metadata_props: an empty OVAny
        return {}
    return {str(k): v.astype(str) for k, v in framework.items()}


def resolve_precision(precision: str, bf16_native: bool, file_precision: str) -> str:
    """What ``auto`` means: BF16 where the CPU does it natively, FP32 elsewhere.

    An INT8 file's quantised convolutions run in INT8 whatever the hint; the hint decides the layers
    kept in higher precision, which we keep FP32 under ``auto`` because they were kept for quality.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"openvino precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if file_precision == "int8":
        return "fp32"
    return "bf16" if bf16_native else "fp32"


class OpenVinoBackend(Backend):
    """An ONNX model compiled by OpenVINO for the CPU.

    ``precision``: ``auto`` (BF16 where the CPU has native BF16, else FP32), ``fp32`` or ``bf16``.
    ``bf16_layout``: which layers BF16 leaves in FP32 (see openvino_split): ``head`` (default: the
    first conv, which sees raw pixels; same speed as all-BF16, measured 3-4 dB closer to FP32),
    ``ends`` (the first conv and the upsampling tail; ~8 % slower, closest) or ``all`` (nothing). ``threads``: CPU threads in all (None: all cores).
    ``mode``: ``latency`` (a batch of tiles is one request on all threads; measured fastest here) or
    ``throughput`` (the tiles of a batch in flight, one per CPU stream). ``streams``: override the number of streams in throughput mode. ``cache_dir``:
    compiled-model cache (None: the default cache folder; "" disables it). ``cpu_features``: an injected
    ``CpuFeatures`` (tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        precision: str = "auto",
        threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        mode: str = "latency",
        streams: int | None = None,
        bf16_layout: str = "head",
        cpu_features: object | None = None,
    ) -> None:
        ov = import_openvino()
        if mode not in MODES:
            raise UsageError(f"openvino mode must be one of {', '.join(MODES)}, got {mode!r}")
        src = Path(path)
        if not src.is_file():
            raise ModelError(f"{src}: no such model file")
        if src.suffix.lower() != ".onnx":
            raise ModelError(f"{src}: the openvino backend reads .onnx files")
        self.core = openvino_core()
        cache = default_cache_dir() if cache_dir is None else (Path(cache_dir) if str(cache_dir) else None)
        if cache is not None:
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError:
                cache = None  # compiled each start instead (about a second); the run itself needs no cache
        self.cache_dir = cache
        self._src = src
        model = self._read()
        meta = parse_metadata(openvino_metadata(model), str(src), require_scale=False)
        check_io(str(src), list(model.inputs), list(model.outputs))
        shape = model.inputs[0].get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() != 4:
            raise ModelShapeError(f"{src}: the model's input has shape {shape}; expected an NCHW image batch")
        if cpu_features is None:
            from esrgan.runtime.cpu_features import probe_cpu_features

            cpu_features = probe_cpu_features()
        file_precision = meta.raw.get(PRECISION, "fp32")
        self.precision = resolve_precision(precision, bool(getattr(cpu_features, "bf16_native", False)),
                                           file_precision)
        self.metadata = meta
        self.size_multiple = meta.size_multiple
        self.size_requirements = meta.size_requirements
        self.scale = meta.scale or 0  # measured below, once compiled, when the file does not state it
        out_shape = model.outputs[0].get_partial_shape()
        self.in_channels = _static(shape, 1) or IMAGE_CHANNELS
        self.out_channels = _static(out_shape, 1)
        self.max_batch = check_batch(str(src), _static(shape, 0))
        self.mode = mode
        # (model, precision) stages run in order; one stage unless BF16 keeps some layers in FP32.
        if bf16_layout not in BF16_LAYOUTS:
            raise UsageError(f"openvino bf16 layout must be one of {', '.join(BF16_LAYOUTS)}, got {bf16_layout!r}")
        self._stages: list[tuple[object, str]] = [(model, self.precision)]
        layout = "all"
        if self.precision == "bf16" and file_precision == "fp32":
            split = split_for_bf16(model.clone, bf16_layout)  # a copy per cut: cheaper than reading the file
            if split is not None:
                self._stages, layout = split, bf16_layout
        self._threads = int(threads) if threads else None
        self._latency: list | None = None  # one request per stage, compiled for latency
        self._pool: queue.SimpleQueue | None = None  # throughput: free request chains, one per stream
        self._executor: ThreadPoolExecutor | None = None
        nstreams = 1
        if mode == "latency":
            compiled = self._compile_latency()
        else:
            compiled = [self._compile(m, p, "THROUGHPUT", streams) for m, p in self._stages]
            nstreams = int(compiled[0].get_property("NUM_STREAMS"))
            self._pool = queue.SimpleQueue()
            for _ in range(max(nstreams, 1)):
                self._pool.put([c.create_infer_request() for c in compiled])
            self._executor = ThreadPoolExecutor(max_workers=max(nstreams, 1), thread_name_prefix="esrgan-ov")
        self.info = BackendInfo(
            name="openvino",
            precision="int8" if file_precision == "int8" else self.precision,
            device="cpu",
            providers=("OpenVINO CPU " + ov.__version__.split("-")[0],),
            extra={
                "inference_precision": self.precision,
                "bf16_layout": layout if self.precision == "bf16" else "none",
                "bf16_layers": LAYOUT_NOTES[layout] if self.precision == "bf16" else "none",
                "file_precision": file_precision,
                "mode": mode,
                "streams": str(nstreams),
                "cache_dir": str(cache) if cache else "",
                "loaded_from_cache": str(all(_loaded_from_cache(c) for c in compiled)).lower(),
            },
        )
        fixed_h, fixed_w = _static(shape, 2), _static(shape, 3)
        self.fixed_size = check_fixed_size(str(src), (fixed_h, fixed_w) if fixed_h and fixed_w else None)
        if meta.scale is None:
            self.scale = probe_scale(self.run, self.in_channels, str(src), self.fixed_size)

    def _read(self):  # -> ov.Model
        try:
            with native_output_dropped(2):
                return self.core.read_model(str(self._src))
        except Exception as exc:
            raise ModelError(f"{self._src}: OpenVINO cannot read it ({openvino_reason(exc)})") from None

    def _compile(self, model: object, precision: str, hint: str, streams: int | None = None):
        config: dict[str, object] = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[precision], "PERFORMANCE_HINT": hint}
        if self._threads:
            config["INFERENCE_NUM_THREADS"] = self._threads
        if self.cache_dir is not None:
            config["CACHE_DIR"] = str(self.cache_dir)  # per model: the Core is shared (openvino_core)
        if streams and hint == "THROUGHPUT":
            config["NUM_STREAMS"] = int(streams)
        try:
            return self.core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise ModelError(f"{self._src}: OpenVINO cannot compile it for the CPU ({openvino_reason(exc)})") from None

    def _compile_latency(self) -> list:
        """The stages compiled for one request on all threads (for 1-tile batches); made on first use."""
        compiled = [self._compile(m, p, "LATENCY") for m, p in self._stages]
        self._latency = [c.create_infer_request() for c in compiled]
        return compiled

    def run(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 4:
            raise BackendError(f"expected an NCHW batch, got shape {x.shape}")
        in_flight = self._pool is not None and x.shape[0] > 1
        if self._latency is None and not in_flight:
            self._compile_latency()
        try:
            if not in_flight:
                return _run_chain(self._latency, x)  # type: ignore[arg-type]
            return self._run_in_flight(x)
        except MemoryError:
            raise OutOfMemoryError(f"OpenVINO ran out of memory on a {x.shape} batch") from None
        except Exception as exc:
            raise BackendError(f"OpenVINO failed on a {x.shape} batch: {openvino_reason(exc)}") from None

    def _run_in_flight(self, x: np.ndarray) -> np.ndarray:
        """One tile per free request chain, as many in flight as there are CPU streams; input order kept."""
        assert self._pool is not None and self._executor is not None
        pool = self._pool

        def one(tile: np.ndarray) -> np.ndarray:
            chain = pool.get()
            try:
                return _run_chain(chain, tile)
            finally:
                pool.put(chain)

        return np.concatenate(list(self._executor.map(one, [x[i : i + 1] for i in range(x.shape[0])])), axis=0)

    def close(self) -> None:
        """Release now and in dependency order: worker threads, requests, then compiled models and
        graphs, rather than whenever (and in whatever order) garbage collection gets to them. The Core
        is the process's own (``openvino_core``) and stays."""
        self._release(wait=True)

    def _release(self, wait: bool) -> None:
        if getattr(self, "_executor", None) is not None:
            self._executor.shutdown(wait=wait)
        self._executor = None
        self._pool = None
        self._latency = None
        self._stages = []

    def __del__(self) -> None:
        try:
            self._release(wait=False)  # never block a finaliser on worker threads
        except Exception:  # interpreter shutdown: modules may already be gone
            pass


def _run_chain(requests: list, x: np.ndarray) -> np.ndarray:
    """Run ``x`` through the stage requests in order (infer() releases the GIL while it computes).

    Shared inputs and outputs: each stage reads the previous stage's output buffer in place (no copy
    between stages); the last output is copied once, because the request reuses its buffer."""
    for request in requests:
        x = request.infer({0: x}, share_inputs=True, share_outputs=True)[0]
    return np.array(x, copy=True)


def _loaded_from_cache(compiled: object) -> bool:
    try:
        return bool(compiled.get_property("LOADED_FROM_CACHE"))  # type: ignore[attr-defined]
    except Exception:  # older OpenVINO without the property
        return False


# OpenVINO prefixes its messages with one "where" line per C++ frame it passed through
# ("Exception from src/inference/src/cpp/core.cpp:84:", "Check 'false' failed at src/...:151:");
# the reason follows on the next lines.
_OV_LOCATION = re.compile(r"^(Exception from |Check .* failed at )\S+:\d+:?$")


def openvino_reason(exc: BaseException, limit: int = 300) -> str:
    """The reason of an OpenVINO exception in one line: its location lines dropped, the rest joined."""
    lines = [line.strip() for line in str(exc).splitlines()]
    reason = " ".join(line for line in lines if line and not _OV_LOCATION.match(line))
    reason = re.sub(r"\s+", " ", reason).strip()
    if not reason:
        return type(exc).__name__
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."
