"""Bench test helpers: a numpy-only stand-in backend (no torch, no ONNX) and a stub model."""

from __future__ import annotations

import numpy as np
import pytest

from esrgan.bench.models import PreparedModel
from esrgan.models.spec import GeneratorSpec
from esrgan.runtime.backends.base import Backend, BackendInfo


class NearestBackend(Backend):
    """Nearest-neighbour x``scale`` upscaling, plus an optional fixed error (to test parity)."""

    def __init__(self, scale: int = 4, offset: float = 0.0, precision: str = "fp32", name: str = "nearest") -> None:
        self.scale, self.in_channels, self.offset = scale, 3, offset
        self.info = BackendInfo(name=name, precision=precision, device="cpu")
        self.calls = 0

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        out = batch.repeat(self.scale, axis=2).repeat(self.scale, axis=3)
        return out + np.float32(self.offset)


@pytest.fixture
def stub_model(tmp_path) -> PreparedModel:
    spec = GeneratorSpec(arch="rrdbnet", scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    return PreparedModel(name="stub", spec=spec, checkpoint=None, sha256="0" * 64)


@pytest.fixture
def nearest() -> type[NearestBackend]:
    return NearestBackend


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory):
    """One export cache for the whole session: the tiny model is exported once, not per test."""
    return tmp_path_factory.mktemp("bench-cache")
