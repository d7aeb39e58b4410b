"""ncnn, the engine behind realesrgan-ncnn-vulkan and Upscayl: on the CPU, or on any Vulkan GPU.

Why: ONNX Runtime's and TensorRT's GPU paths need NVIDIA's CUDA, while ncnn's PyPI wheel carries its
Vulkan backend, so the same model runs on AMD, Intel and Apple (MoltenVK) GPUs too. ncnn runs its own
file format: a ``.param`` file is run as given (its ``.bin`` beside it: e.g. realesrgan-ncnn-vulkan's
models, or pnnx's output), and an esrgan ONNX export (a checkpoint is exported to ONNX first) is written
as ncnn files once, by ``esrgan.runtime.ncnn_writer``.

Precision: fp16 storage and arithmetic on Vulkan (ncnn's fast path), FP32 on the CPU; ``precision``
overrides either, except that fp16 on a CPU is offered only where ncnn computes in it (``cpu_fp16``). ``--backend auto`` takes fp16 on a GPU only where this model's fp16 output on that
device was measured within the 45 dB half-precision floor (``esrgan.runtime.vulkan_parity``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esrgan.elapsed import heartbeat
from esrgan.errors import (
    BackendError,
    DependencyError,
    ModelError,
    OutOfMemoryError,
    UsageError,
    install_hint,
)
from esrgan.native_output import native_output_dropped
from esrgan.runtime.backends.base import Backend, BackendInfo, check_io, probe_scale

#: ncnn's ``GpuInfo::type()`` (ncnn/src/gpu.h): 0 discrete, 1 integrated, 2 virtual, 3 cpu. A "cpu"
#: device is a software rasterizer (Mesa's lavapipe/llvmpipe, SwiftShader): correct but slower than
#: running on the CPU directly, so ``--backend auto`` never picks one.
SOFTWARE_DEVICE_TYPE = 3
DEVICE_TYPES = {0: "discrete", 1: "integrated", 2: "virtual", 3: "software"}
DEFAULT_PRECISION = {"cpu": "fp32", "vulkan": "fp16"}
#: ``precision`` value that leaves ncnn's own precision options untouched (what a user of ncnn gets).
NCNN_DEFAULTS = "ncnn-defaults"
PRECISIONS = ("fp32", "fp16", NCNN_DEFAULTS)
#: What an ncnn layer returns when a blob cannot be allocated (host or Vulkan memory): the tiler then
#: retries with smaller tiles.
NCNN_ALLOCATION_FAILED = -100


@dataclass(frozen=True)
class VulkanDevice:
    """One Vulkan device as ncnn sees it."""

    index: int
    name: str
    type: int

    @property
    def software(self) -> bool:
        return self.type == SOFTWARE_DEVICE_TYPE

    def describe(self) -> str:
        return f"vulkan:{self.index} {self.name} ({DEVICE_TYPES.get(self.type, 'unknown')})"


def _import_ncnn() -> Any:
    try:
        import ncnn
    except ImportError:
        raise DependencyError(f"the ncnn backends need ncnn: {install_hint('ncnn')}") from None
    return ncnn


@functools.cache
def vulkan_devices() -> tuple[VulkanDevice, ...]:
    """The Vulkan devices ncnn can use; () without ncnn, without a Vulkan loader or driver."""
    try:
        import ncnn
    except ImportError:
        return ()
    if not hasattr(ncnn, "get_gpu_count"):  # a build without Vulkan
        return ()
    # ncnn logs every Vulkan device (and every failed attempt to load libvulkan) on fd 2; the runtime
    # says what it chose in one line.
    with native_output_dropped(2):
        count = ncnn.get_gpu_count()
        return tuple(VulkanDevice(i, ncnn.get_gpu_info(i).device_name(), ncnn.get_gpu_info(i).type())
                     for i in range(count))


def hardware_vulkan_device(device_id: int = 0) -> VulkanDevice | None:
    """Vulkan device ``device_id`` if it is a real GPU (what ``--backend auto`` may use), else None."""
    devices = vulkan_devices()
    if 0 <= device_id < len(devices) and not devices[device_id].software:
        return devices[device_id]
    return None


def no_gpu_reason(device_id: int = 0) -> str:
    """Why ``hardware_vulkan_device(device_id)`` is None, in words for the line ``auto`` prints."""
    devices = vulkan_devices()
    if not devices:
        return "ncnn finds no Vulkan device"
    if not 0 <= device_id < len(devices):
        return f"--device-id {device_id} is not one of ncnn's {len(devices)} Vulkan device(s)"
    return f"vulkan:{device_id} {devices[device_id].name} is a software driver, slower than the CPU"


def _vulkan_device(device_id: int) -> VulkanDevice:
    devices = vulkan_devices()
    if not devices:
        raise DependencyError(
            "--backend ncnn-vulkan: ncnn finds no Vulkan device; install the GPU's Vulkan driver "
            "(Linux: Mesa's mesa-vulkan-drivers for AMD/Intel, NVIDIA's driver) or use --backend ncnn-cpu")
    if not 0 <= device_id < len(devices):
        raise UsageError(f"--device-id {device_id}: ncnn sees {len(devices)} Vulkan device(s), "
                         f"0..{len(devices) - 1}: {'; '.join(d.describe() for d in devices)}")
    return devices[device_id]


def _heap_budget(ncnn: Any, device_id: int) -> int | None:
    """The device-local memory budget ncnn's Vulkan device reports (VK_EXT_memory_budget where the driver
    has it), in bytes: what realesrgan-ncnn-vulkan sizes its tiles from. None where unknown."""
    try:
        budget_mb = int(ncnn.get_gpu_device(device_id).get_heap_budget())
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None
    return budget_mb << 20 if budget_mb > 0 else None


def cpu_fp16(ncnn: Any) -> bool:
    """Whether ncnn computes in half precision on this CPU when asked: only on ARM CPUs with ARMv8.2's
    half-precision arithmetic, which ncnn checks for at run time. Elsewhere its fp16 options change
    nothing: on x86 they gave fp32's output bit for bit (Real-ESRGAN x4plus, 48 px photograph crop,
    Intel Xeon with AVX-512 FP16), and a run labelled fp16 would not be one."""
    return bool(getattr(ncnn, "cpu_support_arm_asimdhp", lambda: 0)())


def check_cpu_precision(ncnn: Any, precision: str) -> None:
    """Refuse fp16 on a CPU where ncnn would compute in FP32 (``cpu_fp16``)."""
    if precision == "fp16" and not cpu_fp16(ncnn):
        raise UsageError("ncnn computes fp16 on a CPU only on ARM CPUs with half-precision arithmetic; on this "
                         "CPU its fp16 options give fp32's output, so use fp32 (--precision fp32)")


def _set_precision(opt: Any, precision: str) -> None:
    if precision == NCNN_DEFAULTS:
        return
    half = precision == "fp16"
    opt.use_fp16_storage = opt.use_fp16_arithmetic = opt.use_fp16_packed = half
    opt.use_bf16_storage = False  # BF16 is another precision; never switched on behind the caller's back


class NcnnBackend(Backend):
    """An ncnn Net on the CPU or a Vulkan device, one tile per extractor run.

    ``model``: a ``.param`` file (``.bin`` beside it) or an esrgan ONNX export (written as ncnn files
    once, cached). ``vulkan``: run on Vulkan device ``device_id``. ``precision``: "fp32", "fp16" or
    ``NCNN_DEFAULTS``; None = ``DEFAULT_PRECISION`` of the device. ``scale``: None = the esrgan
    metadata's, else measured by one probe run. ``threads``: CPU threads (None = ncnn's default).
    """

    def __init__(
        self, model: str | os.PathLike[str], threads: int | None = None, *, vulkan: bool = False,
        device_id: int = 0, precision: str | None = None, scale: int | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        ncnn = _import_ncnn()
        src = Path(model)
        device = "vulkan" if vulkan else "cpu"
        precision = precision or DEFAULT_PRECISION[device]
        if precision not in PRECISIONS:
            raise UsageError(f"ncnn precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        # the device first: nothing is written for a model that cannot run here
        gpu = _vulkan_device(device_id) if vulkan else None
        if not vulkan:
            check_cpu_precision(ncnn, precision)
        where = gpu.describe() if gpu else "cpu"
        if gpu is not None and gpu.software and say is not None:
            say(f"{where} is a software Vulkan driver running on the CPU: expect it to be slower than "
                "--backend ncnn-cpu (it is there to test, not to run)")
        if src.suffix.lower() == ".param":
            param, weights = src, src.with_suffix(".bin")
            if not weights.is_file():
                raise ModelError(f"{src}: its weights {weights.name} are not beside it")
        else:
            from esrgan.runtime.ncnn_writer import ncnn_files

            param, weights, spec = ncnn_files(src, say or (lambda line: None))
            scale = scale or spec.scale
        self._ncnn = ncnn
        self.net = net = ncnn.Net()
        net.opt.use_vulkan_compute = vulkan
        if vulkan:
            net.set_vulkan_device(device_id)
        if threads:
            net.opt.num_threads = threads
        # Idle OpenMP threads sleep at once instead of spinning for ncnn's default 20 ms, as ONNX Runtime's
        # do here (ort_backend): on a busy CPU spinning threads take the cores the work needs. x4plus,
        # 64 px tile, 2 threads, machine load 4.9 on 2 cores: median 2.81 s with 0 ms vs 4.70 s with 20 ms;
        # on the idle machine 0.81 s vs 0.79 s (Intel Xeon, 6 interleaved runs each).
        net.opt.openmp_blocktime = 0
        _set_precision(net.opt, precision)
        with native_output_dropped(2):  # ncnn logs unknown layers and Vulkan pipeline details here; its return code says enough
            if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
                raise ModelError(f"{param}: ncnn cannot load it (not an ncnn .param/.bin pair, or a layer "
                                 f"this ncnn {getattr(ncnn, '__version__', '?')} does not have)")
        inputs, outputs = list(net.input_names()), list(net.output_names())
        check_io(str(src), inputs, outputs)
        self.blobs = (inputs[0], outputs[0])
        self.in_channels = 3
        if precision == NCNN_DEFAULTS:  # fp16 on Vulkan and on CPUs where ncnn computes in it, else FP32
            precision = "fp16" if vulkan or cpu_fp16(ncnn) else "fp32"
        self.info = BackendInfo(
            name=f"ncnn-{device}", precision=precision,
            device=f"vulkan:{device_id}" if vulkan else "cpu",
            providers=(f"ncnn {getattr(ncnn, '__version__', '?')}", where),
            free_memory=_heap_budget(ncnn, device_id) if vulkan else None,
        )
        if scale is None:  # ncnn prepares the weights in its first run: 12 s for x4plus on 2 cores
            message = f"measuring {src.name}'s scale with one small run (ncnn prepares the model's weights first)"
            tell = say or (lambda _line: None)
            tell(message)
            with heartbeat(tell, message):
                scale = probe_scale(self.run, self.in_channels, str(src))
        self.scale = scale

    def run(self, batch: np.ndarray) -> np.ndarray:
        outs = []
        for tile in np.ascontiguousarray(batch, dtype=np.float32):
            ex = self.net.create_extractor()
            ex.input(self.blobs[0], self._ncnn.Mat(tile).clone())
            ret, out = ex.extract(self.blobs[1])
            if ret == NCNN_ALLOCATION_FAILED:
                raise OutOfMemoryError(f"ncnn ({self.info.device}) is out of memory for a "
                                       f"{tile.shape[1]}x{tile.shape[2]} tile")
            if ret != 0:
                raise BackendError(f"ncnn ({self.info.device}) failed on a {tile.shape[1]}x{tile.shape[2]} tile "
                                   f"(error {ret})")
            outs.append(np.array(out))
        return np.stack(outs)

    def close(self) -> None:
        if self.net is not None:
            self.net.clear()
        self.net = None
