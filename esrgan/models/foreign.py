"""Generators this project does not build itself, loaded through spandrel (SwinIR, HAT, SPAN, ...).

The ESRGAN family stays on the project's own loader (``formats.py``), whose errors name the file's
own keys. A checkpoint that loader does not recognise is offered to spandrel (chaiNNer's model
loader, MIT): whatever spandrel loads as an image-to-image super-resolution model becomes a generator
with a ``ForeignSpec`` (``.spec``), so export, verification and the runtime treat it like ours.
Only spandrel's main registry is used (permissively licensed architectures); spandrel-extra-arches,
whose architectures carry non-commercial licences, is never loaded.
"""

from __future__ import annotations

from torch import nn

from esrgan.errors import CheckpointError, DependencyError, first_line, install_hint
from esrgan.models.spec import FOREIGN_PREFIX, ForeignSpec

#: What installs spandrel (the ``models`` extra; ``export`` pulls it in).
FORMAT = "spandrel"
#: spandrel purposes this project exports and runs: image in, upscaled image out.
PURPOSES = ("SR",)
#: spandrel architecture ids on which an exporter crashes the interpreter (a segmentation fault cannot be
#: caught and reported), measured by benchmarks/spandrel_archs.py: exporter -> {arch id: why}.
EXPORTER_CRASHES = {
    "dynamo": {
        "SPAN": "its convolutions recompute their weights through .data inside forward, and torch.export "
                "crashes (segmentation fault) on that",
    },
}


def load_foreign(state: dict, src: str, unrecognised: CheckpointError | None = None) -> nn.Module:
    """An eval-mode FP32 generator built by spandrel from ``state``, with ``.spec`` and ``.format``.

    ``unrecognised`` is the project loader's own error, repeated when spandrel does not know the
    file either, so the message still says what an ESRGAN checkpoint would have looked like.
    """
    spandrel = _import_spandrel(src)
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        known = f"{unrecognised}; " if unrecognised is not None else f"{src}: "
        raise CheckpointError(f"{known}spandrel {spandrel.__version__} does not recognise it either") from None
    except Exception as exc:  # spandrel detected an architecture but the tensors do not fit it
        raise CheckpointError(f"{src}: spandrel could not load it: {type(exc).__name__}: {first_line(exc)}") from None
    return _as_generator(descriptor, src)


def exporter_refusal(spec: object, exporter: str) -> str | None:
    """Why ``exporter`` must not be run on this network (it would crash the process), else None."""
    arch = getattr(spec, "arch", "")
    if not isinstance(arch, str) or not arch.startswith(FOREIGN_PREFIX):
        return None
    why = EXPORTER_CRASHES.get(exporter, {}).get(arch[len(FOREIGN_PREFIX):])
    return f"the {exporter} exporter cannot export {spec.name}: {why}" if why else None  # type: ignore[attr-defined]


def _as_generator(descriptor: object, src: str) -> nn.Module:
    """The descriptor's network with a ``ForeignSpec``, or one line saying why it is refused."""
    import spandrel

    arch = descriptor.architecture  # type: ignore[attr-defined]
    purpose = getattr(descriptor, "purpose", "?")
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or purpose not in PURPOSES:
        raise CheckpointError(
            f"{src}: spandrel loads it as {arch.name} ({purpose} model), not an image-to-image super-resolution "
            f"model; esrgan exports and runs {', '.join(PURPOSES)} models only"
        )
    req = descriptor.size_requirements
    try:
        spec = ForeignSpec(
            arch=FOREIGN_PREFIX + arch.id, name=arch.name, scale=descriptor.scale,
            num_in_ch=descriptor.input_channels, num_out_ch=descriptor.output_channels,
            multiple_of=req.multiple_of, minimum=req.minimum, square=req.square,
        )
    except CheckpointError as exc:
        raise CheckpointError(f"{src}: {arch.name}: {exc}") from None
    model = descriptor.model.float().eval()
    model.spec = spec  # type: ignore[assignment]
    model.format = FORMAT  # type: ignore[assignment]
    return model


def _import_spandrel(src: str):  # noqa: ANN202 (the module)
    try:
        import spandrel
    except ImportError:
        raise DependencyError(
            f"{src}: not an ESRGAN checkpoint; other architectures load through spandrel, which is not "
            f"installed: {install_hint('models')}"
        ) from None
    return spandrel
