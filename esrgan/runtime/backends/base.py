"""The one interface every inference backend implements.

The tiler and the pipeline only ever see ``Backend``: load a model file, run an NCHW float32
batch in [0, 1], report what it is. Keeping it this small is what lets ONNX Runtime, OpenVINO,
TensorRT and PyTorch be swapped without the rest of the runtime knowing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from esrgan.errors import EsrganError, ModelError, ModelShapeError
from esrgan.models.spec import SizeRequirements

#: Channels of every window the tiler feeds a model and expects back: RGB (a grey image as three equal
#: channels, an alpha channel as an RGB plane of its own).
IMAGE_CHANNELS = 3

#: Peak memory per input pixel over ``esrgan.runtime.engine.bytes_per_input_pixel``'s activation estimate,
#: by backend name: the engines' own workspaces (im2col buffers, Winograd transforms, arenas), the worst
#: ratio measured over the built-in model and x4plus (``benchmarks/tile_memory.py``, report in
#: benchmarks/reports/runtime/tile_memory.md; Intel Xeon): ONNX Runtime 1.36 / 1.34 (1.78 for the
#: built-in model at 890 px: its arena grows in steps), OpenVINO 0.84 / 0.80, ncnn 4.42 / 5.09.
#: ``--tile auto`` multiplies the estimate by it, so that its budget holds. ncnn-vulkan takes the CPU
#: engine's figure (not measured on a GPU).
MEMORY_FACTORS = {"onnxruntime-cpu": 1.8, "ncnn-cpu": 5.2, "ncnn-vulkan": 5.2}

#: Input size of the one run that measures the scale of a model whose file does not state it:
#: a multiple of 8 (pixel-unshuffle models need one) and not square (both axes are checked).
PROBE_SIZE = (32, 48)


@dataclass(frozen=True)
class BackendInfo:
    """What a loaded backend reports about itself (shown to users, written into reports)."""

    name: str  # e.g. "onnxruntime-cpu", "openvino", "tensorrt", "torch"
    precision: str  # "fp32" | "fp16" | "bf16" | "int8"
    device: str  # "cpu", "cuda:0", ...
    providers: tuple[str, ...] = ()  # what actually runs (ONNX Runtime execution providers, ...)
    # Largest input the model/engine accepts, (N, H, W); None where any size works.
    max_input: tuple[int, int, int] | None = None
    min_input: tuple[int, int, int] | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # Bytes the device reported free for this process when the model loaded (a Vulkan heap budget);
    # None: ``--tile auto`` asks nvidia-smi on a CUDA device and assumes a default elsewhere.
    free_memory: int | None = None


class Backend(ABC):
    """A loaded model that upscales NCHW float32 batches.

    Subclasses set ``scale``, ``in_channels`` and ``info`` when they load, ``size_multiple``
    when the model groups pixels (pixel-unshuffle): the tiler aligns tiles to it,
    ``size_requirements`` when the network accepts only some input sizes (from the model's
    metadata): the tile engine pads each batch to them and crops the output, and ``fixed_size``
    when the model's input has a fixed height and width (some third-party ONNX exports): the tiler
    then makes every window exactly that size.
    """

    scale: int
    in_channels: int
    info: BackendInfo
    out_channels: int | None = None  # None: the file does not state it
    size_multiple: int = 1
    size_requirements: SizeRequirements = SizeRequirements()
    fixed_size: tuple[int, int] | None = None
    # The largest batch the model takes (1 for a file whose batch dimension is fixed at 1); None: any.
    max_batch: int | None = None

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale ``batch`` (N, C, H, W float32 in [0, 1]) to (N, C_out, H*scale, W*scale) float32.

        Raises ``esrgan.errors.OutOfMemoryError`` when the device cannot fit the batch, so that the
        caller can retry with smaller tiles, and ``BackendError`` for any other failure.
        """

    def close(self) -> None:
        """Release device memory and sessions; the backend is unusable afterwards."""
        return None  # most backends free everything when garbage-collected

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_fixed_size(source: str, size: tuple[int, int] | None) -> tuple[int, int] | None:
    """A model's fixed input (H, W), refused at load when the tiler cannot make windows of it.

    Tiles are square, so a fixed input must be too; None (any size) passes.
    """
    if size is not None and size[0] != size[1]:
        raise ModelShapeError(
            f"{source}: the model takes only {size[0]}x{size[1]} inputs; fixed non-square inputs cannot be "
            "tiled: export it with dynamic height and width (or square)"
        )
    return size


def check_rgb(backend: Backend, source: str) -> None:
    """A model that takes or returns other than RGB is refused at load in one line: the tiler feeds and
    stitches RGB windows. Not a backend's own check: export verification runs grey models too."""
    for verb, count in (("takes", backend.in_channels), ("returns", backend.out_channels)):
        if count is not None and count != IMAGE_CHANNELS:
            raise ModelShapeError(f"{source}: the model {verb} {count}-channel images; esrgan-run runs models "
                                  f"that take and return RGB ({IMAGE_CHANNELS} channels)")


def check_batch(source: str, batch: int | None) -> int | None:
    """A fixed batch dimension: 1 is run one window at a time (returned as ``max_batch``); any other
    fixed size would need every batch full, and is refused at load in one line."""
    if batch is not None and batch != 1:
        raise ModelShapeError(f"{source}: the model takes batches of exactly {batch} windows; export it with "
                              "a dynamic batch size (or 1)")
    return batch


def check_io(source: str, inputs: list, outputs: list) -> None:
    """One image in, one image out: anything else is refused in one line at load."""
    if len(inputs) != 1 or len(outputs) < 1:
        raise ModelShapeError(
            f"{source}: the model has {len(inputs)} input(s) and {len(outputs)} output(s); "
            "expected one NCHW image input and an image output"
        )


def probe_scale(
    run: Callable[[np.ndarray], np.ndarray], in_channels: int, source: str,
    size: tuple[int, int] | None = None,
) -> int:
    """The scale of a model whose file does not state it (most third-party ONNX exports), measured by
    one run on a small input: output height and width must both be the same integer multiple."""
    h, w = size or PROBE_SIZE
    probe = np.random.default_rng(0).random((1, in_channels, h, w), dtype=np.float32)
    try:
        out = run(probe)
    except EsrganError as exc:
        raise ModelError(f"{source}: no esrgan.scale in its metadata, and a {h}x{w} probe run failed: {exc}") from None
    shape = tuple(getattr(out, "shape", ()))
    if len(shape) != 4 or shape[2] < h or shape[2] % h or shape[3] % w or shape[2] // h != shape[3] // w:
        raise ModelError(
            f"{source}: no esrgan.scale in its metadata, and its output {shape} for a 1x{in_channels}x{h}x{w} "
            "input is not an integer upscale of it"
        )
    return shape[2] // h
