"""The RRDBNet -> ncnn writer and the ncnn peer benchmark row: same output as PyTorch on a photograph."""

from __future__ import annotations

import numpy as np
import pytest

from esrgan.parity import compare, passes
from tests.cpu_models import TINY, photo_batch

pytest.importorskip("ncnn")


def test_ncnn_peer_row_matches_pytorch(tmp_path, monkeypatch):
    import torch

    from esrgan.bench.models import PreparedModel
    from esrgan.bench.rows import RowOptions, all_rows
    from esrgan.models.build import build_generator
    from esrgan.models.checkpoints import save_generator

    monkeypatch.setenv("ESRGAN_BENCH_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = build_generator(TINY).eval()
    ckpt = tmp_path / "tiny.safetensors"
    save_generator(model, ckpt)
    row = all_rows()["ncnn-fp32"]
    assert row.peer and row.device == "cpu"
    backend = row.factory(PreparedModel("tiny", TINY, ckpt, "0" * 64), RowOptions(threads=1))
    x = np.concatenate([photo_batch(size=20), photo_batch("coffee", size=20, y=150, x=250)])
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    y = backend.run(x)
    assert y.shape == ref.shape == (2, 3, 80, 80)
    assert passes(compare(ref, y), "fp32")
    assert backend.info.name == "ncnn-cpu"
    assert len(list((tmp_path / "cache" / "ncnn").glob("*/model.param"))) == 1
