"""The ncnn peer row: the same weights on ncnn's CPU engine (the engine behind realesrgan-ncnn-vulkan).

Users who compare CPU upscalers would otherwise pick ncnn, so every report shows where we stand
against it. The weights are written as ncnn files by ``esrgan.bench.ncnn_writer`` (pnnx runs out of
memory on the paper-size model), default ncnn options, no Vulkan. Needs ``pip install ncnn``
(the ``cpu-bench`` extra); skipped with that reason otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from esrgan.bench.models import PreparedModel, cache_root
from esrgan.bench.rows import Row, RowOptions, Unavailable, register
from esrgan.runtime.backends.base import Backend, BackendInfo


class NcnnBackend(Backend):
    """An ncnn Net on the CPU behind the runtime's Backend interface (one tile per extractor run).

    ``blobs``: the input and output blob names (our writer's, or those of another converter's files).
    ``fp32_only``: turn off ncnn's FP16/BF16 storage and arithmetic, so that its output is an FP32
    computation that can be held to the FP32 parity threshold (default: ncnn's own defaults, what a
    user of ncnn gets). ``threads`` None keeps ncnn's default thread count.
    """

    def __init__(
        self, param: Path, weights: Path, scale: int, threads: int | None = 1, *,
        blobs: tuple[str, str] = ("in0", "out0"), fp32_only: bool = False,
    ) -> None:
        import ncnn

        self._ncnn = ncnn
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        if threads:
            self.net.opt.num_threads = threads
        if fp32_only:
            opt = self.net.opt
            opt.use_fp16_storage = opt.use_fp16_arithmetic = opt.use_fp16_packed = opt.use_bf16_storage = False
        self.net.load_param(str(param))
        self.net.load_model(str(weights))
        self.blobs = blobs
        self.scale, self.in_channels = scale, 3
        self.info = BackendInfo(name="ncnn-cpu", precision="fp32", device="cpu",
                                providers=(f"ncnn {getattr(ncnn, '__version__', '?')}",))

    def run(self, batch: np.ndarray) -> np.ndarray:
        outs = []
        for tile in np.ascontiguousarray(batch, dtype=np.float32):
            ex = self.net.create_extractor()
            ex.input(self.blobs[0], self._ncnn.Mat(tile).clone())
            _, out = ex.extract(self.blobs[1])
            outs.append(np.array(out))
        return np.stack(outs)

    def close(self) -> None:
        self.net = None


def ncnn_factory(model: PreparedModel, opts: RowOptions) -> Backend:
    try:
        import ncnn  # noqa: F401
    except ImportError:
        raise Unavailable("ncnn is not installed: pip install ncnn (or the cpu-bench extra)") from None
    from esrgan.bench.ncnn_writer import write_ncnn

    torch_model = model.torch_model()
    if model.spec.arch != "rrdbnet" or model.spec.unshuffle_factor != 1:
        raise Unavailable("the ncnn writer handles RRDBNet without pixel-unshuffle only")
    folder = cache_root() / "ncnn" / model.sha256[:24]  # written once per model, like the exports
    if not (folder / "model.param").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_ncnn(torch_model, folder / "model.bin.tmp", folder / "model.bin")
        (folder / "model.bin.tmp").replace(folder / "model.param")  # the param file last: it marks completeness
    return NcnnBackend(folder / "model.param", folder / "model.bin", model.spec.scale, threads=opts.threads)


register(Row("ncnn-fp32", "fp32", "cpu", ncnn_factory, peer=True,
             description="ncnn CPU engine (peer), same weights written by esrgan.bench.ncnn_writer"))
