"""Every published checkpoint layout round-trips through load_generator / describe_checkpoint."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from esrgan.models import describe_checkpoint, load_generator, save_generator
from tests.models.published_layouts import gan_spec, random_model, rrdb_spec, to_official, to_old_arch


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, size=(9, 12)) -> float:
    x = torch.rand(1, a.spec.num_in_ch, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


def _write(path, state) -> None:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_own_format_round_trip(tmp_path, suffix):
    model = random_model(rrdb_spec(4))
    path = save_generator(model, tmp_path / f"g{suffix}")
    loaded = load_generator(path)
    assert loaded.spec == model.spec and not loaded.training
    assert describe_checkpoint(path).format == "esrgan"
    assert _same_outputs(model, loaded) <= 1e-6


@pytest.mark.parametrize(
    "scale,unshuffle", [(1, True), (2, True), (4, False), (8, False)], ids=["x1", "x2", "x4", "x8"]
)
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_basicsr_round_trip(tmp_path, scale, unshuffle, suffix):
    model = random_model(rrdb_spec(scale, unshuffle=unshuffle))
    path = tmp_path / f"net_g{suffix}"
    _write(path, model.state_dict())
    loaded = load_generator(path)
    info = describe_checkpoint(path)
    assert info.format == "basicsr"
    assert loaded.spec == model.spec, info
    assert _same_outputs(model, loaded, size=(7, 10)) <= 1e-6


def test_basicsr_prefers_params_ema_and_strips_module_prefix(tmp_path):
    ema, plain = random_model(rrdb_spec(4), seed=1), random_model(rrdb_spec(4), seed=2)
    wrap = lambda m: {f"module.{k}": v for k, v in m.state_dict().items()}  # noqa: E731
    path = tmp_path / "RealESRGAN_like.pth"
    torch.save({"params": wrap(plain), "params_ema": wrap(ema)}, path)
    loaded = load_generator(path)
    assert _same_outputs(ema, loaded) <= 1e-6
    assert _same_outputs(plain, loaded) > 1e-3  # the other set really differs
    notes = " ".join(describe_checkpoint(path).notes)
    assert "params_ema" in notes and "module." in notes


def test_basicsr_params_only(tmp_path):
    model = random_model(rrdb_spec(2, unshuffle=True))
    path = tmp_path / "p.pth"
    torch.save({"params": model.state_dict()}, path)
    assert _same_outputs(model, load_generator(path)) <= 1e-6
    assert "weights from 'params'" in describe_checkpoint(path).notes[0]


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_official_round_trip(tmp_path, scale):
    model = random_model(rrdb_spec(scale))
    path = tmp_path / "RRDB_ESRGAN_x4.pth"
    torch.save(to_official(model.state_dict()), path)
    loaded = load_generator(path)
    assert describe_checkpoint(path).format == "esrgan-official"
    assert loaded.spec == model.spec
    assert _same_outputs(model, loaded) <= 1e-6


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_old_arch_round_trip(tmp_path, scale):
    spec = rrdb_spec(scale, nb=3)
    model = random_model(spec)
    path = tmp_path / "old.pth"
    torch.save(to_old_arch(model.state_dict(), spec.num_block, spec.num_upsample), path)
    loaded = load_generator(path)
    assert describe_checkpoint(path).format == "esrgan-old-arch"
    assert loaded.spec == spec
    assert _same_outputs(model, loaded) <= 1e-6


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_pytorch_gan_round_trip(tmp_path, scale):
    model = random_model(gan_spec(scale))
    path = tmp_path / "generator_0.pth"
    torch.save(model.state_dict(), path)
    loaded = load_generator(path)
    assert describe_checkpoint(path).format == "pytorch-gan"
    assert loaded.spec == model.spec
    assert _same_outputs(model, loaded) <= 1e-6


def test_grayscale_and_sizes_come_from_shapes_not_names(tmp_path):
    spec = rrdb_spec(2, nf=12, nb=3, gc=6, unshuffle=True, ch=1)
    model = random_model(spec)
    path = tmp_path / "RealESRGAN_x4plus_23b_nf64.pth"  # a misleading name must not matter
    torch.save(model.state_dict(), path)
    assert load_generator(path).spec == spec


def test_fp16_checkpoint_loads_as_fp32(tmp_path):
    model = random_model(rrdb_spec(4))
    half = {k: v.half() for k, v in to_official(model.state_dict()).items()}
    path = tmp_path / "half.safetensors"
    save_file(half, str(path))
    loaded = load_generator(path)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    reference = random_model(rrdb_spec(4))
    reference.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    assert _same_outputs(reference, loaded) <= 1e-6
    assert any("float16" in n for n in describe_checkpoint(path).notes)


def test_legacy_torch_serialization_loads_with_weights_only(tmp_path):
    model = random_model(rrdb_spec(4))
    path = tmp_path / "legacy.pth"
    torch.save(to_official(model.state_dict()), path, _use_new_zipfile_serialization=False)
    assert _same_outputs(model, load_generator(path)) <= 1e-6


def test_format_detected_by_content_not_suffix(tmp_path):
    model = random_model(rrdb_spec(4))
    path = tmp_path / "actually_safetensors.pth"
    save_file(model.state_dict(), str(path))
    assert _same_outputs(model, load_generator(path)) <= 1e-6


def test_describe_reports_cost_and_size(tmp_path):
    model = random_model(rrdb_spec(4))
    path = tmp_path / "g.pth"
    torch.save(model.state_dict(), path)
    info = describe_checkpoint(path)
    assert info.num_params == sum(p.numel() for p in model.parameters())
    assert info.macs_per_pixel == model.spec.macs_per_pixel()
    assert "basicsr" in str(info) and "x4 nf8 nb2 gc4" in str(info)
