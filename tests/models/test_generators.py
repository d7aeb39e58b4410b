import pytest
import torch

from esrgan.models import GeneratorRRDB, RRDBNet, build_generator, count_parameters, paper_spec
from esrgan.models.spec import GeneratorSpec


def test_paper_x4_parameter_count():
    assert count_parameters(build_generator(paper_spec(4))) == 16_697_987


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
@pytest.mark.parametrize("size", [(7, 9), (16, 16), (5, 12)])
def test_rrdbnet_output_shapes(scale, size):
    spec = GeneratorSpec(scale=scale, num_feat=8, num_block=1, num_grow_ch=4, pixel_unshuffle=scale in (1, 2))
    net = build_generator(spec).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, size[0] * scale, size[1] * scale)


def test_old_layout_x2_has_one_upsampler():
    net = RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4, pixel_unshuffle=False)
    assert hasattr(net, "conv_up1") and not hasattr(net, "conv_up2")
    assert net(torch.rand(1, 3, 5, 7)).shape == (1, 3, 10, 14)


def test_pytorch_gan_uses_default_leaky_slope_and_pixelshuffle():
    g = GeneratorRRDB(channels=3, filters=8, num_res_blocks=1, num_upsample=2)
    slopes = {m.negative_slope for m in g.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.01}
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in g.modules()) == 2
    assert g(torch.rand(1, 3, 6, 5)).shape == (1, 3, 24, 20)


def test_macs_per_pixel_matches_paper_model():
    # 17.93 M MAC per input pixel for the paper's x4 model (convolutions only)
    assert paper_spec(4).macs_per_pixel() == pytest.approx(17.926848e6, rel=1e-6)
