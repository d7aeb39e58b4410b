"""Write an RRDBNet (x4, no pixel-unshuffle) as ncnn .param/.bin, for the ncnn peer rows of the benchmarks.

Why our own writer: pnnx (PyPI 20261020) converts the small model but not the paper-size one: its
``pass_ncnn`` stage grew past 15 GB of memory after 6 minutes on the 23-block network (with or without a
second input shape) and had to be stopped. The network is a fixed chain of 3x3 convolutions, concats,
LeakyReLUs, scaled residual adds and nearest x2 upsamplings, so writing ncnn's text format directly is
short. Format (ncnn wiki "param and model file structure"): a magic line, layer/blob counts, one line
per layer ``Type name n_in n_out inputs... outputs... key=value...``; blobs read by several layers go
through an explicit ``Split``. Convolution weights in the .bin are a 4-byte zero tag then float32 data
in PyTorch's (out, in, kh, kw) order, then the float32 bias without a tag.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from esrgan.bench.ncnn_reader import NCNN_MAGIC

LEAKY = "9=2 -23310=1,2.000000e-01"  # fused activation: leaky ReLU, slope 0.2


class _Graph:
    def __init__(self) -> None:
        self.layers: list[tuple[str, str, list[str], list[str], str]] = []
        self.weights: list[bytes] = []
        self._n = 0

    def blob(self) -> str:
        self._n += 1
        return f"b{self._n}"

    def add(self, kind: str, inputs: list[str], params: str = "", out: str | None = None) -> str:
        out = out or self.blob()
        self.layers.append((kind, f"{kind.lower()}_{len(self.layers)}", inputs, [out], params))
        return out

    def conv(self, conv, x: str, leaky: bool, out: str | None = None) -> str:  # noqa: ANN001 - nn.Conv2d
        w = conv.weight.detach().float().numpy()
        b = conv.bias.detach().float().numpy()
        self.weights += [np.zeros(1, np.uint32).tobytes(), np.ascontiguousarray(w).tobytes(), b.tobytes()]
        act = f" {LEAKY}" if leaky else ""
        return self.add("Convolution", [x], f"0={w.shape[0]} 1=3 11=3 3=1 4=1 5=1 6={w.size}{act}", out)

    def scaled_add(self, y: str, x: str) -> str:
        """y * 0.2 + x (the residual scaling of ESRGAN's dense blocks)."""
        s = self.add("BinaryOp", [y], "0=2 1=1 2=2.000000e-01")
        return self.add("BinaryOp", [s, x], "0=0")

    def text(self) -> str:
        """The .param text, with a Split inserted for every blob that several layers read."""
        uses = Counter(i for _, _, ins, _, _ in self.layers for i in ins)
        seen: Counter[str] = Counter()
        out_layers = []
        for kind, name, ins, outs, params in self.layers:
            renamed = []
            for i in ins:
                if uses[i] > 1:
                    renamed.append(f"{i}_s{seen[i]}")
                    seen[i] += 1
                else:
                    renamed.append(i)
            out_layers.append((kind, name, renamed, outs, params))
            for o in outs:
                if uses[o] > 1:
                    splits = [f"{o}_s{k}" for k in range(uses[o])]
                    out_layers.append(("Split", f"split_{o}", [o], splits, ""))
        blobs = {b for _, _, ins, outs, _ in out_layers for b in ins + outs}
        lines = [str(NCNN_MAGIC), f"{len(out_layers)} {len(blobs)}"]
        for kind, name, ins, outs, params in out_layers:
            lines.append(f"{kind:<16} {name:<24} {len(ins)} {len(outs)} {' '.join(ins + outs)} {params}".rstrip())
        return "\n".join(lines) + "\n"


def write_ncnn(model, param_path: Path, bin_path: Path) -> None:  # noqa: ANN001 - RRDBNet
    """Write ``model`` (an esrgan RRDBNet at scale 4 without pixel-unshuffle) as ncnn files."""
    spec = model.spec
    if spec.arch != "rrdbnet" or spec.unshuffle_factor != 1:
        raise ValueError("only RRDBNet without pixel-unshuffle is supported")
    g = _Graph()
    g.layers.append(("Input", "in0", [], ["in0"], ""))
    feat = g.conv(model.conv_first, "in0", leaky=False)
    h = feat
    for rrdb in model.body:
        r = h
        for rdb in (rrdb.rdb1, rrdb.rdb2, rrdb.rdb3):
            feats = [r]
            for k in range(1, 5):
                inp = feats[0] if len(feats) == 1 else g.add("Concat", list(feats), "0=0")
                feats.append(g.conv(getattr(rdb, f"conv{k}"), inp, leaky=True))
            x5 = g.conv(rdb.conv5, g.add("Concat", list(feats), "0=0"), leaky=False)
            r = g.scaled_add(x5, feats[0])
        h = g.scaled_add(r, h)
    h = g.add("BinaryOp", [feat, g.conv(model.conv_body, h, leaky=False)], "0=0")
    for i in range(1, spec.num_upsample + 1):
        up = g.add("Interp", [h], "0=1 1=2.000000e+00 2=2.000000e+00")
        h = g.conv(getattr(model, f"conv_up{i}"), up, leaky=True)
    h = g.conv(model.conv_hr, h, leaky=True)
    g.conv(model.conv_last, h, leaky=False, out="out0")
    param_path.write_text(g.text())
    bin_path.write_bytes(b"".join(g.weights))
