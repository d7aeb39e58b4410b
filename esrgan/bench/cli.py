"""esrgan-bench: is the optimised model still the same model, and how much faster is it?

Measurement flags default to "not given" (None): ``esrgan.bench.config.resolve_config`` fills them
(flag > --quick preset > ``BenchConfig`` default); the help shows ``BenchConfig``'s values.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from esrgan.bench.config import DEFAULT_PRESET, QUICK, BenchConfig, resolve_config
from esrgan.bench.models import PRESETS
from esrgan.cli_support import Command, debug_option, handle_errors, version_option
from esrgan.elapsed import timed
from esrgan.errors import UsageError
from esrgan.export.options import EXPORTERS


def _help(text: str, field: str) -> str:
    value = getattr(BenchConfig, field)
    shown = ",".join(str(v) for v in value) if isinstance(value, tuple) else value
    return f"{text} [default: {shown}]"


def _quick_help() -> str:
    return ", ".join(f"{k} {','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in QUICK.items())


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


def _keys(text: str | None) -> tuple[str, ...] | None:
    keys = tuple(k for k in (text or "").replace(" ", "").split(",") if k)
    return keys or None


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "checkpoint", type=click.Path(dir_okay=False), help="Generator checkpoint to benchmark, or a published model's name (esrgan-run --list-models).")
@click.option("--preset", type=click.Choice(PRESETS),
              help="paper: random-weight paper-size x4; tiny: a very small x4 (smoke tests); "
                   f"default: the shipped default model. Default: {DEFAULT_PRESET}.")
@click.option("--backends", help="Comma-separated rows (see --list); default: every row available here.")
@click.option("--tiles", help=_help("Comma-separated input tile sizes in px.", "tiles"))
@click.option("--batch", "batches", help=_help("Comma-separated batch sizes.", "batches"))
@click.option("--images", type=click.Path(file_okay=False), help="Folder of images (default: scikit-image photographs).")
@click.option("--repeat", type=int, help=_help("Timed repetitions per case.", "repeat"))
@click.option("--warmup", type=int, help=_help("Untimed warm-up calls per case.", "warmup"))
@click.option("--exporter", type=click.Choice(EXPORTERS),
              help=_help("ONNX exporter for the model under test (the export pipeline's default).", "exporter"))
@click.option("--threads", type=int, help=_help("Threads given to each library.", "threads"))
@click.option("--quick", is_flag=True, help=f"About a minute: {_quick_help()}; flags given still win; small checks.")
@click.option("--check-tile", type=int, help=_help("Tile for the tiled-vs-whole and end-to-end checks.", "check_tile"))
@click.option("--check-pad", type=int, help=_help("Tile pad for those checks (the runtime's default).", "check_pad"))
@click.option("--no-tiling-check", is_flag=True, help="Skip the tiled vs whole-image comparison.")
@click.option("--no-end-to-end", is_flag=True, help="Skip the esrgan-run folder pipeline measurement.")
@click.option("--list", "list_rows", is_flag=True, help="List the known rows and exit.")
@click.option("--notes", type=click.Path(dir_okay=False, exists=True), help="Markdown file placed at the top of report.md.")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), help="Output folder for the report.")
@version_option
@debug_option
@handle_errors(extra="export")
def main(
    checkpoint: str | None, preset: str | None, backends: str | None, tiles: str | None, batches: str | None,
    images: str | None, repeat: int | None, warmup: int | None, exporter: str | None, threads: int | None,
    quick: bool, check_tile: int | None, check_pad: int | None, no_tiling_check: bool, no_end_to_end: bool,
    list_rows: bool, notes: str | None, out_dir: str | None,
) -> None:
    """Measure parity and throughput of every backend against PyTorch; write report.json/.md and plots."""
    from esrgan.bench import rows as rowmod

    if list_rows:
        for key, row in rowmod.all_rows().items():
            click.echo(f"{key:22s} {row.precision:5s} {row.device:5s} {row.description}")
        return
    # Every model is exported and compared with PyTorch: without the export extra this import ends
    # the run in one line, before the arguments send the user round twice or any preparation starts.
    import esrgan.export.pipeline  # noqa: F401

    if out_dir is None:
        raise UsageError("-o OUTDIR is required")
    from esrgan.bench.report import check_report_folder

    check_report_folder(out_dir)
    flags = {
        "tiles": _ints(tiles, "--tiles"), "batches": _ints(batches, "--batch"), "repeat": repeat, "warmup": warmup,
        "threads": threads, "images": Path(images) if images else None, "backends": _keys(backends),
        "exporter": exporter, "check_tile": check_tile, "check_pad": check_pad,
    }
    config = resolve_config(flags, QUICK if quick else None)
    if config.threads < 1 or config.repeat < 1 or config.warmup < 0:
        raise UsageError("--threads and --repeat must be >= 1, --warmup >= 0")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(config.threads)  # before torch/ORT spin up their pools

    from tqdm import tqdm

    from esrgan.bench.models import prepare_model
    from esrgan.bench.report import write_report
    from esrgan.bench.runner import run_benchmark, steps_per_case

    if preset is None and checkpoint is None:
        preset = DEFAULT_PRESET
    rows = rowmod.select(list(config.backends) if config.backends else None)
    from esrgan.download import resolve_model_argument

    checkpoint = resolve_model_argument(checkpoint)  # a published model's name -> its downloaded checkpoint
    say = timed(lambda line: click.echo(line, err=True))
    say("preparing the model (exported once, then cached)")
    needed = rowmod.needed_artifacts(rows)
    model = prepare_model(checkpoint, preset, fp16="fp16" in needed, exporter=config.exporter, int8="int8" in needed,
                          progress=say)
    say("model ready; measuring")
    total = steps_per_case(len(rows), config) * len(config.tiles) * len(config.batches)
    with tqdm(total=total, desc="esrgan-bench", unit="run", dynamic_ncols=True) as bar:
        data = run_benchmark(model, rows, config, progress=bar)
    if not no_tiling_check:
        from esrgan.bench.extras import tiling_check

        say("checking tiled against whole-image output")
        data["tiling"] = tiling_check(model, config, quick=quick)
    if not no_end_to_end:
        from esrgan.bench.extras import end_to_end

        say("measuring the esrgan-run folder pipeline against the raw model")
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
