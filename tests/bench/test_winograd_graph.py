"""benchmarks/winograd_graph.py's Winograd F(4x4, 3x3) module computes the convolution it replaces."""

from __future__ import annotations

import pytest

from benchmarks.winograd_graph import winograd_module


@pytest.mark.parametrize(("cin", "cout", "size"), [(3, 5, 8), (16, 8, 20)])
def test_winograd_equals_the_direct_convolution(cin, cout, size):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(cin, cout, 3, padding=1)
    x = torch.rand(1, cin, size, size)
    with torch.no_grad():
        torch.testing.assert_close(winograd_module(conv)(x), conv(x), rtol=1e-4, atol=1e-5)
