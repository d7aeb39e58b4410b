"""The benchmark's rows: one backend at one precision, and how to load it.

This is the extension point. A row is a name plus a factory that turns the prepared model into
a loaded ``Backend``; the runner knows nothing else about backends. Built-in rows cover the
PyTorch references (the runtime's ``TorchBackend``) and what the runtime's ``load_backend`` offers;
``torch_row`` and ``runtime_row`` make such factories for other scripts' rows. Other modules add rows
by calling ``register`` — put such a module in ``esrgan/bench/plugins/`` (imported automatically,
e.g. the ncnn peer) or publish it under the entry
point group ``esrgan.bench_rows``. A factory raises ``Unavailable`` with a reason to be skipped
(missing package, no GPU, no INT8 file), and the report lists the reason.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from esrgan.bench.models import PreparedModel
from esrgan.errors import DependencyError, UsageError
from esrgan.runtime.backends.base import Backend

Factory = Callable[[PreparedModel, "RowOptions"], Backend]


class Unavailable(Exception):
    """This row cannot run here; the message says why (shown in the report, not an error)."""


@dataclass(frozen=True)
class RowOptions:
    threads: int = 1


@dataclass(frozen=True)
class Row:
    key: str  # what --backends takes, e.g. "ort-fp32"
    precision: str  # fp32 | fp16 | bf16 | int8
    device: str  # "cpu" | "cuda"
    factory: Factory
    artifact: str = ""  # which exported file the row needs: "fp32" | "fp16" | "int8" | "engine" | "" (checkpoint)
    reference: bool = False  # the row every other row on this device is compared with
    peer: bool = False  # another project's engine, shown for comparison (e.g. ncnn)
    description: str = ""


_ROWS: dict[str, Row] = {}
_discovered = False


def register(row: Row) -> Row:
    """Add (or replace) a row; returns it so modules can keep a handle."""
    _ROWS[row.key] = row
    return row


def all_rows() -> dict[str, Row]:
    _discover()
    return dict(_ROWS)


def select(keys: list[str] | None) -> list[Row]:
    """The rows to run, references first. ``None`` means every row (those that cannot run here
    are skipped with their reason when loaded, so a CPU-only report still says what it lacks)."""
    rows = all_rows()
    if keys is None:
        chosen = list(rows.values())
    else:
        unknown = [k for k in keys if k not in rows]
        if unknown:
            raise UsageError(f"unknown backend {unknown[0]!r}; known: {', '.join(sorted(rows))}")
        chosen = [rows[k] for k in dict.fromkeys(keys)]
    # Each device's reference row is always measured: speed-ups and parity are relative to it.
    for ref in (r for r in rows.values() if r.reference):
        if ref not in chosen and any(r.device == ref.device for r in chosen):
            chosen.append(ref)
    return sorted(chosen, key=lambda r: (not r.reference, r.device))


def _discover() -> None:
    """Import plugin modules once (each registers its rows as a side effect)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    from esrgan.bench import plugins

    for mod in pkgutil.iter_modules(plugins.__path__):
        importlib.import_module(f"{plugins.__name__}.{mod.name}")
    for ep in metadata.entry_points(group="esrgan.bench_rows"):
        ep.load()


# ---- built-in rows ------------------------------------------------------------------------------


def torch_row(device: str, precision: str, channels_last: bool = False, compile: bool = False) -> Factory:
    """A factory that runs the prepared model's checkpoint in the runtime's ``TorchBackend``."""

    def factory(model: PreparedModel, opts: RowOptions) -> Backend:
        from esrgan.runtime.backends.torch_backend import TorchBackend, import_torch

        try:
            import_torch(device)  # before loading the checkpoint: a row without a GPU is skipped at once
            return TorchBackend(
                model.torch_model(), device=device, threads=opts.threads, precision=precision,
                channels_last=channels_last, compile=compile,
            )
        except DependencyError as exc:  # no PyTorch, or no CUDA GPU here
            raise Unavailable(str(exc)) from None

    return factory


