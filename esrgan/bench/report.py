"""report.json (for programs), report.md (for people) and PNG plots (for people in a hurry).

The JSON schema is documented in docs/benchmarks.md; ``SCHEMA_VERSION`` changes
whenever a field is renamed or removed (adding fields keeps it).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from esrgan.atomic import write_atomic, write_text_atomic
from esrgan.errors import UsageError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Result:
    """One backend x precision x tile x batch measurement. None = not applicable / not known."""

    backend: str  # row key, e.g. "ort-fp32"
    engine: str  # what the backend reports, e.g. "onnxruntime-cpu"
    precision: str
    device: str
    tile: int  # input tile side in px
    batch: int
    latency_ms: float  # median wall time of one batch
    latency_min_ms: float
    latency_max_ms: float
    spread: float  # (max - min) / median
    repeats: int
    throughput_mpix_s: float  # input megapixels per second
    output_mpix_s: float
    speedup_vs_torch: float | None  # PyTorch eager FP32 median / this median, same device, tile, batch
    max_abs_err: float | None  # vs PyTorch eager FP32 output on the same photographs
    mean_abs_err: float | None
    psnr_vs_torch_db: float | None
    nonfinite_fraction: float | None
    parity_ok: bool | None  # esrgan.parity.passes for this precision
    parity_images: int
    peak_mem_mb: float  # process RSS peak while this row ran (all loaded models included)
    run_mem_mb: float  # RSS growth during one call (working memory of the call)
    gpu_mem_mb: float | None
    gflops: float  # model FLOP/s (2 x MACs of the convolutions) / 1e9
    peak_share: float | None  # gflops / nominal FP32 peak of the cores used, where known
    reference: bool = False
    peer: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: _finite(v) for k, v in asdict(self).items()}


REQUIRED_FIELDS = tuple(f.name for f in fields(Result))


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: identical outputs give PSNR inf, written as the string "inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value


def to_json_data(data: dict[str, Any]) -> dict[str, Any]:
    out = {"schema_version": SCHEMA_VERSION, **data}
    out["results"] = [r.to_dict() if isinstance(r, Result) else r for r in data["results"]]
    return out


def validate(doc: dict[str, Any]) -> list[str]:
    """Problems with a parsed report.json (empty list = valid): what tests and readers rely on."""
    problems = []
    for key in ("schema_version", "environment", "config", "results", "skipped"):
        if key not in doc:
            problems.append(f"missing top-level key {key!r}")
    for i, rec in enumerate(doc.get("results", [])):
        missing = [k for k in REQUIRED_FIELDS if k not in rec]
        if missing:
            problems.append(f"results[{i}] lacks {', '.join(missing)}")
        elif rec["parity_ok"] is False and rec["reference"]:
            problems.append(f"results[{i}]: the reference cannot fail parity")
    return problems


# ---- markdown -----------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "pass" if value else "**FAIL**"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isinf(value):
        return "∞ (identical)" if value > 0 else "-∞"
    return format(value, spec)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _family(cpu: dict[str, Any]) -> str:
    """", family F, model M" where the report has them (see CpuFeatures.report_name for why)."""
    if cpu.get("family") is None:
        return ""
    return f", family {cpu['family']}" + ("" if cpu.get("model_number") is None else f", model {cpu['model_number']}")


def environment_md(env: dict[str, Any]) -> str:
    cpu = env["cpu"]
    libs = ", ".join(f"{k} {v}" for k, v in env["libraries"].items())
    gpu = env.get("gpu")
    model = env.get("model", {})
    lines = [
        f"- CPU: {cpu['model']} ({cpu['vendor']}{_family(cpu)}), {cpu['logical_cores']} logical / "
        f"{cpu['physical_cores'] or '?'} physical cores, {cpu['mhz'] or '?'} MHz",
        f"- CPU flags: {' '.join(cpu['flags']) or 'none of the relevant ones'}",
        f"- FP32 peak: {_fmt(env.get('cpu_peak_gflops_fp32'), '.0f')} GFLOP/s ({env.get('cpu_peak_note', '')})",
        f"- GPU: {gpu['name'] + ', driver ' + gpu['driver'] if gpu else 'none'}",
        f"- Libraries: {libs}",
        f"- Threads per library: {env['threads']['per_library']} "
        f"(OMP_NUM_THREADS={env['threads'].get('OMP_NUM_THREADS') or 'unset'})",
        f"- Platform: {env['platform']}, Python {env['python']}",
    ]
    if model:
        lines.append(f"- Model: {model.get('name')} — {model.get('spec_text')}, "
                     f"{model.get('macs_per_input_pixel', 0) / 1e6:.2f} M MAC per input pixel, "
                     f"checkpoint sha256 `{model.get('sha256', '')[:16]}…`")
    return "\n".join(lines)


def parity_md(results: list[dict[str, Any]]) -> str:
    rows = [
        [r["backend"], r["precision"], r["device"], str(r["tile"]), str(r["batch"]), _fmt(r["max_abs_err"]),
         _fmt(r["mean_abs_err"]), _fmt(_num(r["psnr_vs_torch_db"]), ".1f"), _fmt(r["nonfinite_fraction"]),
         str(r["parity_images"]), "reference" if r["reference"] else _fmt(r["parity_ok"])]
        for r in results
    ]
    return _table(["backend", "precision", "device", "tile", "batch", "max abs err", "mean abs err",
                   "PSNR vs torch (dB)", "non-finite", "images", "parity"], rows)


def speed_md(results: list[dict[str, Any]]) -> str:
    rows = [
        [r["backend"], r["precision"], r["device"], str(r["tile"]), str(r["batch"]), _fmt(r["latency_ms"], ".1f"),
         f"{r['spread']:.0%}", _fmt(r["throughput_mpix_s"], ".3g"), _fmt(r["output_mpix_s"], ".3g"),
         _fmt(r["speedup_vs_torch"], ".2f") + ("×" if r["speedup_vs_torch"] is not None else ""),
         _fmt(r["gflops"], ".1f"), _fmt(r["peak_share"] and r["peak_share"] * 100, ".0f") +
         ("%" if r["peak_share"] else ""), _fmt(r["peak_mem_mb"], ".0f"), _fmt(r["run_mem_mb"], ".0f")]
        for r in results
    ]
    return _table(["backend", "precision", "device", "tile", "batch", "latency (ms)", "spread", "in MP/s",
                   "out MP/s", "vs torch", "GFLOP/s", "of peak", "peak RSS (MB)", "call RSS (MB)"], rows)


def _num(v: Any) -> Any:
    return math.inf if v == "inf" else v


ORT_FP32_TARGET = 1.2  # x PyTorch eager FP32, same tile: ORT must beat the reference it replaces
E2E_TARGET = 0.85  # esrgan-run folder throughput / raw model throughput
TRT_TARGET = 3.0  # TensorRT FP16 vs PyTorch eager FP32 on the GPU


def targets_md(doc: dict[str, Any]) -> str:
    """The project's speed targets, checked against this run's figures (met / NOT met / not measured)."""
    lines = []
    ort = [r for r in doc["results"] if r["backend"] == "ort-fp32" and r["speedup_vs_torch"] is not None]
    for r in ort:
        ok = r["speedup_vs_torch"] >= ORT_FP32_TARGET and bool(r["parity_ok"])
        lines.append(f"- ONNX Runtime CPU FP32 ≥ {ORT_FP32_TARGET}× PyTorch eager FP32 with max abs ≤ 1e-4, tile "
                     f"{r['tile']} batch {r['batch']}: {r['speedup_vs_torch']:.2f}×, max abs {r['max_abs_err']:.2g} "
                     f"(spread {r['spread']:.0%}): **{'met' if ok else 'NOT met'}**")
    if not ort:
        lines.append("- ONNX Runtime CPU FP32 vs PyTorch: not measured in this run")
    e2e = doc.get("end_to_end") or {}
    if "pipeline_share_of_raw" in e2e:
        share = e2e["pipeline_share_of_raw"]
        lines.append(f"- `esrgan-run` folder pipeline ≥ {E2E_TARGET:.0%} of raw model throughput: {share:.0%}: "
                     f"**{'met' if share >= E2E_TARGET else 'NOT met'}**")
    else:
        lines.append(f"- End-to-end pipeline: not measured ({e2e.get('skipped', 'disabled')})")
    trt = [r for r in doc["results"] if r["backend"] == "trt-fp16" and r["speedup_vs_torch"] is not None]
    if trt:
        for r in trt:
            ok = r["speedup_vs_torch"] >= TRT_TARGET and bool(r["parity_ok"])
            lines.append(f"- TensorRT FP16 ≥ {TRT_TARGET}× PyTorch FP32 on {r['device']}, tile {r['tile']}: "
                         f"{r['speedup_vs_torch']:.2f}×, {_fmt(_num(r['psnr_vs_torch_db']), '.1f')} dB: "
                         f"**{'met' if ok else 'NOT met'}**")
    else:
        lines.append("- GPU targets (TensorRT FP16 ≥ 3× PyTorch FP32 and ≥ 1.3× PyTorch FP16 at ≥ 45 dB): "
                     "not measured in this run (no TensorRT engine row ran)")
    return "\n".join(lines)


def render_markdown(doc: dict[str, Any], title: str, notes: str = "", plots: bool = True) -> str:
    parts = [f"# {title}", "", notes.strip(), "", "## Environment", "", environment_md(doc["environment"]), ""]
    cfg = doc["config"]
    parts += [
        f"Tiles {cfg['tiles']}, batches {cfg['batches']}, {cfg['repeat']} timed repetitions per case "
        f"(interleaved across backends, after {cfg['warmup']} warm-up call(s)), inputs: {cfg['images']}.",
        "", "## Targets", "", targets_md(doc), "",
        "## Parity vs PyTorch eager FP32", "", parity_md(doc["results"]), "",
        "## Speed", "", speed_md(doc["results"]), "",
    ]
    for key, title_ in (("tiling", "Tiled vs whole image"), ("end_to_end", "End-to-end vs raw model")):
        extra = doc.get(key)
        if extra:
            parts += [f"## {title_}", "", extra.get("markdown", "```\n" + json.dumps(extra, indent=1) + "\n```"), ""]
    if doc["skipped"]:
        parts += ["## Not measured here", ""]
        parts += [f"- `{k}`: {v}" for k, v in doc["skipped"].items()]
        parts.append("")
    if plots:
        parts += ["## Plots", "", "![throughput](throughput.png) ![speed-up](speedup.png) ![parity](parity.png)", ""]
    return "\n".join(p for p in parts if p is not None)


# ---- plots --------------------------------------------------------------------------------------


def write_plots(results: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """throughput.png, speedup.png and parity.png; one bar group per tile, one bar per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(dict.fromkeys(r["backend"] for r in results))
    tiles = sorted({r["tile"] for r in results})
    batch = min(r["batch"] for r in results) if results else 1

    def value(b: str, t: int, key: str) -> float:
        for r in results:
            if r["backend"] == b and r["tile"] == t and r["batch"] == batch and r[key] is not None:
                v = _num(r[key])
                return min(v, 150.0) if key == "psnr_vs_torch_db" else v
        return 0.0

    written = []
    specs = (
        ("throughput.png", "throughput_mpix_s", "input megapixels / s", backends),
        ("speedup.png", "speedup_vs_torch", "× PyTorch eager FP32", [b for b in backends if not b.startswith("torch")]),
        ("parity.png", "psnr_vs_torch_db", "PSNR vs PyTorch (dB, capped at 150)",
         [b for b in backends if not b.startswith("torch-fp32") and not b.startswith("torch-cuda-fp32")]),
    )
    for name, key, ylabel, shown in specs:
        fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(tiles) * max(1, len(shown)) * 0.5 + 2), 3.6))
        width = 0.8 / max(1, len(shown))
        for i, b in enumerate(shown):
            xs = [j + i * width for j in range(len(tiles))]
            ax.bar(xs, [value(b, t, key) for t in tiles], width, label=b)
        ax.set_xticks([j + width * (len(shown) - 1) / 2 for j in range(len(tiles))])
        ax.set_xticklabels([f"tile {t}" for t in tiles])
        ax.set_ylabel(ylabel)
        if key == "speedup_vs_torch":
            ax.axhline(1.0, color="grey", lw=0.8)
        if key == "psnr_vs_torch_db":
            ax.axhline(45.0, color="red", lw=0.8, ls="--", label="FP16/BF16 threshold")
        ax.legend(fontsize=7)
        ax.set_title(f"{ylabel} (batch {batch})", fontsize=9)
        fig.tight_layout()
        with write_atomic(out_dir / name) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        written.append(out_dir / name)
    return written


