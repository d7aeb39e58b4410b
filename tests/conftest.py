"""Shared fixtures: tiny models and real photographs that ship inside scikit-image."""

from __future__ import annotations

import os

import numpy as np
import pytest

# Keep the suite predictable on 2 shared cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """One esrgan cache for the session, never the user's: the tests' tiny models would otherwise fill
    ~/.cache/esrgan with compiled blobs and measured figures, and a record left there by another version
    could decide what a test sees. Subprocesses inherit it through the environment."""
    before = os.environ.get("ESRGAN_CACHE_DIR")
    os.environ["ESRGAN_CACHE_DIR"] = str(tmp_path_factory.mktemp("esrgan-cache"))
    yield
    if before is None:
        os.environ.pop("ESRGAN_CACHE_DIR", None)
    else:
        os.environ["ESRGAN_CACHE_DIR"] = before


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
