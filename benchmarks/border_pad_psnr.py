"""Border pad vs quality against ground truth: how much reflection the image's outer border needs.

Why: between tiles the context comes from real neighbouring pixels, but at the image's outer border
there is nothing real, and every pixel of padding there is paid for in compute (a 96 x 96 image padded
by 32 px on every side runs as 160 x 160). How much the border needs cannot be measured against
another padding (that only says which padding resembles which); it is measured against the truth:
high-resolution photographs are downscaled x4 by the project's MATLAB-style bicubic
(``esrgan.train.imresize``, how the SR literature makes its LR images), upscaled whole by the real
pretrained x4 weights (Real-ESRGAN x4plus, ``benchmarks/real_weights.py``) with the LR image
reflect-padded by 0/4/8/16/32 px, and the PSNR against the HR photograph is taken over the outer band
(``BAND`` LR px wide, i.e. ``4 * BAND`` HR px), where the padding can matter, and over the whole image.

Run: ``python -m benchmarks.border_pad_psnr`` (PyTorch FP32, 2 threads; a few minutes on 2 cores).
The report goes to ``benchmarks/reports/tiling/border_pad.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).parent / "reports" / "tiling"
PADS = (0, 4, 8, 16, 32)
BAND = 8  # LR px: the outer band the padding can reach
# Name, top, left of a 192 x 192 HR crop (48 x 48 LR; small, because the paper-size model is slow
# on two shared cores): a face and edges, texture, flat sky.
CROPS = (("astronaut", 0, 100), ("coffee", 100, 150), ("rocket", 150, 200))
HR = 192
TOLERANCE_DB = 0.05


def band_mask(h: int, w: int, band: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[:band], mask[-band:], mask[:, :band], mask[:, -band:] = True, True, True, True
    return mask


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = diff[mask].mean() if mask is not None else diff.mean()
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def upscale(run, lr: np.ndarray, pad: int, scale: int) -> np.ndarray:
    """The whole LR image reflect-padded by ``pad``, run in one pass, the padding's output cut away."""
    img = lr.astype(np.float32) / 255.0
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect") if pad else img
    out = run(np.ascontiguousarray(padded.transpose(2, 0, 1))[None])[0].transpose(1, 2, 0)
    h, w = lr.shape[:2]
    out = out[pad * scale : (pad + h) * scale, pad * scale : (pad + w) * scale]
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def choose(rows: list[dict], key: str) -> int:
    """Smallest pad whose mean PSNR is within ``TOLERANCE_DB`` of the best pad's."""
    means = {p: float(np.mean([r[key][str(p)] for r in rows])) for p in PADS}
    best = max(means.values())
    return min(p for p, v in means.items() if v >= best - TOLERANCE_DB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("/tmp/esrgan-real"), help="folder for real_weights")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--report-only", action="store_true", help="only rewrite border_pad.md from border_pad.json")
    args = parser.parse_args()
    if args.report_only:
        (args.out / "border_pad.md").write_text(markdown(json.loads((args.out / "border_pad.json").read_text())))
        return

    from benchmarks.real_weights import real_x4plus
    from esrgan.photographs import photograph
    from esrgan.runtime.backends.torch_backend import TorchBackend
    from esrgan.runtime.cpu_features import probe_cpu_features
    from esrgan.train.imresize import downscale_uint8

    backend = TorchBackend(real_x4plus(args.weights), threads=args.threads)
    started = time.time()
    rows = []
    for name, top, left in CROPS:
        hr = photograph(name)[top : top + HR, left : left + HR]
        lr = downscale_uint8(hr, 4)
        mask = band_mask(HR, HR, 4 * BAND)
        row: dict = {"image": f"{name} [{top}:{top + HR}, {left}:{left + HR}]", "band_db": {}, "whole_db": {}}
        for pad in PADS:
            sr = upscale(backend.run, lr, pad, 4)
            row["band_db"][str(pad)] = round(psnr(sr, hr, mask), 3)
            row["whole_db"][str(pad)] = round(psnr(sr, hr), 3)
            print(f"{name} pad {pad:2d}: band {row['band_db'][str(pad)]:.3f} dB, whole {row['whole_db'][str(pad)]:.3f} dB",
                  flush=True)
        rows.append(row)
    report = {
        "cpu": probe_cpu_features().report_name, "model": "Real-ESRGAN x4plus (benchmarks/real_weights.py), PyTorch FP32",
        "hr_size": HR, "band_lr_px": BAND, "pads": PADS, "tolerance_db": TOLERANCE_DB,
        "seconds": round(time.time() - started), "rows": rows,
        "chosen_band": choose(rows, "band_db"), "chosen_whole": choose(rows, "whole_db"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "border_pad.json").write_text(json.dumps(report, indent=1))
    (args.out / "border_pad.md").write_text(markdown(report))
    print(f"smallest pad within {TOLERANCE_DB} dB of the best: band {report['chosen_band']}, "
          f"whole {report['chosen_whole']}")


def markdown(report: dict) -> str:
    pads = report["pads"]
    lines = [
        "# Border pad vs PSNR against ground-truth HR photographs", "",
        f"CPU: {report['cpu']}; model: {report['model']}; {report['seconds']} s. Method: "
        "`benchmarks/border_pad_psnr.py` (HR crop "
        f"{report['hr_size']}x{report['hr_size']}, LR by MATLAB-style bicubic /4, whole LR image reflect-padded by the "
        f"pad and upscaled in one pass; PSNR vs the HR crop over the outer {4 * report['band_lr_px']} HR px band and over "
        "the whole image).", "",
        "| image | measure | " + " | ".join(f"pad {p}" for p in pads) + " |",
        "|---|---|" + "---|" * len(pads),
    ]
    for r in report["rows"]:
        for key, label in (("band_db", "outer band"), ("whole_db", "whole image")):
            lines.append(f"| {r['image']} | {label} | " + " | ".join(f"{r[key][str(p)]:.3f}" for p in pads) + " |")
    for key, label in (("band_db", "outer band"), ("whole_db", "whole image")):
        means = [np.mean([r[key][str(p)] for r in report["rows"]]) for p in pads]
        lines.append(f"| **mean** | {label} | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    from esrgan.runtime.tiling import BORDER_PAD

    lines += [
        "", f"Smallest pad within {report['tolerance_db']} dB of the best mean: outer band **{report['chosen_band']} px**, "
        f"whole image **{report['chosen_whole']} px**.", "",
        f"Shipped: `esrgan.runtime.tiling.BORDER_PAD` = **{BORDER_PAD} px**. This is a trade-off, not the "
        "quality optimum: 32 px scores best on average, over the outer band by a fraction of a dB whose sign "
        "varies by photograph (where 4-16 px average below none), and over the whole image by a few tenths "
        "of a dB on every photograph. But padding moves a small image's whole output away from the model's plain "
        "forward, which the end-to-end parity target (>= 45 dB from PyTorch on the same image) rules out, and "
        "32 px makes a 192 px image run 1.78x its pixels. The comment next to the constant gives the figures.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