def runtime_row(backend: str, artifact: str, **load_opts: Any) -> Factory:
    """A factory that loads ``model.files[artifact]`` through the runtime's ``load_backend``.

    A GPU row whose provider silently fell back to the CPU is refused: a GPU number must come
    from the GPU.
    """

    def factory(model: PreparedModel, opts: RowOptions) -> Backend:
        from esrgan.runtime.backends.registry import load_backend

        path = model.files.get(artifact)
        if path is None:
            raise Unavailable(f"no {artifact} model file was exported")
        try:
            loaded = load_backend(path, backend=backend, threads=opts.threads, **load_opts)
        except DependencyError as exc:
            raise Unavailable(str(exc)) from None
        wants_gpu = backend != "onnxruntime-cpu" and backend != "openvino"
        if wants_gpu and not loaded.info.device.startswith("cuda"):
            loaded.close()
            raise Unavailable(f"{backend} runs on {loaded.info.device} here, not on a GPU")
        return loaded

    return factory


def needed_artifacts(rows: list[Row]) -> set[str]:
    return {r.artifact for r in rows if r.artifact}


register(Row("torch-fp32", "fp32", "cpu", torch_row("cpu", "fp32"), reference=True,
             description="PyTorch eager FP32 (the reference)"))
register(Row("ort-fp32", "fp32", "cpu", runtime_row("onnxruntime-cpu", "fp32"), "fp32",
             description="ONNX Runtime CPU, FP32 model"))
register(Row("ort-fp16", "fp16", "cpu", runtime_row("onnxruntime-cpu", "fp16"), "fp16",
             description="ONNX Runtime CPU, FP16 model"))
register(Row("ort-int8", "int8", "cpu", runtime_row("onnxruntime-cpu", "int8"), "int8",
             description="ONNX Runtime CPU, INT8 model (static QDQ, calibrated on other photographs)"))
register(Row("openvino-fp32", "fp32", "cpu", runtime_row("openvino", "fp32", precision="fp32"), "fp32",
             description="OpenVINO CPU, FP32 inference precision"))
register(Row("openvino-bf16", "bf16", "cpu", runtime_row("openvino", "fp32", precision="bf16"), "fp32",
             description="OpenVINO CPU, BF16 inference precision (native on AVX-512 BF16 / AMX CPUs)"))
register(Row("openvino-int8", "int8", "cpu", runtime_row("openvino", "int8"), "int8",
             description="OpenVINO CPU, INT8 model"))
# GPU rows: measured only where a CUDA GPU is present (skipped with the reason elsewhere).
register(Row("torch-cuda-fp32", "fp32", "cuda", torch_row("cuda", "fp32"), reference=True,
             description="PyTorch eager FP32 on the GPU (the GPU reference)"))
register(Row("torch-cuda-fp16", "fp16", "cuda", torch_row("cuda", "fp16", channels_last=True),
             description="PyTorch FP16 channels_last on the GPU"))
register(Row("torch-cuda-compile", "fp16", "cuda", torch_row("cuda", "fp16", channels_last=True, compile=True),
             description="torch.compile FP16 channels_last on the GPU"))
register(Row("ort-cuda-fp32", "fp32", "cuda", runtime_row("onnxruntime-cuda", "fp32"), "fp32",
             description="ONNX Runtime CUDA provider, FP32 model"))
register(Row("ort-cuda-fp16", "fp16", "cuda", runtime_row("onnxruntime-cuda", "fp16"), "fp16",
             description="ONNX Runtime CUDA provider, FP16 model"))
register(Row("ort-trt-fp16", "fp16", "cuda", runtime_row("onnxruntime-trt", "fp32"), "fp32",
             description="ONNX Runtime TensorRT provider (FP16 enabled)"))
register(Row("trt-fp16", "fp16", "cuda", runtime_row("tensorrt", "engine"), "engine",
             description="TensorRT FP16 engine"))
