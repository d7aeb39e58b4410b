"""Ship the trained default model inside the package: export, measure through the runtime, write its sidecar.

    python -m benchmarks.default_model.ship [--checkpoint benchmarks/reports/default_model/default_x4.safetensors]

1. exports the checkpoint with this project's exporter (FP32 ONNX, verified against PyTorch);
2. copies it to esrgan/runtime/models/default_x4.onnx, and writes its INT8 version (esrgan's INT8
   export, calibrated on the training photographs, parity measured on the held-out ones) beside the
   report, not into the package (see write_int8);
3. upscales the held-out photographs through the torch-free runtime (the same code path as
   ``esrgan-run`` with ONNX Runtime on the CPU) and scores them against bicubic;
4. writes esrgan/runtime/models/default_x4.json (spec, data lists, iterations, held-out figures, sha256)
   and benchmarks/reports/default_model/report.md.
The training side (data lists, iterations, the learning curve) comes from default_x4.json beside the
checkpoint, which benchmarks.default_model.report writes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import click
import numpy as np

from esrgan.atomic import write_atomic, write_text_atomic
from esrgan.export.int8 import read_int8_report
from esrgan.hashing import file_sha256
from esrgan.photographs import DEFAULT_MODEL_HELD_OUT as HELD_OUT
from esrgan.photographs import photograph

ROOT = Path(__file__).resolve().parents[2]
REPORT_DIR = ROOT / "benchmarks" / "reports" / "default_model"
MODEL_DIR = ROOT / "esrgan" / "runtime" / "models"


def held_out_scores(onnx_path: Path) -> dict[str, dict[str, float]]:
    """PSNR-Y/SSIM-Y of the runtime's output and of bicubic, per held-out photograph (crop 4)."""
    from esrgan.runtime.upscaler import Upscaler
    from esrgan.train.imresize import downscale_uint8, mod_crop, upscale_uint8
    from esrgan.train.validate import psnr_ssim_y

    scores: dict[str, dict[str, float]] = {}
    with Upscaler(onnx_path, backend="onnxruntime-cpu", tile=0, say=None) as up:
        for name in HELD_OUT:
            hr = mod_crop(photograph(name), 4)
            lr = downscale_uint8(hr, 4)
            sr = up.upscale(lr)
            psnr, ssim = psnr_ssim_y(sr, hr, 4)
            bpsnr, bssim = psnr_ssim_y(upscale_uint8(lr, 4), hr, 4)
            scores[name] = {"psnr_y": psnr, "ssim_y": ssim, "bicubic_psnr_y": bpsnr, "bicubic_ssim_y": bssim}
    return scores


def write_int8(fp32: Path, work: Path) -> Path:
    """The INT8 version of the shipped model: calibrated on the training photographs (30 crops of
    64 px: on this model they measured 47.6 dB against 44.3 with the exporter's 12 of 32 px), parity on
    the held-out ones.

    Written into the report folder, not into the package: the built-in model ships FP32 only."""
    from esrgan.export.int8 import quantize_int8
    from esrgan.metadata import int8_companion
    from esrgan.photographs import DEFAULT_MODEL_TRAIN, export_photos

    export_photos(work / "calib", DEFAULT_MODEL_TRAIN)
    export_photos(work / "held_out", HELD_OUT)
    dest = REPORT_DIR / int8_companion(fp32).name
    quantize_int8(fp32, work / "calib", work / dest.name, held_out_dir=work / "held_out", crop=64,
                  crops_per_image=2, max_crops=30)
    with write_atomic(dest) as out:
        shutil.copyfile(work / dest.name, out)
    return dest


def mean_of(scores: dict[str, dict[str, float]], key: str) -> float:
    return float(np.mean([v[key] for v in scores.values()]))


@click.command()
@click.option("--checkpoint", default=str(REPORT_DIR / "default_x4.safetensors"), type=click.Path(exists=True),
              help="The trained PSNR-stage checkpoint.")
