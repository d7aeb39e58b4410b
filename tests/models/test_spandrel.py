"""Checkpoints outside the ESRGAN family load through spandrel; the ESRGAN family stays on our loader
and agrees with spandrel on every layout we read."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from esrgan.errors import CheckpointError, DependencyError, install_hint
from esrgan.models.checkpoints import describe_checkpoint, load_generator, read_checkpoint, save_generator
from esrgan.models.spec import ForeignSpec, spec_from_json
from tests.models.published_layouts import gan_spec, random_model, rrdb_spec, to_official, to_old_arch

spandrel = pytest.importorskip("spandrel")


def compact_checkpoint(path, seed: int = 0):
    """A tiny Real-ESRGAN SRVGGNetCompact in the layout of its releases (``params`` wrapper)."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    net = Compact(num_feat=8, num_conv=2, upscale=2).eval()
    torch.save({"params": net.state_dict()}, path)
    return net


def test_unrecognised_checkpoint_loads_through_spandrel(tmp_path):
    net = compact_checkpoint(tmp_path / "compact.pth")
    model = load_generator(tmp_path / "compact.pth")
    assert model.format == "spandrel"
    assert model.spec == ForeignSpec(arch="spandrel:Compact", name=model.spec.name, scale=2)
    x = torch.rand(1, 3, 11, 7)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    assert "(spandrel) x2" in str(describe_checkpoint(tmp_path / "compact.pth"))


def test_spandrel_model_exports_verified_with_its_spec_in_the_metadata(tmp_path):
    from esrgan.export.onnx_metadata import read_metadata
    from esrgan.export.pipeline import export_artifacts
    from esrgan.metadata import SPEC, parse_metadata

    compact_checkpoint(tmp_path / "compact.pth")
    result = export_artifacts(tmp_path / "compact.pth", tmp_path / "out")
    assert result.verified and result.onnx_fp16 is not None
    for path in (result.onnx_fp32, result.onnx_fp16):
        props = read_metadata(path)
        meta = parse_metadata(props, str(path))
        assert isinstance(meta.spec, ForeignSpec) and meta.scale == 2
        assert json.loads(props["esrgan.parity"])["cpu"]["passed"]
        assert spec_from_json(props[SPEC]) == result.spec
    # the checkpoint written next to the ONNX files loads back through spandrel, with the same spec
    assert load_generator(result.checkpoint).spec == result.spec


def test_non_sr_model_is_refused_in_one_line(tmp_path):
    from spandrel.architectures.DnCNN import DnCNN

    torch.save(DnCNN(in_nc=3, out_nc=3, nc=8, nb=8, act_mode="R").state_dict(), tmp_path / "dncnn.pth")
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path / "dncnn.pth")
    message = str(err.value)
    assert "\n" not in message and "DnCNN" in message and "Restoration" in message and "not an image-to-image" in message


def test_checkpoint_unknown_to_both_loaders_names_both(tmp_path):
    torch.save({"weird.weight": torch.zeros(3, 3)}, tmp_path / "weird.pth")
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path / "weird.pth")
    message = str(err.value)
    assert "\n" not in message and "unknown checkpoint layout" in message and "spandrel" in message
    assert "weird.weight" in message


def test_missing_spandrel_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    compact_checkpoint(tmp_path / "compact.pth")
    monkeypatch.setitem(sys.modules, "spandrel", None)  # import spandrel now raises ImportError
    with pytest.raises(DependencyError) as err:
        load_generator(tmp_path / "compact.pth")
    assert "\n" not in str(err.value) and install_hint("models") in str(err.value)


