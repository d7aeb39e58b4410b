import pytest
import torch

from esrgan.bench.models import checkpoint_from_onnx, prepare_model
from esrgan.errors import UsageError
from esrgan.models.checkpoints import load_generator


def test_export_is_cached_and_weights_round_trip_from_onnx(bench_cache, tmp_path):
    first = prepare_model(preset="tiny", cache=bench_cache, fp16=False, exporter="torchscript")
    mtime = first.files["fp32"].stat().st_mtime_ns
    again = prepare_model(preset="tiny", cache=bench_cache, fp16=False, exporter="torchscript")
    assert again.files["fp32"].stat().st_mtime_ns == mtime  # not exported twice
    assert again.sha256 == first.sha256 and first.spec.num_feat == 8
    rebuilt = load_generator(checkpoint_from_onnx(first.files["fp32"], tmp_path / "back.safetensors"))
    original = first.torch_model()
    for key, value in original.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key


def test_model_source_must_be_given_once(tmp_path):
    with pytest.raises(UsageError):
        prepare_model(cache=tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        prepare_model(tmp_path / "missing.safetensors", cache=tmp_path)


def test_default_preset_benchmarks_the_shipped_file(bench_cache, tmp_path, monkeypatch):
    import shutil

    import esrgan.runtime.default_model as dm

    tiny = prepare_model(preset="tiny", cache=bench_cache, fp16=False, exporter="torchscript")
    shipped = tmp_path / dm.MODEL_NAME
    shutil.copy(tiny.files["fp32"], shipped)
    monkeypatch.setattr(dm, "MODEL_DIR", tmp_path)
    model = prepare_model(preset="default", cache=tmp_path / "cache", fp16=False, exporter="torchscript")
    assert model.name == "default" and model.files["fp32"] == shipped
    assert torch.equal(model.torch_model().conv_first.weight, tiny.torch_model().conv_first.weight)


def test_default_preset_without_a_shipped_model_is_a_usage_error(tmp_path, monkeypatch):
    import esrgan.runtime.default_model as dm

    monkeypatch.setattr(dm, "MODEL_DIR", tmp_path)
    with pytest.raises(UsageError, match="not shipped"):
        prepare_model(preset="default", cache=tmp_path)


def test_preparation_steps_are_announced_and_the_cache_is_named(tmp_path):
    cache = tmp_path / "cache"
    first, again = [], []
    model = prepare_model(preset="tiny", cache=cache, fp16=False, exporter="torchscript", progress=first.append)
    prepare_model(preset="tiny", cache=cache, fp16=False, exporter="torchscript", progress=again.append)
    out_dir = model.files["fp32"].parent
    assert any(line.startswith("tiny preset: random-weight checkpoint") for line in first), first
    assert f"exporting tiny_x4 ({model.spec.describe()}) to ONNX once, cached in {out_dir}" in first, first
    assert any(line.startswith("  exporting model.onnx") for line in first), first  # the export's own steps
    assert again[-1] == f"using the cached ONNX export of tiny_x4 in {out_dir}"
    assert not any("exporting" in line for line in again)


def test_weights_round_trip_from_dynamo_onnx_with_zero_biases(bench_cache, tmp_path):
    # A fresh RRDBNet's dense-block biases are zero: the dynamo exporter drops them from its convs (and
    # the torchscript one shares them under one name); the rebuilt checkpoint must still hold them.
    model = prepare_model(preset="tiny", cache=bench_cache, fp16=False, exporter="dynamo")
    original = model.torch_model()
    assert not original.body[0].rdb1.conv1.bias.any()
    rebuilt = load_generator(checkpoint_from_onnx(model.files["fp32"], tmp_path / "back.safetensors"))
    for key, value in original.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
