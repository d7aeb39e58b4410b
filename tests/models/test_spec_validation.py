"""Spec metadata is untrusted: wrong types, claims the tensors do not back, and NaN weights are one line."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from esrgan.errors import CheckpointError, ModelError
from esrgan.metadata import SPEC, parse_metadata
from esrgan.metadata import SPEC as SPEC_KEY
from esrgan.models import checkpoints
from esrgan.models.build import build_generator
from esrgan.models.checkpoints import describe_checkpoint, load_generator
from esrgan.models.spec import GeneratorSpec

TINY = GeneratorSpec(scale=4, num_feat=8, num_block=1, num_grow_ch=4)
BAD_VALUES = [None, 8.0, True, [8], "8", {"n": 8}]


def _write(path, spec_dict, state=None):
    state = state if state is not None else build_generator(TINY).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={SPEC_KEY: json.dumps(spec_dict)})
    return path


def _one_line(exc_info, path) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    return msg


@pytest.mark.parametrize("field", ["num_feat", "scale", "num_block", "num_in_ch"])
@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_wrong_types_in_checkpoint_spec_are_one_line(tmp_path, field, value):
    path = _write(tmp_path / "m.safetensors", {**TINY.to_dict(), field: value})
    for load in (load_generator, describe_checkpoint):
        with pytest.raises(CheckpointError) as err:
            load(path)
        assert field in _one_line(err, path)


@pytest.mark.parametrize("field,value", [("arch", None), ("arch", ["rrdbnet"]), ("pixel_unshuffle", "yes"),
                                         ("pixel_unshuffle", 1)])
def test_wrong_types_of_arch_and_flag(tmp_path, field, value):
    path = _write(tmp_path / "m.safetensors", {**TINY.to_dict(), field: value})
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    _one_line(err, path)


@pytest.mark.parametrize("text", ["null", "[1, 2]", '"x"', "{bad json", '{"num_feat": null}', '{"1": 2}'])
def test_malformed_onnx_spec_metadata_is_a_model_error(text):
    with pytest.raises(ModelError) as err:
        parse_metadata({SPEC: text, "esrgan.scale": "4"}, "m.onnx")
    assert str(err.value).startswith("m.onnx: ") and "\n" not in str(err.value)


def test_spec_normalises_integer_types():
    import numpy as np

    spec = GeneratorSpec(scale=np.int64(4), num_feat=torch.tensor(8).item(), num_block=1, num_grow_ch=4)
    assert type(spec.scale) is int and json.loads(spec.to_json())["scale"] == 4


def test_huge_claimed_spec_is_checked_against_the_tensors_before_building(tmp_path, monkeypatch):
    path = _write(tmp_path / "claim.safetensors", {**TINY.to_dict(), "num_feat": 1024, "num_block": 200})
    built = []

    def refuse(spec):
        built.append(spec)
        raise AssertionError(f"built {spec.describe()} before checking the tensors")

    monkeypatch.setattr(checkpoints, "build_generator", refuse)
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    msg = _one_line(err, path)
    assert "nf1024" in msg and ("missing tensor" in msg or "shape" in msg)
    assert built == []  # nothing was built at the claimed size


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load(tmp_path, bad):
    state = build_generator(TINY).state_dict()
    state["conv_last.weight"][0, 0, 0, 0] = bad
    path = _write(tmp_path / "nan.safetensors", TINY.to_dict(), state)
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    assert "conv_last.weight" in _one_line(err, path) and "NaN" in str(err.value)
    torch.save(state, tmp_path / "nan.pth")  # a third-party layout (no spec) is checked the same way
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_generator(tmp_path / "nan.pth")


@pytest.mark.parametrize("field,value", [
    ("num_block", 1_000_000), ("num_feat", 10**400), ("num_feat", 2**40), ("num_grow_ch", 2**62),
    ("num_in_ch", 4096), ("num_block", 300),
])
def test_huge_spec_claims_are_one_line(tmp_path, field, value):
    # Python's json writes 10**400 as a bare integer; building at such sizes hung or overflowed.
    path = _write(tmp_path / "m.safetensors", {**TINY.to_dict(), field: value})
    for load in (load_generator, describe_checkpoint):
        with pytest.raises(CheckpointError) as err:
            load(path)
        msg = _one_line(err, path)
        assert field in msg and "at most" in msg


def test_claimed_block_count_is_checked_without_building_that_many(tmp_path, monkeypatch):
    from esrgan.models import build

    built = []
    real = build.build_generator
    monkeypatch.setattr(build, "build_generator", lambda spec, *a, **k: built.append(spec) or real(spec, *a, **k))
    path = _write(tmp_path / "m.safetensors", {**TINY.to_dict(), "num_block": 200})
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    assert "missing tensor 'body.1." in _one_line(err, path)
    assert built and max(s.num_block for s in built) == 1


@pytest.mark.parametrize("spec", [
    TINY, TINY.replace(num_block=3, scale=8), TINY.replace(scale=2, pixel_unshuffle=True), TINY.replace(scale=1),
    GeneratorSpec(arch="pytorch-gan", scale=2, num_feat=8, num_block=4, num_grow_ch=8),
], ids=lambda s: s.describe())
def test_expected_shapes_are_the_built_generators(spec):
    from esrgan.models.formats import expected_shapes

    built = {k: tuple(v.shape) for k, v in build_generator(spec).state_dict().items()}
    assert list(expected_shapes(spec).items()) == list(built.items())


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a": ' * 3000 + "1" + "}" * 3000,
                                  json.dumps({**TINY.to_dict(), "pad": "x" * 10_000})])
def test_deep_or_long_spec_metadata_is_one_line(tmp_path, text):
    with pytest.raises(ModelError) as err:
        parse_metadata({SPEC: text, "esrgan.scale": "4"}, "m.onnx")
    assert str(err.value).startswith("m.onnx: ") and "\n" not in str(err.value)
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in build_generator(TINY).state_dict().items()}, str(path),
              metadata={SPEC_KEY: text})
    with pytest.raises(CheckpointError) as err:
        describe_checkpoint(path)
    _one_line(err, path)


def test_inspecting_a_nan_checkpoint_describes_it_and_says_so(tmp_path):
    from click.testing import CliRunner

    from esrgan.export.cli import main

    state = build_generator(TINY).state_dict()
    state["body.0.rdb2.conv3.weight"][0, 0, 0, 0] = float("nan")
    path = _write(tmp_path / "nan.safetensors", TINY.to_dict(), state)
    info = describe_checkpoint(path)
    assert info.spec == TINY and any("NaN" in n and "body.0.rdb2.conv3.weight" in n for n in info.notes)
    r = CliRunner().invoke(main, ["--inspect", str(path)])
    assert r.exit_code == 0 and "NaN" in r.output and "unusable for inference" in r.output, r.output
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_generator(path)  # inference still refuses it
