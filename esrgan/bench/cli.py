"""esrgan-bench: is the optimised model still the same model, and how much faster is it?"""

from __future__ import annotations

import os
from pathlib import Path

import click

from esrgan.cli_support import debug_option, handle_errors
from esrgan.errors import UsageError

QUICK = {"tiles": (32,), "batches": (1,), "repeat": 3, "warmup": 1, "backends": ["torch-fp32", "ort-fp32"]}


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"{what}: expected positive integers, got {text!r}")
    return values


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "checkpoint", type=click.Path(dir_okay=False), help="Generator checkpoint to benchmark, or a published model's name (esrgan-run --list-models).")
@click.option("--preset", type=click.Choice(["paper", "tiny", "default"]),
              help="paper: random-weight paper-size x4; tiny: a very small x4 (smoke tests); "
                   "default: the shipped default model. Default: paper.")
@click.option("--backends", help="Comma-separated rows (see --list); default: every row available here.")
@click.option("--tiles", help="Comma-separated input tile sizes in px (default 32,64,128).")
@click.option("--batch", "batches", help="Comma-separated batch sizes (default 1).")
@click.option("--images", type=click.Path(file_okay=False), help="Folder of images (default: scikit-image photographs).")
@click.option("--repeat", type=int, help="Timed repetitions per case (default 5).")
@click.option("--warmup", type=int, help="Untimed warm-up calls per case (default 1).")
@click.option("--exporter", type=click.Choice(["dynamo", "torchscript"]), default="dynamo", show_default=True,
              help="ONNX exporter for the model under test (the export pipeline's default is dynamo).")
@click.option("--threads", type=int, default=1, show_default=True, help="Threads given to each library.")
@click.option("--quick", is_flag=True, help="One small tile, 3 repetitions, torch + ORT FP32 (about a minute).")
@click.option("--check-tile", type=int, help="Tile for the tiled-vs-whole and end-to-end checks (default: the runtime's).")
@click.option("--check-pad", type=int, help="Tile pad for those checks (default: the runtime's).")
@click.option("--no-tiling-check", is_flag=True, help="Skip the tiled vs whole-image comparison.")
@click.option("--no-end-to-end", is_flag=True, help="Skip the esrgan-run folder pipeline measurement.")
@click.option("--list", "list_rows", is_flag=True, help="List the known rows and exit.")
@click.option("--notes", type=click.Path(dir_okay=False, exists=True), help="Markdown file placed at the top of report.md.")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), help="Output folder for the report.")
@debug_option
@handle_errors
def main(
    checkpoint: str | None, preset: str | None, backends: str | None, tiles: str | None, batches: str | None,
    images: str | None, repeat: int | None, warmup: int | None, exporter: str, threads: int, quick: bool, check_tile: int | None,
    check_pad: int | None, no_tiling_check: bool,
    no_end_to_end: bool, list_rows: bool, notes: str | None, out_dir: str | None,
) -> None:
    """Measure parity and throughput of every backend against PyTorch; write report.json/.md and plots."""
    from esrgan.bench import rows as rowmod

    if list_rows:
        for key, row in rowmod.all_rows().items():
            click.echo(f"{key:22s} {row.precision:5s} {row.device:5s} {row.description}")
        return
    if out_dir is None:
        raise UsageError("-o OUTDIR is required")
    if threads < 1 or (repeat is not None and repeat < 1) or (warmup is not None and warmup < 0):
        raise UsageError("--threads and --repeat must be >= 1, --warmup >= 0")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)  # before torch/ORT spin up their pools

    from tqdm import tqdm

    from esrgan.bench.models import prepare_model
    from esrgan.bench.report import write_report
    from esrgan.bench.runner import BenchConfig, run_benchmark, steps_per_case

    base = QUICK if quick else {}
    config = BenchConfig(
        tiles=_ints(tiles, "--tiles") or base.get("tiles") or BenchConfig.tiles,  # type: ignore[arg-type]
        batches=_ints(batches, "--batch") or base.get("batches") or BenchConfig.batches,  # type: ignore[arg-type]
        repeat=repeat or base.get("repeat") or BenchConfig.repeat,  # type: ignore[arg-type]
        warmup=warmup if warmup is not None else base.get("warmup", BenchConfig.warmup),  # type: ignore[arg-type]
        threads=threads, images=Path(images) if images else None, check_tile=check_tile, check_pad=check_pad,
    )
    keys = [k for k in backends.replace(" ", "").split(",") if k] if backends else base.get("backends")
    if preset is None and checkpoint is None:
        preset = "paper"
    rows = rowmod.select(keys)  # type: ignore[arg-type]
    from esrgan.download import resolve_model_argument

    checkpoint = resolve_model_argument(checkpoint)  # a published model's name -> its downloaded checkpoint
    click.echo("preparing the model (exported once, then cached)...", err=True)
    needed = rowmod.needed_artifacts(rows)
    model = prepare_model(checkpoint, preset, fp16="fp16" in needed, exporter=exporter, int8="int8" in needed)
    total = steps_per_case(len(rows), config) * len(config.tiles) * len(config.batches)
    with tqdm(total=total, desc="esrgan-bench", unit="run", dynamic_ncols=True) as bar:
        data = run_benchmark(model, rows, config, progress=bar)
    if not no_tiling_check:
        from esrgan.bench.extras import tiling_check

        data["tiling"] = tiling_check(model, config, quick=quick)
    if not no_end_to_end:
        from esrgan.bench.extras import end_to_end

        data["end_to_end"] = end_to_end(model, config, quick=quick)
    title = f"esrgan-bench: {model.name} ({model.spec.describe()})"
    doc = write_report(data, out_dir, title, Path(notes).read_text() if notes else "")
    _summary(doc, out_dir)


def _summary(doc: dict, out_dir: str) -> None:
    for r in doc["results"]:
        speed = f"{r['speedup_vs_torch']:.2f}x torch" if r["speedup_vs_torch"] is not None else "no reference"
        parity = "reference" if r["reference"] else ("parity ok" if r["parity_ok"] else "PARITY FAIL")
        click.echo(f"{r['backend']:18s} tile {r['tile']:4d} batch {r['batch']}: "
                   f"{r['throughput_mpix_s']:.3g} MP/s, {speed}, {parity}")
    for key, reason in doc["skipped"].items():
        click.echo(f"{key:18s} skipped: {reason}")
    click.echo(f"report: {Path(out_dir) / 'report.md'}")


if __name__ == "__main__":
    main()