def check_report_folder(out_dir: str | Path) -> None:
    """Before minutes of measuring: can ``out_dir`` take the report? One UsageError line now if not,
    rather than a traceback once the results exist. Nothing is created (a usage error leaves no folder)."""
    out = Path(out_dir).absolute()
    existing = next(p for p in (out, *out.parents) if os.path.exists(p))  # False, not an error, where unreadable
    if not existing.is_dir():
        raise UsageError(f"-o {out_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"-o {out_dir}: {existing} is not writable")


def write_report(
    data: dict[str, Any], out_dir: str | Path, title: str, notes: str = "", plots: bool = True
) -> dict[str, Any]:
    """Write report.json, report.md and the plots into ``out_dir``; returns the JSON document.

    ``plots=False`` leaves the plots (and their links) out, for machines without matplotlib.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = to_json_data({"title": title, **data})
    write_text_atomic(out / "report.json", json.dumps(doc, indent=1) + "\n")
    write_text_atomic(out / "report.md", render_markdown(doc, title, notes, plots))
    if plots:
        write_plots(doc["results"], out)
    return doc


def rewrite_markdown(out_dir: str | Path, notes: str) -> None:
    """Re-render report.md from report.json with new notes (the discussion is written after the run)."""
    out = Path(out_dir)
    doc = json.loads((out / "report.json").read_text())
    plots = (out / "throughput.png").is_file()
    write_text_atomic(out / "report.md", render_markdown(doc, doc.get("title", "esrgan-bench"), notes, plots))
