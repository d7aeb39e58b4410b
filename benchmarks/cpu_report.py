"""Render benchmarks/reports/cpu/results.json (from cpu_inference.py) as report tables and a plot.

    python benchmarks/cpu_report.py benchmarks/reports/cpu

Writes ``tables.md`` (generated; report.md, written by hand, quotes and explains it) and ``speed.png``.
Kept apart from the measuring script so that the report can be redrawn without measuring again.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _db(v: float) -> str:
    return "exact" if math.isinf(v) else f"{v:.1f} dB"


def speed_table(rows: list[dict], model: str) -> list[str]:
    out = [f"### {model}: 64x64 tile, batch 1, relative to PyTorch eager FP32 at the same thread count", "",
           "| engine | threads | median ms | speed | PSNR vs PyTorch FP32 (timed tile) | worst PSNR over photographs "
           "| max abs err |", "|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in rows if r["model"] == model), key=lambda r: (r["threads"], -r["speedup_vs_torch_fp32"])):
        worst = _db(r["worst_psnr_db"]) + f" ({len(r['psnr_by_photo_db'])})" if "worst_psnr_db" in r else ""
        out.append(f"| {r['engine']} | {r['threads']} | {r['median_s'] * 1e3:.0f} | {r['speedup_vs_torch_fp32']:.2f}x "
                   f"| {_db(r['psnr_vs_torch_fp32_db'])} | {worst} | {r['max_abs_err']:.2g} |")
    return out + [""]


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    out = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def render(results: dict) -> str:
    env = results["environment"]
    lines = ["# CPU inference: generated tables", "",
             f"CPU: **{env['cpu']}**, {env['cores']} cores; flags: {' '.join(env['cpu_flags'])}; "
             f"native BF16: {env['bf16_native']}, INT8 dot product: {env['int8_dot']}.  ",
             f"torch {env['torch']}, onnxruntime {env['onnxruntime']}, openvino {env['openvino']}, "
             f"ncnn {env['ncnn']}; load average at start {env['load_average_at_start']} ({env['note']}).", ""]
    for model in dict.fromkeys(r["model"] for r in results.get("speed", [])):
        lines += speed_table(results["speed"], model)
    if results.get("int8_sweep"):
        lines += _table(
            f"INT8 sweep ({results.get('int8_sweep_model', 'real x4plus')}): worst PSNR over the held-out photographs "
            f"({', '.join(results.get('int8_held_out', []))}), speed at 1 thread on a 64x64 tile",
            ["config", "kept FP32", "held-out PSNR vs FP32", "ORT speed vs ORT FP32", "OpenVINO speed vs ORT FP32"],
            [[r["config"], ", ".join(r["kept_fp32"]) or "none", _db(r["held_out_psnr_db"]),
              f"{r['ORT_speedup_vs_ort_fp32']:.2f}x", f"{r['OV_speedup_vs_ort_fp32']:.2f}x"] for r in results["int8_sweep"]])
    if results.get("openvino_modes"):
        lines += _table(f"OpenVINO ({results.get('detail_model', 'paper x4')}): 4 tiles of 64x64 on 2 threads", ["mode", "precision", "median s", "tiles/s"],
                        [[r["mode"], r["precision"], f"{r['median_s']:.2f}", f"{r['tiles_per_s']:.2f}"]
                         for r in results["openvino_modes"]])
    if results.get("openvino_load"):
        lines += _table(f"OpenVINO start-up ({results.get('detail_model', 'paper x4')}, throughput mode)",
                        ["precision", "case", "seconds", "loaded from cache"],
                        [[r["precision"], r["case"], f"{r['seconds']:.2f}", r["loaded_from_cache"]]
                         for r in results["openvino_load"]])
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in results.get("speed", [])))
    fig, axes = plt.subplots(1, len(models), figsize=(7.6 * len(models), 4.8), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        rows = [r for r in results["speed"] if r["model"] == model and r["threads"] == 1]
        rows.sort(key=lambda r: r["speedup_vs_torch_fp32"])
        quality = [r.get("worst_psnr_db", r["psnr_vs_torch_fp32_db"]) for r in rows]
        colors = ["tab:green" if q >= 50 else "tab:orange" if q >= 40 else "tab:red" for q in quality]
        ax.barh([r["engine"] for r in rows], [r["speedup_vs_torch_fp32"] for r in rows], color=colors)
        for i, (r, q) in enumerate(zip(rows, quality, strict=True)):
            ax.text(r["speedup_vs_torch_fp32"], i, f" {r['speedup_vs_torch_fp32']:.2f}x, {_db(q)}", va="center", fontsize=8)
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_xlim(0, max(r["speedup_vs_torch_fp32"] for r in rows) * 1.45)
        ax.set_title(f"{model}: speed vs PyTorch eager FP32 (1 thread, 64x64 tile)", fontsize=9)
        ax.set_xlabel("speed-up; worst PSNR over photographs vs FP32 output: green >= 50 dB, orange >= 40, red < 40",
                      fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    args = ap.parse_args()
    results = json.loads((args.folder / "results.json").read_text())
    from esrgan.atomic import write_text_atomic

    write_text_atomic(args.folder / "tables.md", render(results) + "\n")
    plot(results, args.folder / "speed.png")
    print(f"wrote {args.folder / 'tables.md'} and {args.folder / 'speed.png'}")


if __name__ == "__main__":
    main()