def main(checkpoint: str) -> None:
    from esrgan.export.pipeline import export_artifacts

    ckpt = Path(checkpoint)
    training = json.loads(ckpt.with_suffix(".json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        result = export_artifacts(ckpt, tmp, fp16=False, verify=True, progress=lambda m: click.echo(m, err=True))
        MODEL_DIR.mkdir(parents=True, exist_ok=True)
        dest = MODEL_DIR / "default_x4.onnx"
        with write_atomic(dest) as out:
            shutil.copyfile(result.onnx_fp32, out)
        int8 = write_int8(dest, Path(tmp))
    scores = held_out_scores(dest)
    held = {k: mean_of(scores, k) for k in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y")}
    held["psnr_y_gain_db"] = held["psnr_y"] - held["bicubic_psnr_y"]
    from esrgan.models.spec import GeneratorSpec

    spec = GeneratorSpec.from_dict(training["spec"])
    sidecar = {
        "spec": spec.to_dict(),
        "preset": training["preset"],
        "iterations": training["iterations"],
        "training_photos": training["training_photos"],
        "held_out_photos": training["held_out_photos"],
        "held_out": {**held, "per_image": scores,
                     "measured_with": "esrgan runtime, ONNX Runtime CPU, whole image (no tiling)",
                     "metric": training["held_out"]["metric"]},
        "onnx_sha256": file_sha256(dest),
        "int8": {"file": f"{int8.relative_to(ROOT)} (not packaged)", "sha256": file_sha256(int8), "parity_vs_fp32": read_int8_report(int8)},
        "regenerate": "python -m benchmarks.default_model.train --output RUN && "
                      "python -m benchmarks.default_model.report --run RUN && python -m benchmarks.default_model.ship",
    }
    write_text_atomic(MODEL_DIR / "default_x4.json", json.dumps(sidecar, indent=2) + "\n")
    rows = "\n".join(
        f"| {n} | {v['psnr_y']:.2f} | {v['bicubic_psnr_y']:.2f} | {v['psnr_y'] - v['bicubic_psnr_y']:+.2f} | "
        f"{v['ssim_y']:.4f} | {v['bicubic_ssim_y']:.4f} |" for n, v in scores.items())
    report = f"""# The built-in default model

`esrgan-run INPUT OUTPUT` without `--model` uses `esrgan/runtime/models/default_x4.onnx`
({dest.stat().st_size / 1e6:.2f} MB, FP32): {spec.describe()}, {spec.macs_per_pixel() / 1e6:.3f} M MAC
per input pixel (the paper's x4 model: 17.93 M), trained by this project's `esrgan-train --preset
{training['preset']}` for {training['iterations']} iterations (PSNR stage) on {len(training['training_photos'])}
photographs that ship inside scikit-image and matplotlib. How it learned: [../learning/report.md](../learning/report.md).

## Held-out photographs, measured through the runtime (`esrgan.runtime.Upscaler`, ONNX Runtime CPU)

LR = MATLAB-style bicubic x1/4 of the photograph (uint8); PSNR/SSIM on Y (BT.601), 4 px border crop.

| image | model PSNR-Y | bicubic PSNR-Y | gain (dB) | model SSIM-Y | bicubic SSIM-Y |
|---|---:|---:|---:|---:|---:|
{rows}
| **mean** | **{held['psnr_y']:.2f}** | **{held['bicubic_psnr_y']:.2f}** | **{held['psnr_y_gain_db']:+.2f}** | **{held['ssim_y']:.4f}** | **{held['bicubic_ssim_y']:.4f}** |

Quality bar: at least +0.5 dB mean PSNR-Y over bicubic on photographs not used for training:
**{'met' if held['psnr_y_gain_db'] >= 0.5 else 'NOT met'}** ({held['psnr_y_gain_db']:+.2f} dB).

INT8 version (not shipped in the package, see below): `{int8.name}` in this folder ({int8.stat().st_size / 1e6:.2f} MB; esrgan's INT8 export, calibrated on
the training photographs, first conv and upsampling tail in FP32): **{sidecar['int8']['parity_vs_fp32']['psnr_db']:.1f} dB**
from the FP32 model's output, worst of the held-out tiles. It is not packaged: it does not keep graphics (the
runtime's synthetic test card, scikit-image's horse, chessboard, colour wheel and logo), so `--backend auto`
refuses it ([docs/cpu.md](../../../docs/cpu.md)) and `esrgan-run` runs the FP32 model.

Side by side (bicubic | default model | ground truth, held-out `chelsea`, enlarged x2):

![side by side](../learning/side_by_side.png)

## Regenerate

```bash
OMP_NUM_THREADS=1 python -m benchmarks.default_model.train --output RUN   # esrgan-train --preset {training['preset']}
python -m benchmarks.default_model.report --run RUN                       # learning report + checkpoint copy
python -m benchmarks.default_model.ship                                   # export, measure, ship
```
"""
    write_text_atomic(REPORT_DIR / "report.md", report)
    click.echo(f"shipped {dest} (held-out gain {held['psnr_y_gain_db']:+.2f} dB PSNR-Y)")


if __name__ == "__main__":
    main()
