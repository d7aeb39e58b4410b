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
