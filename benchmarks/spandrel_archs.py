"""Architectures loaded through spandrel, each exported and verified: writes benchmarks/reports/spandrel/report.md.

No pretrained weights can be downloaded here, so each architecture is built with random weights at a
small configuration (CONFIGS below) by instantiating spandrel's own class, and its state dict is saved
in the layout published files have (``.pth`` wrapped in ``params`` like BasicSR releases, or a plain
``.safetensors``). Each file then goes the way a user's file goes:

1. ``esrgan.models.checkpoints.load_generator`` (the ESRGAN loader does not recognise it: spandrel);
2. ``esrgan.export.pipeline.export_artifacts`` (FP32 + FP16 ONNX, parity-verified on photograph crops
   by ONNX Runtime against PyTorch; sizes grown to the network's size requirements);
3. every CPU runtime backend (ONNX Runtime, OpenVINO) on the FP32 file, whole image, on an odd-sized
   photograph crop that violates the size requirements, padded by ``tiling.run_fitted``; compared with
   spandrel's own ``ImageModelDescriptor.__call__`` (which pads by itself) in PyTorch.

Each architecture is tried with both ONNX exporters (torch.onnx dynamo, esrgan-export's default, and the
legacy torchscript tracer), each in its own process: torch.export crashes the interpreter on some of
these networks (a segmentation fault cannot be caught), and the table records that as the reason.
A failure at any step is recorded with its one-line reason. Run:
    OMP_NUM_THREADS=2 python benchmarks/spandrel_archs.py [--only SPAN,Compact] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REPORT_DIR = ROOT / "benchmarks" / "reports" / "spandrel"

# name: (spandrel module, class, keyword arguments, file suffix). Small enough for 2 CPU cores.
CONFIGS: dict[str, tuple[str, str, dict, str]] = {
    "Compact": ("Compact", "Compact", dict(num_feat=16, num_conv=4, upscale=4), ".pth"),
    "SPAN": ("SPAN", "SPAN", dict(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=4), ".safetensors"),
    "RealPLKSR": ("PLKSR", "RealPLKSR", dict(dim=16, n_blocks=2, upscaling_factor=2, kernel_size=9), ".pth"),
    "PLKSR": ("PLKSR", "PLKSR", dict(dim=16, n_blocks=2, upscaling_factor=2, kernel_size=9), ".pth"),
    "SAFMN": ("SAFMN", "SAFMN", dict(dim=16, n_blocks=2, upscaling_factor=2), ".pth"),
    "OmniSR": ("OmniSR", "OmniSR", dict(num_feat=16, block_num=1, window_size=8, res_num=1, up_scale=2), ".pth"),
    "SwinIR": ("SwinIR", "SwinIR", dict(img_size=32, embed_dim=24, depths=[2], num_heads=[2], window_size=8,
                                        upscale=2, upsampler="pixelshuffle", mlp_ratio=2.0), ".pth"),
    "HAT": ("HAT", "HAT", dict(img_size=32, embed_dim=24, depths=(2,), num_heads=(2,), window_size=8,
                               upscale=2, num_feat=16, compress_ratio=3, squeeze_factor=6, mlp_ratio=2.0), ".pth"),
    "DAT": ("DAT", "DAT", dict(img_size=32, embed_dim=24, split_size=[2, 4], depth=[2], num_heads=[2],
                               expansion_factor=2.0, upscale=2), ".pth"),
    "Swin2SR": ("Swin2SR", "Swin2SR", dict(img_size=32, embed_dim=24, depths=[2], num_heads=[2], window_size=8,
                                           upscale=2, upsampler="pixelshuffle", mlp_ratio=2.0), ".pth"),
    "RCAN": ("RCAN", "RCAN", dict(scale=2, n_resgroups=1, n_resblocks=2, n_feats=16, reduction=4), ".pth"),
    "RealCUGAN": ("RealCUGAN", "UpCunet2x", dict(), ".pth"),  # its published size; spandrel: minimum 32
    "SwiftSRGAN": ("SwiftSRGAN", "SwiftSRGAN", dict(num_channels=16, num_blocks=2, upscale_factor=2), ".pth"),
    "MoSR": ("MoSR", "MoSR", dict(upscale=2, n_block=2, dim=16), ".pth"),
    "DITN": ("DITN", "DITN", dict(dim=16, ITL_blocks=1, SAL_blocks=1, upscale=2), ".pth"),
    "DCTLSA": ("DCTLSA", "DCTLSA", dict(nf=20, num_modules=1, upscale=2, num_head=5), ".pth"),
    "DnCNN": ("DnCNN", "DnCNN", dict(in_nc=3, out_nc=3, nc=16, nb=8, act_mode="R"), ".pth"),  # restoration: refused
}
ODD_SIZE = (37, 53)


def write_checkpoint(name: str, folder: Path) -> Path:
    import importlib

    import torch

    module, cls, kwargs, suffix = CONFIGS[name]
    torch.manual_seed(0)
    net = getattr(importlib.import_module(f"spandrel.architectures.{module}"), cls)(**kwargs).eval()
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    path = folder / f"{name}{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"params": state}, path)
    return path


def backend_parity(model, onnx_path: Path) -> dict[str, str]:
    """Each CPU backend on an odd-sized crop (padded to the requirements) vs spandrel's own padding."""
    import spandrel
    import torch

    from esrgan.parity import compare
    from esrgan.photographs import photo_crops
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend
    from esrgan.runtime.tiling import run_fitted

    x = photo_crops([ODD_SIZE], model.spec.num_in_ch)[0]
    descriptor = spandrel.ModelLoader().load_from_state_dict(model.state_dict())
    with torch.no_grad():
        ref = descriptor(torch.from_numpy(x.copy())).numpy()  # pads to its size requirements, crops, clamps
    out: dict[str, str] = {}
    for label, make in (("onnxruntime", lambda: OnnxRuntimeBackend(onnx_path, warn=False)),
                        ("openvino", lambda: OpenVinoBackend(onnx_path, precision="fp32"))):
        try:
            backend = make()
            y = np.clip(run_fitted(backend.run, x, backend.scale, backend.size_requirements), 0, 1)
            backend.close()
            out[label] = str(compare(ref, y)) if y.shape == ref.shape else f"shape {y.shape} != {ref.shape}"
        except Exception as exc:  # recorded, not fatal: the table says what failed
            out[label] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return out


