"""Parity and export time of esrgan-export's artefacts: writes benchmarks/reports/export/report.md (+ .json).

Cases:
1. paper-size x4 RRDBNet (23 blocks, nf 64, gc 32) with random weights (no pretrained weights may be
   downloaded here): export time per exporter, FP32/FP16 parity on crops of real photographs, the
   FP16 file on a larger photograph crop with its non-finite count, the activation probe's maximum,
   and PyTorch's own FP16 on the CPU as a stand-in for FP16 compute (ONNX Runtime's CPU provider
   upcasts FP16 graphs to FP32, see esrgan/export/verify.py).
2. a small trained pair written by esrgan-train (PSNR then GAN stage, few iterations on the
   scikit-image photographs), exported with the README's command line:
   esrgan-export --psnr psnr.safetensors --gan gan.safetensors --alpha 0.8 -o OUT.

Run:  OMP_NUM_THREADS=1 python benchmarks/export_parity.py [--skip-train] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from esrgan.export.options import DEFAULT_ALPHA  # noqa: E402  (torch-free; needs ROOT on the path)

REPORT_DIR = ROOT / "benchmarks" / "reports" / "export"
CASES = ("paper", "trained")  # the cases whose results are dicts (the opset table's is keyed by arch)




def ort_latency(path: Path, x: np.ndarray, reps: int = 3) -> float:
    """Median seconds of one run on the runtime's ONNX Runtime CPU backend (1 thread), after one warm-up run."""
    from esrgan.bench.timing import interleaved
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    with OnnxRuntimeBackend(path, threads=1) as backend:
        return interleaved([(path.name, lambda: backend.run(x))], repeat=reps, warmup=1)[path.name].median


def paper_case(work: Path) -> dict:
    import onnx
    import torch

    from esrgan.export.fp16 import FP32_NODES_KEY, PROBE_MAX_KEY
    from esrgan.export.onnx_export import export_onnx
    from esrgan.export.onnx_metadata import read_metadata
    from esrgan.export.pipeline import export_artifacts
    from esrgan.models.build import build_generator
    from esrgan.models.checkpoints import load_generator, save_generator
    from esrgan.models.spec import paper_spec
    from esrgan.parity import compare
    from esrgan.photographs import photo_crops
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    ckpts = []
    for seed, role in ((0, "psnr"), (1, "gan")):
        torch.manual_seed(seed)
        ckpts.append(save_generator(build_generator(paper_spec(4)), work / f"paper_x4_{role}.safetensors"))
    out = work / "paper"
    result = export_artifacts(ckpts[1], out, psnr_ckpt=ckpts[0], alpha=DEFAULT_ALPHA, exporter="dynamo",
                              progress=lambda m: print("  paper:", m, flush=True))
    model = load_generator(result.checkpoint)
    case: dict = {
        "model": f"interpolation (alpha {DEFAULT_ALPHA}) of two paper-size x4 RRDBNets with random weights (seeds 0 and 1), "
                 f"as `esrgan-export --psnr P --gan G --alpha {DEFAULT_ALPHA}` does it", "spec": model.spec.describe(),
        "timings_s": {k: round(v, 2) for k, v in result.timings.items()},
        "checks": [c.line() for c in result.report.checks],
        "parity": {c.artifact: c.parity.to_dict() for c in result.report.checks},
    }
    props16 = read_metadata(result.onnx_fp16)
    case["fp16_probe_max_abs"] = float(props16[PROBE_MAX_KEY])
    case["fp16_nodes_kept_fp32"] = json.loads(props16[FP32_NODES_KEY])
    case["sizes_mb"] = {p.name: round(p.stat().st_size / 2**20, 1) for p in result.artifacts()}

    # torchscript exporter on the same model: export time, graph size, runtime latency of both graphs
    t = time.perf_counter()
    ts_path = export_onnx(model, work / "paper_ts.onnx", exporter="torchscript", opset=17)
    case["timings_s"]["onnx_fp32_torchscript"] = round(time.perf_counter() - t, 2)
    x64 = photo_crops([(64, 64)])[0]
    case["graphs"] = {
        name: {"nodes": len(onnx.load(str(p), load_external_data=False).graph.node),
               "ort_cpu_1thread_s_64px": round(ort_latency(p, x64), 3)}
        for name, p in (("dynamo opset18", result.onnx_fp32), ("torchscript opset17", ts_path))
    }

    # FP16 file on a larger crop of a real photograph: any non-finite value?
    big = photo_crops([(128, 128)])[0]
    y32 = OnnxRuntimeBackend(result.onnx_fp32).run(big)
    y16 = OnnxRuntimeBackend(result.onnx_fp16).run(big)
    p = compare(y32, y16)
    case["fp16_photo_128"] = {**p.to_dict(), "nonfinite_count": int((~np.isfinite(y16)).sum()),
                              "output_range": [float(y32.min()), float(y32.max())]}

    case["torch_fp16_cpu_48"] = torch_fp16_check(model)
    return case


