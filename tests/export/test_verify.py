import numpy as np
import pytest

from esrgan.export.onnx_export import export_onnx
from esrgan.export.verify import available_devices, verify_images, verify_onnx
from tests.export.tiny import tiny_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model("x4", seed=5)
    return model, export_onnx(model, tmp_path_factory.mktemp("v") / "m.onnx", exporter="torchscript")


def test_default_images_are_two_sizes_one_odd_non_square():
    images = verify_images()
    assert len(images) >= 2 and images[0].shape[2] != images[0].shape[3] and images[0].shape[2] % 2 == 1
    assert images[0].dtype == np.float32 and 0 <= images[0].min() and images[0].max() <= 1
    assert not np.array_equal(images[0][..., :10, :10], images[1][..., :10, :10])


def test_matching_model_passes_with_figures(exported):
    model, path = exported
    report = verify_onnx(model, path, None, "fp32")
    assert report.passed and [c.device for c in report.checks] == available_devices()
    check = report.checks[0]
    assert check.parity.max_abs_err <= 1e-4 and len(check.shapes) == 2
    assert "max abs err" in check.line() and "PSNR" in check.line() and check.line().endswith("ok")
    assert report.figures()["cpu"]["passed"] is True


def test_other_weights_fail(exported):
    _, path = exported
    report = verify_onnx(tiny_model("x4", seed=6), path, None, "fp32")
    assert not report.passed and report.failures and "FAILED (needs max abs err <= 0.0001)" in report.lines()[0]


def test_uint8_images_accepted(exported, astronaut):
    model, path = exported
    report = verify_onnx(model, path, [astronaut[:15, :22], astronaut[50:70, 50:70]], "fp32")
    assert report.passed and report.checks[0].shapes == ((1, 3, 15, 22), (1, 3, 20, 20))


def test_to_nchw_converts_layouts_and_channels(astronaut):
    from esrgan.photographs import to_nchw

    rgb = to_nchw(astronaut[:5, :7])
    assert rgb.shape == (1, 3, 5, 7) and rgb.dtype == np.float32 and rgb.max() <= 1
    grey = to_nchw(astronaut[:5, :7], channels=1)
    assert grey.shape == (1, 1, 5, 7)
    np.testing.assert_allclose(grey[0, 0], rgb[0].mean(axis=0), rtol=1e-6)
    assert to_nchw(grey, channels=3).shape == (1, 3, 5, 7)
