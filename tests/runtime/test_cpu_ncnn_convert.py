"""The benchmark's own RRDBNet -> ncnn writer: same output as PyTorch on a photograph."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from esrgan.parity import compare, passes
from tests.cpu_models import TINY, photo_batch

ncnn = pytest.importorskip("ncnn")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_written_ncnn_model_matches_pytorch(tmp_path):
    import torch
    from ncnn_convert import write_ncnn

    from esrgan.models.build import build_generator

    torch.manual_seed(0)
    model = build_generator(TINY).eval()
    write_ncnn(model, tmp_path / "m.param", tmp_path / "m.bin")
    x = photo_batch(size=20)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    net = ncnn.Net()
    net.opt.num_threads = 1
    net.load_param(str(tmp_path / "m.param"))
    net.load_model(str(tmp_path / "m.bin"))
    ex = net.create_extractor()
    ex.input("in0", ncnn.Mat(np.ascontiguousarray(x[0])).clone())
    _, out = ex.extract("out0")
    y = np.array(out)[None]
    assert y.shape == ref.shape == (1, 3, 80, 80)
    assert passes(compare(ref, y), "fp32")