def torch_fp16_check(model) -> dict:  # noqa: ANN001
    """PyTorch FP16 on the CPU (FP16 storage and compute, what ORT's CPU provider does not do) vs FP32."""
    import copy

    from esrgan.parity import compare
    from esrgan.photographs import photo_crops
    from esrgan.runtime.backends.torch_backend import TorchBackend

    x = photo_crops([(48, 48)])[0]
    ref = TorchBackend(model).run(x)
    t = time.perf_counter()
    half = TorchBackend(copy.deepcopy(model), precision="fp16").run(x)
    return {**compare(ref, half).to_dict(), "nonfinite_count": int((~np.isfinite(half)).sum()),
            "seconds": round(time.perf_counter() - t, 1)}


def trained_case(work: Path, iters: tuple[int, int]) -> dict:
    from esrgan.export.onnx_metadata import read_metadata
    from esrgan.models.checkpoints import load_generator
    from esrgan.photographs import DEFAULT_MODEL_TRAIN as TRAIN
    from esrgan.photographs import export_photos

    data = work / "photos"
    export_photos(data, TRAIN[:6])
    run_dir = work / "train"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    train_cmd = [sys.executable, "-m", "esrgan.train.cli", "--preset", "tiny", "--data", str(data), "--output",
                 str(run_dir), "--num-feat", "32", "--num-block", "2", "--num-grow-ch", "16", "--patch-size", "32",
                 "--batch-size", "4", "--psnr-iters", str(iters[0]), "--gan-iters", str(iters[1])]
    t = time.perf_counter()
    subprocess.run(train_cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    train_s = time.perf_counter() - t
    out = work / "trained_out"
    export_cmd = [sys.executable, "-m", "esrgan.export.cli", "--psnr", str(run_dir / "psnr.safetensors"), "--gan",
                  str(run_dir / "gan.safetensors"), "--alpha", str(DEFAULT_ALPHA), "-o", str(out)]
    t = time.perf_counter()
    proc = subprocess.run(export_cmd, env=env, capture_output=True, text=True)
    export_s = time.perf_counter() - t
    checks = [line.split("] ", 1)[1].strip() for line in proc.stderr.splitlines() if "[fp" in line]
    return {
        "model": f"esrgan-train --preset tiny, nf32 nb2 gc16, {iters[0]} PSNR + {iters[1]} GAN iterations on 6 photographs",
        "train_command": " ".join(train_cmd[1:]), "train_s": round(train_s, 1),
        "export_command": "esrgan-export " + " ".join(export_cmd[3:]).replace(str(work) + "/", ""),
        "export_exit_code": proc.returncode, "torch_fp16_cpu_48": torch_fp16_check(load_generator(out / "model.safetensors")),
        "export_s": round(export_s, 1), "checks": checks,
        "parity": {name: json.loads(read_metadata(out / name)["esrgan.parity"])
                   for name in ("model.onnx", "model_fp16.onnx") if (out / name).exists()},
    }


def opset_case(work: Path) -> dict:
    """Which exporter writes opset 17 for which arch (tiny models: the graph structure is what matters)."""
    import torch

    from esrgan.errors import UsageError
    from esrgan.export.onnx_export import export_onnx
    from esrgan.models.build import build_generator
    from esrgan.models.spec import GeneratorSpec

    specs = {
        "x4": GeneratorSpec(scale=4, num_feat=8, num_block=1, num_grow_ch=4),
        "x2 pixel-unshuffle": GeneratorSpec(scale=2, num_feat=8, num_block=1, num_grow_ch=4, pixel_unshuffle=True),
        "x1 pixel-unshuffle": GeneratorSpec(scale=1, num_feat=8, num_block=1, num_grow_ch=4, pixel_unshuffle=True),
        "pytorch-gan x4": GeneratorSpec(arch="pytorch-gan", scale=4, num_feat=8, num_block=1, num_grow_ch=8),
    }
    rows = {}
    for name, spec in specs.items():
        torch.manual_seed(0)
        model = build_generator(spec).eval()
        row = {}
        for exporter, opset in (("dynamo", 17), ("dynamo", 18), ("torchscript", 17)):
            t = time.perf_counter()
            try:
                export_onnx(model, work / "opset.onnx", exporter=exporter, opset=opset)
                row[f"{exporter} {opset}"] = f"ok, {time.perf_counter() - t:.1f} s"
            except UsageError as exc:
                row[f"{exporter} {opset}"] = "refused: " + str(exc).split(" wrote ")[1].split(",")[0].split(" for ")[0]
        rows[name] = row
        print("  opset:", name, row, flush=True)
    return rows


def _measured(when: str | None, env: dict) -> list[str]:
    """A line naming where a section was measured, when that is not this report's run."""
    here = f"{env['date']} on {env['cpu']}"
    return [] if when is None or when == here else ["", f"*Measured {when}, in an earlier run of this script.*"]


def write_report(results: dict) -> None:
    from esrgan.atomic import write_text_atomic

    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    write_text_atomic(REPORT_DIR / "report.json", json.dumps(results, indent=2) + "\n")
    env, paper, trained = results["environment"], results.get("paper"), results.get("trained")
    lines = ["# Export parity and time", "",
             f"Generated by `benchmarks/export_parity.py` on {env['date']}. CPU: {env['cpu']}, {env['cores']} cores "
             "(shared with other jobs: times are indicative only; a section kept from an earlier run says so). "
             f"torch {env['torch']}, onnx {env['onnx']}, onnxruntime {env['onnxruntime']}. "
             "All checks ran with ONNX Runtime's CPU provider; no GPU, CUDA or TensorRT ran for this report.", ""]
    if paper:
        lines += ["## Paper-size x4 RRDBNet (random weights)", "", f"`{paper['spec']}`: {paper['model']}.",
                  *_measured(paper.get("measured"), env), "",
                  "| artefact | check (worst over the input sizes) |", "|---|---|"]
        lines += [f"| {c.split(' ', 1)[0]} | {c.split(' ', 1)[1]} |" for c in paper["checks"]]
        f = paper["fp16_photo_128"]
        tf = paper["torch_fp16_cpu_48"]
        lines += ["", "| step | seconds |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in paper["timings_s"].items()]
        lines += ["", "| graph | nodes | ORT CPU 1 thread, 64x64 px (s) |", "|---|---|---|"]
        lines += [f"| {k} | {v['nodes']} | {v['ort_cpu_1thread_s_64px']} |" for k, v in paper["graphs"].items()]
        lines += ["", f"- FP16 file on a 128x128 crop of a real photograph (astronaut): max abs err {f['max_abs_err']:.3g}, "
                  f"PSNR {f['psnr_db']:.2f} dB vs FP32, **{f['nonfinite_count']} non-finite values**; FP32 output range "
                  f"[{f['output_range'][0]:.3g}, {f['output_range'][1]:.3g}].",
                  f"- Activation probe (4 photograph crops): largest |activation| {paper['fp16_probe_max_abs']:.4g} "
                  f"(FP16 max 65504); nodes kept in FP32: {len(paper['fp16_nodes_kept_fp32'])}.",
                  f"- PyTorch FP16 on the CPU (FP16 storage and compute), 48x48 crop: PSNR {tf['psnr_db']:.2f} dB, "
                  f"max abs err {tf['max_abs_err']:.3g}, {tf['nonfinite_count']} non-finite, {tf['seconds']} s.",
                  f"- File sizes (MB): {', '.join(f'{k} {v}' for k, v in paper['sizes_mb'].items())}.", ""]
    if results.get("opset"):
        cols = list(next(iter(results["opset"].values())))
        lines += ["## Exporter x opset (tiny models)", *_measured(results.get("opset_measured"), env), "",
                  "\"refused\": the exporter wrote another opset than asked (dynamo exports 18 and down-converts; onnx's "
                  "converter has no adapter for Pad), so export_onnx stops instead of writing a mislabelled file.", "",
                  "| arch | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        lines += [f"| {arch} | " + " | ".join(row[c] for c in cols) + " |" for arch, row in results["opset"].items()]
        lines += [""]
    if trained:
        lines += ["## Small trained pair (esrgan-train) through the README's export command", "", f"{trained['model']}.",
                  *_measured(trained.get("measured"), env), "",
                  f"`{trained['export_command']}` exit code {trained['export_exit_code']}, {trained['export_s']} s "
                  f"(training took {trained['train_s']} s).", "", "| artefact | check |", "|---|---|"]
        lines += [f"| {c.split(' ', 1)[0]} | {c.split(' ', 1)[1]} |" for c in trained["checks"]]
        tf = trained["torch_fp16_cpu_48"]
        lines += ["", f"PyTorch FP16 on the CPU, interpolated model, 48x48 crop: PSNR {tf['psnr_db']:.2f} dB, "
                  f"{tf['nonfinite_count']} non-finite.", ""]
    lines += ["## What these figures do and do not show", "",
              "- FP32: ONNX Runtime CPU vs PyTorch CPU, threshold max abs err <= 1e-4.",
              "- FP16 on the CPU: ONNX Runtime 1.32's CPU provider has no FP16 Conv kernel on this x86 CPU; it inserts "
              "casts and computes in FP32 with the FP16-rounded weights, so the FP16 CPU figure measures weight rounding "
              "and graph correctness, not FP16 arithmetic. The PyTorch FP16 CPU line above is the closer stand-in for "
              "FP16 compute; the GPU checks (ORT CUDA, TensorRT) have not run here.",
              "- Random weights are not a trained model: activation ranges of real GAN weights can be larger, which is "
              "why the FP16 converter probes them on photographs at export time, per model.", ""]
    write_text_atomic(REPORT_DIR / "report.md", "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temp folder)")
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-opset", action="store_true")
    ap.add_argument("--keep", action="store_true", help="start from the existing report.json (re-run only some cases)")
    ap.add_argument("--iters", type=int, nargs=2, default=(300, 100), metavar=("PSNR", "GAN"))
    args = ap.parse_args()
    import onnx
    import onnxruntime
    import torch

    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="export_parity_"))
    work.mkdir(parents=True, exist_ok=True)
    from esrgan.runtime.cpu_features import probe_cpu_features

    old = json.loads((REPORT_DIR / "report.json").read_text()) if args.keep else {}
    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": probe_cpu_features().report_name,
           "cores": os.cpu_count(), "torch": torch.__version__, "onnx": onnx.__version__,
           "onnxruntime": onnxruntime.__version__}
    results: dict = {**old, "environment": env}
    # each case says when and on which CPU it was measured: with --keep, cases from different runs mix
    here = f"{env['date']} on {env['cpu']}"
    if old:
        for case in CASES:
            if isinstance(old.get(case), dict) and "measured" not in old[case]:
                old[case]["measured"] = f"{old['environment']['date']} on {old['environment']['cpu']}"
    if not args.skip_paper:
        results["paper"] = {**paper_case(work), "measured": here}
        write_report(results)
    if not args.skip_opset:
        results["opset"] = opset_case(work)
        results["opset_measured"] = here
        write_report(results)
    if not args.skip_train:
        results["trained"] = {**trained_case(work, tuple(args.iters)), "measured": here}
    write_report(results)
    print((REPORT_DIR / "report.md").read_text())


if __name__ == "__main__":
    main()
