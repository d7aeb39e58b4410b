import math

import pytest
import torch

from esrgan.errors import CheckpointError, UsageError
from esrgan.export.interpolate import check_alpha, interpolate_generators, interpolate_state_dicts
from tests.export.tiny import tiny_model


def _pair():
    return tiny_model("x4", seed=1), tiny_model("x4", seed=2)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.5])
def test_alpha_endpoints_and_mean(alpha):
    psnr, gan = _pair()
    out = interpolate_state_dicts(psnr.state_dict(), gan.state_dict(), alpha)
    for key, p in psnr.state_dict().items():
        expected = {0.0: p, 1.0: gan.state_dict()[key], 0.5: (p + gan.state_dict()[key]) / 2}[alpha]
        assert out[key].dtype == torch.float32
        torch.testing.assert_close(out[key], expected, rtol=0, atol=1e-7)
    # the pair must actually differ, or the test proves nothing
    assert not torch.equal(psnr.state_dict()["conv_first.weight"], gan.state_dict()["conv_first.weight"])


def test_fp16_inputs_are_mixed_in_fp32():
    psnr, gan = _pair()
    half = {k: v.half() for k, v in gan.state_dict().items()}
    out = interpolate_state_dicts(psnr.state_dict(), half, 0.8)
    assert all(v.dtype == torch.float32 for v in out.values())


def test_interpolated_generator_runs():
    psnr, gan = _pair()
    model = interpolate_generators(psnr, gan, 0.8)
    w = model.state_dict()["conv_last.bias"]
    torch.testing.assert_close(w, 0.2 * psnr.conv_last.bias + 0.8 * gan.conv_last.bias)
    assert model(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28)


@pytest.mark.parametrize("alpha", [-0.1, 1.01, math.nan, math.inf])
def test_alpha_out_of_range(alpha):
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        check_alpha(alpha)
    psnr, gan = _pair()
    with pytest.raises(UsageError):
        interpolate_state_dicts(psnr.state_dict(), gan.state_dict(), alpha)


def test_different_specs_are_named():
    with pytest.raises(CheckpointError, match="x4 .* vs .*x2"):
        interpolate_generators(tiny_model("x4"), tiny_model("x2u"), 0.5)


def test_missing_keys_are_named():
    psnr, gan = _pair()
    sp = psnr.state_dict()
    sg = dict(gan.state_dict())
    del sg["conv_hr.bias"]
    with pytest.raises(CheckpointError, match="only in PSNR: conv_hr.bias") as exc:
        interpolate_state_dicts(sp, sg, 0.5)
    assert "\n" not in str(exc.value)


def test_shape_mismatch_is_named():
    psnr, gan = _pair()
    sg = dict(gan.state_dict())
    sg["conv_last.bias"] = torch.zeros(4)
    with pytest.raises(CheckpointError, match=r"conv_last.bias is \(3,\) vs \(4,\)"):
        interpolate_state_dicts(psnr.state_dict(), sg, 0.5)
