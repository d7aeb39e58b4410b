"""OpenVINO backend: the fastest CPU path (BF16 on CPUs that do it natively, INT8 for INT8 files).

Torch-free. Reads our ONNX files directly (OpenVINO's ONNX frontend keeps the ``esrgan.*`` metadata in
the model's ``framework`` rt_info), compiles for the CPU with a compiled-model cache on disk
(OpenVINO's ``CACHE_DIR``: a second start loads the compiled blob instead of compiling), and runs a
batch of tiles either as one request or as one async request per tile over several CPU streams.

Why these settings (measured in benchmarks/reports/cpu/report.md):
* ``INFERENCE_PRECISION_HINT``: OpenVINO's CPU plugin already defaults to BF16 on CPUs with AVX-512
  BF16/AMX, so we always set it explicitly, so that ``fp32`` really is FP32 and ``auto`` is stated.
* Performance hint: ``THROUGHPUT`` makes the plugin split the cores into streams (on 2 cores: 2
  streams x 1 thread); a batch of N tiles is then sent as N async requests, several tiles in flight.
  For a single tile that would leave cores idle, so a 1-tile batch uses the ``LATENCY``-compiled
  model (all threads on one request). Both compiled models come from the same cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from esrgan.errors import BackendError, DependencyError, ModelError, OutOfMemoryError, UsageError
from esrgan.metadata import PRECISION, parse_metadata
from esrgan.runtime.backends.base import Backend, BackendInfo

PRECISIONS = ("auto", "fp32", "bf16")
MODES = ("throughput", "latency")
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def default_cache_dir() -> Path:
    """Where compiled models and measured parity live: $ESRGAN_CACHE_DIR, else the XDG cache folder."""
    if os.environ.get("ESRGAN_CACHE_DIR"):
        return Path(os.environ["ESRGAN_CACHE_DIR"]) / "openvino"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "esrgan" / "openvino"


def import_openvino():  # -> the openvino module
    """OpenVINO, or the one-line DependencyError that says how to get it."""
    try:
        import openvino
    except ImportError:
        raise DependencyError(
            "the openvino backend needs OpenVINO, which is not installed: pip install 'esrgan[openvino]'"
        ) from None
    return openvino


def openvino_metadata(model: object) -> dict[str, str]:
    """The ONNX file's metadata_props, which OpenVINO keeps under rt_info['framework']."""
    try:
        framework = model.get_rt_info()["framework"]  # type: ignore[attr-defined]
    except (KeyError, RuntimeError, TypeError):
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
    ``threads``: CPU threads in all (None: all cores). ``mode``: ``throughput`` (several tiles of a
    batch in flight over CPU streams) or ``latency`` (a batch is one request). ``streams``: override
    the number of streams in throughput mode. ``cache_dir``: compiled-model cache (None: the default
    cache folder; "" disables it). ``cpu_features``: an injected ``CpuFeatures`` (tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        precision: str = "auto",
        threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        mode: str = "throughput",
        streams: int | None = None,
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
        self.core = ov.Core()
        cache = default_cache_dir() if cache_dir is None else (Path(cache_dir) if str(cache_dir) else None)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            self.core.set_property({"CACHE_DIR": str(cache)})
        self.cache_dir = cache
        try:
            model = self.core.read_model(str(src))
        except Exception as exc:
            raise ModelError(f"{src}: OpenVINO cannot read it ({_first_line(exc)})") from None
        meta = parse_metadata(openvino_metadata(model), str(src))
        if cpu_features is None:
            from esrgan.runtime.cpu_features import probe_cpu_features

            cpu_features = probe_cpu_features()
        self.precision = resolve_precision(precision, bool(getattr(cpu_features, "bf16_native", False)),
                                           meta.precision)
        self.scale = meta.scale
        shape = model.inputs[0].get_partial_shape()
        self.in_channels = shape[1].get_length() if shape[1].is_static else 3
        self.mode = mode
        config = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[self.precision]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self._model, self._config, self._src = model, config, src
        self.latency_model = None
        self.request = None
        self.queue = None
        nstreams = 1
        if mode == "latency":
            self._compile_latency()
            compiled = self.latency_model
        else:
            tconf = {**config, "PERFORMANCE_HINT": "THROUGHPUT"}
            if streams:
                tconf["NUM_STREAMS"] = int(streams)
            compiled = self._compile(tconf)
            nreq = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            nstreams = int(compiled.get_property("NUM_STREAMS"))
            self.queue = ov.AsyncInferQueue(compiled, max(nreq, 1))
        file_precision = meta.raw.get(PRECISION, "fp32")
        self.info = BackendInfo(
            name="openvino",
            precision="int8" if file_precision == "int8" else self.precision,
            device="cpu",
            providers=("OpenVINO CPU " + ov.__version__.split("-")[0],),
            extra={
                "inference_precision": self.precision,
                "file_precision": file_precision,
                "mode": mode,
                "streams": str(nstreams),
                "cache_dir": str(cache) if cache else "",
                "loaded_from_cache": str(_loaded_from_cache(compiled)).lower(),
            },
        )

    def _compile(self, config: dict):
        try:
            return self.core.compile_model(self._model, "CPU", config)
        except Exception as exc:
            raise ModelError(f"{self._src}: OpenVINO cannot compile it for the CPU ({_first_line(exc)})") from None

    def _compile_latency(self) -> None:
        """The model compiled for one request on all threads (for 1-tile batches); made on first use."""
        self.latency_model = self._compile({**self._config, "PERFORMANCE_HINT": "LATENCY"})
        self.request = self.latency_model.create_infer_request()

    def run(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 4:
            raise BackendError(f"expected an NCHW batch, got shape {x.shape}")
        if self.request is None and (self.queue is None or x.shape[0] == 1):
            self._compile_latency()
        try:
            if self.queue is None or x.shape[0] == 1:
                return np.array(self.request.infer({0: x})[0], copy=True)
            return self._run_async(x)
        except MemoryError:
            raise OutOfMemoryError(f"OpenVINO ran out of memory on a {x.shape} batch") from None
        except Exception as exc:
            raise BackendError(f"OpenVINO failed on a {x.shape} batch: {_first_line(exc)}") from None

    def _run_async(self, x: np.ndarray) -> np.ndarray:
        """One request per tile, as many in flight as the CPU streams take; outputs in input order."""
        outs: list[np.ndarray | None] = [None] * x.shape[0]

        def done(request, index: int) -> None:
            outs[index] = np.array(request.get_output_tensor(0).data, copy=True)

        assert self.queue is not None
        self.queue.set_callback(done)
        for i in range(x.shape[0]):
            self.queue.start_async({0: x[i : i + 1]}, i)
        self.queue.wait_all()
        return np.concatenate(outs, axis=0)  # type: ignore[arg-type]

    def close(self) -> None:
        self.queue = None
        self.request = None
        self.latency_model = None
        self._model = None


def _loaded_from_cache(compiled: object) -> bool:
    try:
        return bool(compiled.get_property("LOADED_FROM_CACHE"))  # type: ignore[attr-defined]
    except Exception:  # older OpenVINO without the property
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
