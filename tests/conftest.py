"""Shared fixtures: tiny models and real photographs that ship inside scikit-image."""

from __future__ import annotations

import os

import numpy as np
import pytest

# Keep the suite predictable on 2 shared cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def photo(name: str = "astronaut") -> np.ndarray:
    """An RGB uint8 photograph from scikit-image's bundled data (no download)."""
    from esrgan.photographs import photograph

    return photograph(name)


@pytest.fixture
def tiny_spec():
    from esrgan.models.spec import GeneratorSpec

    return GeneratorSpec(arch="rrdbnet", scale=4, num_feat=8, num_block=1, num_grow_ch=4)


@pytest.fixture
def astronaut() -> np.ndarray:
    return photo("astronaut")
