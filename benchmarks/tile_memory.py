"""Peak memory per input pixel of each CPU engine, against the estimate ``--tile auto`` sizes tiles by.

Why: ``--tile auto`` runs an image whole, or picks the largest tile, from a memory budget (a quarter of
the available memory, at most 4 GiB) and ``esrgan.runtime.engine.bytes_per_input_pixel``, an estimate
from the network's activations alone. Engines add their own workspaces (im2col buffers, Winograd
transforms, arenas), and a container that goes over its limit is killed, not told it is out of memory.
This measures what each engine really takes: the whole ``esrgan-run`` command (``--tile 0``, so the
image runs whole) as a child process, its peak resident set from the kernel (``os.wait4``), at two
image sizes per model; the difference over the difference in pixels is the engine's memory per input
pixel, start-up and weights cancelled. Its ratio to the estimate is what
``esrgan.runtime.backends.base.MEMORY_FACTORS`` must cover.

Run: ``python -m benchmarks.tile_memory`` (about five minutes on 2 cores; the ncnn row needs the
``ncnn`` extra); writes ``tile_memory.md`` and ``.json`` under ``benchmarks/reports/runtime/``.
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

OUT_DIR = Path(__file__).parent / "reports" / "runtime"
BACKENDS = ("onnxruntime-cpu", "openvino", "ncnn-cpu")
# (model label, --model value or None for the built-in model, small side, large side)
MODELS = (("built-in default x4 (RRDBNet, 32 features, pixel shuffle)", None, 300, 700),
          ("Real-ESRGAN x4plus (RRDBNet, 64 features, nearest + conv)", "x4plus", 120, 240))


def peak_rss_bytes(cmd: list[str]) -> tuple[int, float]:
    """The child's peak resident set (bytes) and wall seconds; raises when the command fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.strip().splitlines()[-1:]}")
    return usage.ru_maxrss * 1024, time.perf_counter() - start  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("/tmp/esrgan-real"), help="folder for real_weights")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from benchmarks.real_weights import real_x4plus
    from esrgan.photographs import photograph
    from esrgan.runtime.backends.base import MEMORY_FACTORS
    from esrgan.runtime.cpu_features import probe_cpu_features
    from esrgan.runtime.default_model import default_model_path
    from esrgan.runtime.engine import bytes_per_input_pixel
    from esrgan.runtime.model_source import checkpoint_to_onnx

    x4plus = real_x4plus(args.weights)
    checkpoint_to_onnx(x4plus, say=print)  # the export is cached before anything is measured
    photo = np.asarray(Image.fromarray(photograph("chelsea")).resize((890, 890), Image.Resampling.BICUBIC))
    rows = []
    with tempfile.TemporaryDirectory(prefix="tile-memory-") as tmp:
        for label, model, small, large in MODELS:
            estimate = bytes_per_input_pixel(None if model else _default_spec(default_model_path()), 4)
            for backend in BACKENDS:
                peaks = {}
                for side in (small, large):
                    image = Path(tmp) / f"{side}.png"
                    Image.fromarray(photo[:side, :side]).save(image)
                    cmd = [sys.executable, "-m", "esrgan.runtime.cli", str(image), str(Path(tmp) / "out"),
                           "--backend", backend, "--tile", "0", "--overwrite", "-q"]
                    if model:
                        cmd += ["-n", str(x4plus)]
                    try:
                        peaks[side] = peak_rss_bytes(cmd)
                    except RuntimeError as exc:
                        print(f"{backend}: {exc}", flush=True)
                        break
                    print(f"{label[:24]} {backend} {side}x{side}: {peaks[side][0] / 2**20:.0f} MiB "
                          f"in {peaks[side][1]:.1f} s", flush=True)
                if len(peaks) < 2:
                    rows.append({"model": label, "backend": backend, "failed": True})
                    continue
                per_pixel = (peaks[large][0] - peaks[small][0]) / (large * large - small * small)
                rows.append({"model": label, "backend": backend, "sides": [small, large],
                             "peak_bytes": [peaks[small][0], peaks[large][0]], "bytes_per_pixel": per_pixel,
                             "estimate": estimate, "ratio": per_pixel / estimate,
                             "factor": MEMORY_FACTORS.get(backend, 1.0)})
    features = probe_cpu_features()
    report = {"cpu": features.report_name, "cores": os.cpu_count(), "rows": rows,
              "flags": sorted(f for f in features.flags if f.startswith(("avx", "amx")))}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tile_memory.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "tile_memory.md").write_text(markdown(report))
    print(markdown(report))


def _default_spec(path: Path) -> object:
    from esrgan.metadata import onnx_metadata, parse_metadata

    return parse_metadata(onnx_metadata(path), str(path), require_scale=False).spec


def markdown(r: dict) -> str:
    lines = [
        "# Peak memory per input pixel, by CPU engine, against `--tile auto`'s estimate",
        "",
        f"CPU: **{r['cpu']}** ({r['cores']} cores; {' '.join(r['flags'])}). Method: `benchmarks/tile_memory.py`: the "
        "whole `esrgan-run IMAGE OUT --backend B --tile 0` as a child process, its peak resident set (`os.wait4`) "
        "at two square crops of a photograph; memory per input pixel = the difference in peaks over the "
        "difference in pixels (start-up and weights cancel). Estimate: "
        "`esrgan.runtime.engine.bytes_per_input_pixel` (activations only). Factor: what the runtime multiplies "
        "the estimate by for that engine (`esrgan.runtime.backends.base.MEMORY_FACTORS`).",
        "",
        "| model | engine | crops | peaks | bytes per input pixel | estimate | measured / estimate | factor used |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        if row.get("failed"):
            lines.append(f"| {row['model']} | {row['backend']} | failed | | | | | |")
            continue
        small, large = row["sides"]
        peaks = " / ".join(f"{p / 2**20:.0f} MiB" for p in row["peak_bytes"])
        covered = "" if row["factor"] >= row["ratio"] else " (**not covered**)"
        lines.append(f"| {row['model']} | {row['backend']} | {small}² / {large}² | {peaks} | "
                     f"{row['bytes_per_pixel']:.0f} | {row['estimate']:.0f} | {row['ratio']:.2f} | "
                     f"{row['factor']:.1f}{covered} |")
    lines += ["", "A factor below the measured ratio would let `--tile auto` take more memory than its budget "
              "says; above it, tiles are smaller than they could be (more context work per pixel)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
