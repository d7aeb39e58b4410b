"""Build a generator from its spec: the one place that maps arch names to classes."""

from __future__ import annotations

from torch import nn

from esrgan.errors import CheckpointError
from esrgan.models.pytorch_gan import GeneratorRRDB
from esrgan.models.rrdbnet import RRDBNet
from esrgan.models.spec import AnySpec, ForeignSpec, GeneratorSpec


def build_generator(spec: AnySpec) -> nn.Module:
    """A freshly initialised generator for ``spec`` (in train mode, like any new module)."""
    if isinstance(spec, ForeignSpec):
        raise CheckpointError(
            f"{spec.describe()}: spandrel builds this network from a checkpoint's weights (load_generator), "
            "not from its spec alone"
        )
    if spec.arch == "rrdbnet":
        return RRDBNet.from_spec(spec)
    return GeneratorRRDB.from_spec(spec)


def spec_of(model: nn.Module) -> AnySpec:
    """The spec of a generator: ours, or a ``ForeignSpec`` on a network spandrel built."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, (GeneratorSpec, ForeignSpec)):
        raise TypeError(f"{type(model).__name__} is not an esrgan generator (no .spec)")
    return spec


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