def try_arch(name: str, exporter: str, work: Path) -> dict:
    from esrgan.export.pipeline import export_artifacts
    from esrgan.models.checkpoints import load_generator

    module, cls, kwargs, suffix = CONFIGS[name]
    row: dict = {"name": name, "exporter": exporter, "config": f"{cls}({', '.join(f'{k}={v}' for k, v in kwargs.items())})",
                 "file": suffix}
    folder = work / f"{name}-{exporter}"
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        ckpt = write_checkpoint(name, folder)
        model = load_generator(ckpt)
        row["spec"] = model.spec.describe()
        result = export_artifacts(ckpt, folder / "out", exporter=exporter,
                                  progress=lambda line: print(line, file=sys.stderr, flush=True))
        row["parity"] = {c.precision: str(c.parity) for c in result.report.checks}
        row["shapes"] = {c.precision: ", ".join("x".join(map(str, s[2:])) for s in c.shapes)
                         for c in result.report.checks}
        row["exported"] = True
        row["backends"] = backend_parity(model, result.onnx_fp32)
    except Exception as exc:
        row["exported"] = False
        row["reason"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def run_isolated(name: str, exporter: str, work: Path) -> dict:
    """``try_arch`` in a child process; a crash of the child is recorded as the reason."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", name, "--exporter", exporter, "--work", str(work)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rows = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and rows:
        row = rows[-1]
    else:
        crash = "segmentation fault" if proc.returncode == -11 else f"exit code {proc.returncode}"
        steps = [ln for ln in proc.stderr.splitlines() if ln.endswith("...")]
        module, cls, kwargs, suffix = CONFIGS[name]
        row = {"name": name, "exporter": exporter, "exported": False, "file": suffix,
               "config": f"{cls}({', '.join(f'{k}={v}' for k, v in kwargs.items())})",
               "reason": f"the process died ({crash}) while {steps[-1][:-3] if steps else 'starting'}"}
    print(json.dumps(row), flush=True)
    return row


def cpu_name() -> str:
    from esrgan.runtime.cpu_features import probe_cpu_features

    return probe_cpu_features().report_name


def _reason(row: dict) -> str:
    """The refusal line without the temporary folders it names (they are gone after the run)."""
    import re

    text = re.sub(r" \(files kept in [^)]*\)", "", row.get("reason", ""))
    return re.sub(r"\S*/(?:tmp|work)/\S*?(\w+\.(?:onnx|pth|safetensors)): ", r"\1: ", text).replace("|", "/")


def write_report(rows: list[dict]) -> None:
    import onnxruntime
    import openvino
    import spandrel
    import torch

    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / "report.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# spandrel architectures through esrgan's export pipeline",
        "",
        f"CPU: {cpu_name()}; torch {torch.__version__}, spandrel {spandrel.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}.",
        "Random weights (seed 0) at the small configurations listed; written by `benchmarks/spandrel_archs.py`.",
        "FP32/FP16: the exported ONNX file on ONNX Runtime (CPU) against PyTorch FP32, worst of the two",
        "verification crops. Backends: the FP32 file on each runtime backend, whole image, on a 37x53 crop",
        "padded to the size requirements by `esrgan.runtime.tiling.run_fitted`, against spandrel's own",
        "padding in PyTorch.",
        "",
        "| architecture | exporter | exported | input sizes | FP32 parity | FP16 parity | ONNX Runtime | OpenVINO | reason | config |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p, b = r.get("parity", {}), r.get("backends", {})
        lines.append(
            f"| {r['name']} | {r['exporter']} | {'yes' if r['exported'] else 'no'} | {r.get('spec', '').split('input size: ')[-1]} | "
            f"{p.get('fp32', '')} | {p.get('fp16', '')} | {b.get('onnxruntime', '')} | {b.get('openvino', '')} | "
            f"{_reason(r)} | `{r['config']}` ({r['file']}) |"
        )
    (REPORT_DIR / "report.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated names from CONFIGS")
    parser.add_argument("--work", default=None, help="folder for the checkpoints and ONNX files (default: temporary)")
    parser.add_argument("--exporters", default="dynamo,torchscript")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child process: one architecture
    parser.add_argument("--exporter", default="dynamo", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(try_arch(args.one, args.exporter, Path(args.work))), flush=True)
        return
    names = [n for n in args.only.split(",") if n] or list(CONFIGS)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        rows = [run_isolated(name, exp, work) for name in names for exp in args.exporters.split(",")]
    if args.only and (REPORT_DIR / "report.json").exists():  # refresh these rows, keep the others
        new = {(r["name"], r["exporter"]): r for r in rows}
        old = {(r["name"], r["exporter"]): r for r in json.loads((REPORT_DIR / "report.json").read_text())}
        merged = {**old, **new}
        rows = [merged[k] for k in sorted(merged, key=lambda k: (list(CONFIGS).index(k[0]), k[1]))]
    write_report(rows)


if __name__ == "__main__":
    main()
