"""Networks that accept only some input sizes (multiple-of, minimum, square: SwinIR, DAT, ...): the tile
engine pads every batch to a size they accept and crops the output, on the tiled and whole-image paths."""

from __future__ import annotations

import numpy as np
import pytest

from esrgan.errors import CheckpointError, ModelError
from esrgan.metadata import SPEC, parse_metadata
from esrgan.models.spec import ForeignSpec, SizeRequirements, spec_from_dict
from esrgan.runtime import tiling
from esrgan.runtime.backends.base import Backend, BackendInfo
from esrgan.runtime.engine import TileEngine
from esrgan.runtime.images import from_array
from tests.runtime.conftest import gradient

SQUARE_8 = SizeRequirements(multiple_of=8, minimum=16, square=True)


class Picky(Backend):
    """x2 nearest that refuses (like the real network would) any window its requirements do not accept."""

    def __init__(self, requirements: SizeRequirements) -> None:
        self.scale, self.in_channels = 2, 3
        self.info = BackendInfo("fake", "fp32", "cpu")
        self.size_requirements = requirements
        self.shapes: list[tuple[int, ...]] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        h, w = batch.shape[2:]
        assert self.size_requirements.fit(h, w) == (h, w), f"window {h}x{w} does not meet {self.size_requirements}"
        self.shapes.append(batch.shape)
        return batch.repeat(2, axis=2).repeat(2, axis=3)


@pytest.mark.parametrize("height,width,expected", [
    (37, 53, (56, 56)), (5, 3, (16, 16)), (16, 16, (16, 16)), (17, 9, (24, 24)),
])
def test_fit_is_the_smallest_accepted_size(height, width, expected):
    assert SQUARE_8.fit(height, width) == expected
    assert SizeRequirements(multiple_of=4).fit(height, width) == (height + (-height) % 4, width + (-width) % 4)
    assert SizeRequirements().fit(height, width) == (height, width)


@pytest.mark.parametrize("tile", [0, 16, 24])
@pytest.mark.parametrize("size", [(21, 34), (5, 7)])  # larger than a tile, and smaller than the minimum
def test_engine_pads_windows_to_the_requirements_and_crops_the_output(tile, size):
    backend, done, failed = Picky(SQUARE_8), [], []
    engine = TileEngine(backend, tile, 3, 2, on_done=done.append, on_fail=lambda _w, m: failed.append(m))
    arr = gradient(*size)
    engine.submit(0, from_array(arr))
    assert not failed and backend.shapes
    assert all(s[2] == s[3] and s[2] % 8 == 0 and s[2] >= 16 for s in backend.shapes)
    np.testing.assert_array_equal(done[0].outputs[0], arr.repeat(2, 0).repeat(2, 1))


def test_without_requirements_windows_are_not_padded():
    backend, done = Picky(SizeRequirements()), []
    engine = TileEngine(backend, 0, 3, 1, on_done=done.append, on_fail=lambda _w, m: None)
    engine.submit(0, from_array(gradient(21, 34)))
    assert backend.shapes == [(1, 3, 21, 34)]  # the image itself: no border pad, no padding for requirements


def test_run_tiled_honours_the_requirements():
    arr = gradient(21, 34).astype(np.float32) / 255
    backend = Picky(SQUARE_8)
    out = tiling.run_tiled(backend.run, arr, 2, 16, 2, batch=2, requirements=SQUARE_8)
    np.testing.assert_allclose(out / 255.0, arr.repeat(2, 0).repeat(2, 1), atol=1 / 255)


def test_requirements_travel_in_the_model_metadata():
    spec = ForeignSpec(arch="spandrel:SwinIR", name="SwinIR", scale=2, multiple_of=8, minimum=16, square=True)
    meta = parse_metadata({SPEC: spec.to_json()}, "model.onnx")
    assert meta.scale == 2 and meta.size_multiple == 8 and meta.size_requirements == SQUARE_8
    with pytest.raises(ModelError, match="multiple_of >= 1"):
        parse_metadata({SPEC: spec.to_json().replace('"multiple_of": 8', '"multiple_of": 0')}, "model.onnx")
    with pytest.raises(CheckpointError, match="unknown spec fields"):
        spec_from_dict({**spec.to_dict(), "extra": 1})
