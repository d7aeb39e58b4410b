"""The ncnn peer row: the same weights on ncnn's CPU engine (the engine behind realesrgan-ncnn-vulkan).

Users who compare CPU upscalers would otherwise pick ncnn, so every report shows where we stand
against it. The row is the runtime's ncnn backend (``esrgan.runtime.backends.ncnn_backend``) with
ncnn's own default options, no Vulkan; the weights are written as ncnn files by
``esrgan.runtime.ncnn_writer``. Needs ncnn (the ``ncnn`` extra); skipped with that reason otherwise.
"""

from __future__ import annotations

from esrgan.bench.models import PreparedModel, cache_root
from esrgan.bench.rows import Row, RowOptions, Unavailable, register
from esrgan.errors import install_hint
from esrgan.runtime.backends.base import Backend


def ncnn_factory(model: PreparedModel, opts: RowOptions) -> Backend:
    try:
        import ncnn  # noqa: F401
    except ImportError:
        raise Unavailable(f"ncnn is not installed: {install_hint('ncnn')}") from None
    from esrgan.atomic import write_atomic
    from esrgan.runtime.backends.ncnn_backend import NCNN_DEFAULTS, NcnnBackend
    from esrgan.runtime.ncnn_writer import write_ncnn, writer_version

    spec = model.spec
    if spec.arch != "rrdbnet" or spec.unshuffle_factor != 1:
        raise Unavailable("the ncnn writer handles RRDBNet without pixel-unshuffle only")
    folder = cache_root() / "ncnn" / f"{model.sha256[:24]}-{writer_version()}"  # once per model and writer
    param = folder / "model.param"
    if not param.is_file():
        state = {k: v.detach().float().numpy() for k, v in model.torch_model().state_dict().items()}
        # the .bin renamed into place first, the .param last: a .param marks a complete pair
        with write_atomic(param) as staged_param, write_atomic(folder / "model.bin") as staged_bin:
            write_ncnn(state, spec, staged_param, staged_bin)
    return NcnnBackend(param, threads=opts.threads, precision=NCNN_DEFAULTS, scale=spec.scale)


register(Row("ncnn-fp32", "fp32", "cpu", ncnn_factory, peer=True,
             description="ncnn CPU engine (peer), same weights written by esrgan.runtime.ncnn_writer"))