def test_broken_esrgan_family_file_keeps_the_project_error(tmp_path):
    state = random_model(rrdb_spec(4)).state_dict()
    del state["conv_hr.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="missing tensor 'conv_hr.weight'") as err:
        load_generator(tmp_path / "broken.pth")
    assert "spandrel" not in str(err.value)


def test_foreign_spec_claim_must_match_the_tensors(tmp_path):
    from safetensors.torch import save_file

    from esrgan.metadata import SPEC

    net = compact_checkpoint(tmp_path / "compact.pth")
    claim = ForeignSpec(arch="spandrel:Compact", name="RealESRGAN Compact", scale=4)
    save_file(dict(net.state_dict()), str(tmp_path / "claims.safetensors"), metadata={SPEC: claim.to_json()})
    with pytest.raises(CheckpointError, match="says .* x4 .*, the tensors are .* x2"):
        load_generator(tmp_path / "claims.safetensors")


# ---- the ESRGAN family: our loader against spandrel --------------------------------------------------

def _rrdb(scale: int, **kw):
    # spandrel's ESRGAN always builds 32 growth channels (the published value); ours reads it from the file
    return rrdb_spec(scale, nf=8, nb=1, gc=32, **kw)


def _layouts():
    """(name, spec, state dict in the published layout) for every ESRGAN-family layout we read."""
    return [
        ("esrgan-own-x4", _rrdb(4), None),  # this project's safetensors with the spec in its metadata
        ("basicsr-x4", _rrdb(4), lambda sd: sd),
        ("basicsr-x2-unshuffle", _rrdb(2, unshuffle=True), lambda sd: sd),
        ("basicsr-x1-unshuffle", _rrdb(1, unshuffle=True), lambda sd: sd),
        ("basicsr-x2", _rrdb(2), lambda sd: sd),
        ("official-x4", _rrdb(4), to_official),
        ("official-x8", _rrdb(8), to_official),
        ("old-arch-x4", _rrdb(4), lambda sd: to_old_arch(sd, 1, 2)),
        ("old-arch-x2", _rrdb(2), lambda sd: to_old_arch(sd, 1, 1)),
        ("grayscale-x4", _rrdb(4, ch=1), lambda sd: sd),
        ("pytorch-gan-x4", gan_spec(4), lambda sd: sd),
    ]


#: layouts spandrel 0.4 does not read: PyTorch-GAN's GeneratorRRDB (ImageNet-normalised I/O, other names)
SPANDREL_CANNOT = {"pytorch-gan-x4"}


@pytest.mark.parametrize("name,spec,to_layout", _layouts(), ids=[n for n, _, _ in _layouts()])
def test_esrgan_family_matches_spandrel(tmp_path, name, spec, to_layout):
    if to_layout is None:
        path = save_generator(random_model(spec), tmp_path / f"{name}.safetensors")
    else:
        path = tmp_path / f"{name}.pth"
        torch.save(to_layout(random_model(spec).state_dict()), path)
    ours = load_generator(path)
    assert ours.format != "spandrel"  # the family stays on the project's loader
    state, _ = read_checkpoint(path)
    if name in SPANDREL_CANNOT:
        with pytest.raises(spandrel.UnsupportedModelError):
            spandrel.ModelLoader().load_from_state_dict(state)
        return
    theirs = spandrel.ModelLoader().load_from_state_dict(state)
    assert theirs.scale == spec.scale and theirs.input_channels == spec.num_in_ch
    x = torch.rand(1, spec.num_in_ch, 12, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ours(x).numpy(), theirs.model.eval()(x).numpy()
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1e-5


def test_export_with_a_fixed_input_size_is_refused_in_one_line(tmp_path, monkeypatch):
    """Some exporters specialise a network's input size silently: such a file would run at one size only."""
    from onnx import TensorProto, helper

    from esrgan.errors import ModelError
    from esrgan.export import onnx_export

    def fixed_graph(model, example, opset):
        x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 24, 40])
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3, 48, 80])
        node = helper.make_node("Resize", ["input", "", "scales"], ["output"], mode="nearest")
        scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
        graph = helper.make_graph([node], "g", [x], [y], initializer=[scales])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])

    compact_checkpoint(tmp_path / "compact.pth")
    model = load_generator(tmp_path / "compact.pth")
    monkeypatch.setattr(onnx_export, "_export_dynamo", fixed_graph)
    with pytest.raises(ModelError) as err:
        onnx_export.export_onnx(model, tmp_path / "model.onnx")
    assert "\n" not in str(err.value) and "fixed the input height 24, width 40" in str(err.value)
    assert not (tmp_path / "model.onnx").exists()


def test_exporter_known_to_crash_on_an_architecture_is_refused_before_it_runs(tmp_path):
    from esrgan.errors import ModelError
    from esrgan.export.onnx_export import export_onnx

    model = torch.nn.Conv2d(3, 3, 1)
    model.spec = ForeignSpec(arch="spandrel:SPAN", name="SPAN", scale=1)
    with pytest.raises(ModelError, match="dynamo exporter cannot export SPAN: .*; use --exporter torchscript"):
        export_onnx(model, tmp_path / "model.onnx", exporter="dynamo")
    assert not (tmp_path / "model.onnx").exists()


def test_a_spandrel_spec_alone_does_not_build_a_network():
    from esrgan.models.build import build_generator

    with pytest.raises(CheckpointError, match="spandrel builds this network from a checkpoint's weights"):
        build_generator(ForeignSpec(arch="spandrel:SwinIR", name="SwinIR", scale=2))


def test_the_pytorch_reference_leaves_the_callers_input_alone():
    """RCAN scales its input in place; the reference must not hand the next backend a changed array."""
    from esrgan.runtime.backends.torch_backend import TorchBackend

    class ScalesInPlace(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)
            self.spec = ForeignSpec(arch="spandrel:RCAN", name="RCAN", scale=1)

        def forward(self, x):
            x *= 255.0
            return self.conv(x) / 255.0

    batch = np.random.default_rng(0).random((1, 3, 5, 6), dtype=np.float32)
    before = batch.copy()
    backend = TorchBackend(ScalesInPlace())
    first, second = backend.run(batch), backend.run(batch)
    np.testing.assert_array_equal(batch, before)
    np.testing.assert_array_equal(first, second)
