"""What makes ONNX Runtime faster on this CPU? Session-option variants, timed interleaved.

Usage: python -m benchmarks.ort_tuning MODEL_FP32.onnx CHECKPOINT [--tile 64] [--repeat 5] [-o out.json]
       [--alt-onnx OTHER.onnx --skip-levels --two-threads] [--spin-check --tile 32 --repeat 9]

Every variant runs the same photograph crop; PyTorch eager FP32 is the reference. One thread per
library unless a variant says otherwise (the ``threads2`` rows show thread scaling, with torch at
2 threads too, for a fair ratio). Results feed benchmarks/reports/bench/*/report.md.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from esrgan.bench.inputs import skimage_photo, tile_batch  # noqa: E402
from esrgan.bench.timing import interleaved  # noqa: E402


def ort_variant(path: str, level: str = "ENABLE_ALL", threads: int = 1, spinning: bool | None = None,
                denormal_zero: bool = False, arena: bool = True, iobinding: bool = False) -> Callable[[np.ndarray], object]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_{level}")
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if spinning is not None:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if denormal_zero:
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    opts.enable_cpu_mem_arena = arena
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    if not iobinding:
        return lambda x: sess.run(None, {name: x})
    binding = sess.io_binding()
    out_name = sess.get_outputs()[0].name

    def run(x: np.ndarray) -> object:
        binding.bind_cpu_input(name, x)
        binding.bind_output(out_name, "cpu")
        sess.run_with_iobinding(binding)
        return binding.get_outputs()[0]

    return run


def torch_variant(checkpoint: str, threads: int = 1) -> Callable[[np.ndarray], object]:
    """The runtime's PyTorch backend (the reference), at its own thread count on every run."""
    from esrgan.runtime.backends.torch_backend import TorchBackend

    return TorchBackend(checkpoint, threads=threads).run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("checkpoint")
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--two-threads", action="store_true")
    ap.add_argument("--alt-onnx", help="a second export of the same weights (e.g. the other exporter's graph)")
    ap.add_argument("--skip-levels", action="store_true", help="skip the optimisation-level and minor variants")
    ap.add_argument("--spin-check", action="store_true",
                    help="only: ORT 1 thread vs 2 threads with and without spinning (table 3 of ort_tuning.md)")
    ap.add_argument("-o", "--out")
    args = ap.parse_args()
    x = tile_batch([skimage_photo("astronaut")], args.tile, 1)
    if args.spin_check:
        variants = {
            "1 thread": ort_variant(args.onnx),
            "2 threads, spinning on (ORT default)": ort_variant(args.onnx, threads=2, spinning=True),
            "2 threads, spinning off": ort_variant(args.onnx, threads=2, spinning=False),
        }
        _report(variants, x, args, ref_key="1 thread")
        return
    variants = {
        "torch eager fp32": torch_variant(args.checkpoint),
        "ort ENABLE_ALL (default)": ort_variant(args.onnx),
    }
    if not args.skip_levels:
        variants.update({
            "ort ENABLE_EXTENDED": ort_variant(args.onnx, "ENABLE_EXTENDED"),
            "ort ENABLE_BASIC": ort_variant(args.onnx, "ENABLE_BASIC"),
            "ort DISABLE_ALL": ort_variant(args.onnx, "DISABLE_ALL"),
            "ort ALL + spinning off": ort_variant(args.onnx, spinning=False),
            "ort ALL + denormals as zero": ort_variant(args.onnx, denormal_zero=True),
            "ort ALL + no memory arena": ort_variant(args.onnx, arena=False),
            "ort ALL + IO binding": ort_variant(args.onnx, iobinding=True),
        })
    if args.alt_onnx:
        variants["ort ENABLE_ALL, alternative graph"] = ort_variant(args.alt_onnx)
    if args.two_threads:
        variants["torch eager fp32, 2 threads"] = torch_variant(args.checkpoint, threads=2)
        variants["ort ALL, 2 threads"] = ort_variant(args.onnx, threads=2)
        variants["ort ALL, 2 threads, spinning off"] = ort_variant(args.onnx, threads=2, spinning=False)
    _report(variants, x, args, ref_key="torch eager fp32")


def _report(variants: dict[str, Callable[[np.ndarray], object]], x: np.ndarray, args: argparse.Namespace,
            ref_key: str) -> None:
    stats = interleaved([(k, (lambda f=f: f(x))) for k, f in variants.items()], repeat=args.repeat, warmup=1)
    ref = stats[ref_key].median
    rows = []
    for k, s in stats.items():
        base = stats["torch eager fp32, 2 threads"].median if "2 threads" in k and "torch eager fp32, 2 threads" in stats else ref
        rows.append({"variant": k, **s.as_dict(), "mpix_s": args.tile**2 / s.median / 1e6, "vs_ref": base / s.median})
        print(f"{k:40s} {s.median * 1e3:9.1f} ms  spread {s.spread:5.0%}  {base / s.median:5.2f}x {ref_key}")
    if args.out:
        from esrgan.atomic import write_text_atomic

        write_text_atomic(args.out, json.dumps({"tile": args.tile, "repeat": args.repeat, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
