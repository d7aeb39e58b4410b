"""Real-ESRGAN's compact model (SRVGGNetCompact) read from ncnn files (esrgan.bench.ncnn_reader).

No download here: the test writes ncnn files in the layout of the realesr-animevideov3 files of
realesrgan-ncnn-vulkan (Input, Split, conv/PReLU chain, PixelShuffle, nearest Interp of the input,
BinaryOp add; optionally a final bicubic Interp) from a small randomly initialised PyTorch model, reads
them back under Real-ESRGAN's key names and loads them through spandrel's architecture detection.
"""

from __future__ import annotations

import numpy as np
import pytest

from esrgan.bench.ncnn_reader import final_resize, ncnn_to_basicsr, ncnn_to_compact

torch = pytest.importorskip("torch")
spandrel = pytest.importorskip("spandrel")

FEAT, CONVS, SCALE = 5, 3, 3  # 5*3*9 = 135 conv_first weights: odd, like the sizes ncnn pads in FP16


def write_compact_ncnn(model, param, weights, resize: float | None = None) -> None:  # noqa: ANN001
    """``model`` (spandrel's Compact) as ncnn files, layer by layer as ncnn's converter writes them."""
    lines, blob, prev = [], b"", "in_conv"
    for i, layer in enumerate(model.body):
        out = f"b{i}"
        if isinstance(layer, torch.nn.Conv2d):
            w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
            lines.append(f"Convolution Conv_{i} 1 1 {prev} {out} 0={w.shape[0]} 1=3 4=1 5=1 6={w.size}")
            blob += np.zeros(1, np.uint32).tobytes() + w.astype(np.float32).tobytes() + b.tobytes()
        else:
            slope = layer.weight.detach().numpy()
            lines.append(f"PReLU PRelu_{i} 1 1 {prev} {out} 0={slope.size}")
            blob += slope.astype(np.float32).tobytes()
        prev = out
    s = model.upscale
    tail = "sum" if resize else "output"
    lines += [f"PixelShuffle DepthToSpace 1 1 {prev} shuffled 0={s}",
              f"Interp Resize_base 1 1 in_base base 0=1 1={s:e} 2={s:e}",
              f"BinaryOp Add 2 1 shuffled base {tail}"]
    if resize:
        lines.append(f"Interp Resize_out 1 1 sum output 0=3 1={resize:e} 2={resize:e}")
    lines = ["Input input 0 1 data", "Split splitncnn_input0 1 2 data in_base in_conv", *lines]
    n_blobs = len({tok for line in lines for tok in line.split()[4:] if "=" not in tok})
    param.write_text("\n".join(["7767517", f"{len(lines)} {n_blobs}", *lines]) + "\n")
    weights.write_bytes(blob)


@pytest.fixture()
def compact(tmp_path):
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    model = Compact(num_feat=FEAT, num_conv=CONVS, upscale=SCALE).eval()
    with torch.no_grad():  # PReLU starts at 0.25 everywhere: make each slope distinct, so a swap would show
        for layer in model.body:
            if isinstance(layer, torch.nn.PReLU):
                layer.weight.uniform_(0.0, 0.5)
    param, weights = tmp_path / "c.param", tmp_path / "c.bin"
    write_compact_ncnn(model, param, weights)
    return model, param, weights


def test_compact_weights_load_through_spandrel_and_compute_the_same(compact):
    model, param, weights = compact
    state = ncnn_to_compact(param, weights)
    want = model.state_dict()
    assert set(state) == set(want)
    for key, value in want.items():
        np.testing.assert_array_equal(state[key], value.numpy(), err_msg=key)
    loaded = spandrel.ModelLoader().load_from_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    assert loaded.architecture.id == "Compact" and loaded.scale == SCALE
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, ref = loaded.model.eval()(x), model(x)
    assert got.shape == (1, 3, 36, 30)
    assert float((got - ref).abs().max()) <= 1e-5


def test_written_files_are_the_compact_graph_on_ncnn(compact):
    """The files the reader is tested on compute the PyTorch model on ncnn itself (when installed)."""
    pytest.importorskip("ncnn")
    from esrgan.runtime.backends.ncnn_backend import NcnnBackend

    model, param, weights = compact
    assert weights == param.with_suffix(".bin")
    x = np.random.default_rng(2).random((1, 3, 9, 11), dtype=np.float32)
    got = NcnnBackend(param, precision="fp32", scale=SCALE).run(x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4


def test_final_resize_is_read_and_layouts_are_told_apart(compact, tmp_path):
    model, param, weights = compact
    assert final_resize(param) is None
    resized = tmp_path / "r.param"
    write_compact_ncnn(model, resized, tmp_path / "r.bin", resize=0.75)
    assert final_resize(resized) == 0.75
    with pytest.raises(ValueError, match="not an RRDBNet layout"):
        ncnn_to_basicsr(param, weights)


def test_an_rrdbnet_file_is_not_taken_for_a_compact_model(tmp_path):
    from esrgan.models.build import build_generator
    from esrgan.models.spec import GeneratorSpec
    from esrgan.runtime.ncnn_writer import write_ncnn

    spec = GeneratorSpec(arch="rrdbnet", scale=4, num_feat=4, num_block=1, num_grow_ch=2)
    state = {k: v.numpy() for k, v in build_generator(spec).state_dict().items()}
    param, weights = tmp_path / "m.param", tmp_path / "m.bin"
    write_ncnn(state, spec, param, weights)
    with pytest.raises(ValueError, match="not an SRVGGNetCompact chain"):
        ncnn_to_compact(param, weights)
