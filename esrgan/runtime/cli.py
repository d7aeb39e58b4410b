"""``esrgan-run INPUT OUTPUT``: a thin click layer over ``esrgan.runtime.upscaler.Upscaler``.

Every default comes from ``RunOptions``' fields, the same ones ``Upscaler`` reads, never restated here.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from esrgan.cli_support import EXIT_OK, Command, debug_option, handle_errors, version_option
from esrgan.errors import UsageError
from esrgan.runtime.backends.registry import CHOICES
from esrgan.runtime.options import RunOptions, check_outscale


def parse_tile(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        tile = int(value)
    except ValueError:
        raise UsageError(f"--tile {value!r}: expected a number of pixels, auto, or 0 (whole image)") from None
    if tile < 0 or 0 < tile < 16:
        raise UsageError(f"--tile {tile}: use 0 (whole image) or at least 16 px")
    return tile


def _outscale(value: float | None) -> float | None:
    """Refuse inf, nan and <= 0 while parsing, as click refuses its own range errors (exit 2)."""
    try:
        return check_outscale(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"--outscale {value}: ")) from None


def _list_models(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        from esrgan.models.catalogue import listing

        click.echo("\n".join(listing()))
        ctx.exit(EXIT_OK)


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (Slurm/Kubernetes preemption) unwinds like Ctrl-C, so temp files are removed.
    raise KeyboardInterrupt


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input", metavar="INPUT")
@click.argument("output", metavar="OUTPUT", type=click.Path())
@click.option("-n", "--model", "model", type=click.Path(dir_okay=False), default=None,
              help=".onnx, TensorRT .engine, .pth/.safetensors checkpoint (exported on the fly), ncnn .param "
                   "(.bin beside it), or a published "
                   "model's name (downloaded once, see --list-models). Default: the built-in x4 model.")
@click.option("--list-models", is_flag=True, expose_value=False, is_eager=True, callback=_list_models,
              help="List the published models --model takes by name, then exit.")
@click.option("--backend", type=click.Choice(CHOICES), default=RunOptions.backend, show_default=True,
              help="auto: TensorRT engine, ORT TensorRT, ORT CUDA, ncnn on a Vulkan GPU (ncnn extra), "
                   "then the best CPU path.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default=RunOptions.precision,
              show_default=True,
              help="auto: the backend's choice (auto measures BF16 on a CPU that has it; ncnn-vulkan fp16). "
                   "fp32: exact, on any path auto takes; bf16: openvino; fp16: ncnn-vulkan, ncnn-cpu (ARM CPUs only).")
@click.option("-t", "--tile", "tile_text", default=str(RunOptions.tile), show_default=True,
              help="Tile side in input px; auto = largest that fits; 0 = whole image in one pass.")
@click.option("--tile-pad", type=click.IntRange(min=0), default=RunOptions.tile_pad, show_default=True,
              help="Context px around each tile (the default, x4plus tiled vs untiled: 57-74 dB at tiles of "
                   "128-256 px, 45-56 dB at 16-48 px, by image).")
@click.option("--batch", type=click.IntRange(min=1), default=RunOptions.batch, show_default=True,
              help="Tiles per model call.")
@click.option("-f", "--format", "fmt", type=click.Choice(["same", "png", "jpg", "webp", "tif", "bmp"]),
              default=RunOptions.format, show_default=True, help="Output format; same = the input's.")
@click.option("--suffix", default=RunOptions.suffix,
              help="Write NAME_SUFFIX.ext instead of NAME.ext (as Real-ESRGAN's --suffix). Default: none.")
@click.option("--quality", type=click.IntRange(1, 100), default=RunOptions.quality, show_default=True,
              help="JPEG/WebP quality.")
@click.option("-s", "--outscale", type=float, default=RunOptions.outscale, callback=lambda ctx, param, value: _outscale(value),
              help="Final scale factor (e.g. 3.5 with a x4 model), Lanczos-resized.")
@click.option("--overwrite", is_flag=True,
              help="Redo outputs that already exist, also those another model or other settings wrote.")
@click.option("--shard", default=RunOptions.shard, help="I/N: process a stable 1/N share (0 <= I < N) of the inputs.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=RunOptions.max_pixels, show_default=True,
              help="Refuse inputs with more pixels (decompression bombs).")
@click.option("-g", "--device-id", type=click.IntRange(min=0), default=RunOptions.device_id, show_default=True,
              help="GPU index.")
@click.option("--threads", type=click.IntRange(min=1), default=RunOptions.threads, help="CPU threads for the backend.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or notices; errors and the summary only.")
@version_option
@debug_option
@handle_errors(on_interrupt="every output written is complete; the same command again finishes the rest "
               "(it skips them)")
def main(input: str, output: str, model: str | None, backend: str, precision: str, tile_text: str, tile_pad: int, batch: int,
         fmt: str, suffix: str, quality: int, outscale: float | None, overwrite: bool, shard: str | None, max_pixels: int,
         device_id: int, threads: int | None, quiet: bool) -> None:
    """Upscale every image under INPUT (folder, file or glob) into the folder OUTPUT.

    For one input file, OUTPUT may name the image file to write: esrgan-run cat.jpg cat_x4.png
    """
    from esrgan.download import resolve_model_argument
    from esrgan.runtime import paths
    from esrgan.runtime.backends.registry import check_precision
    from esrgan.runtime.default_model import default_model_path
    from esrgan.runtime.manifest import check_model_early
    from esrgan.runtime.model_source import check_published_runnable
    from esrgan.runtime.upscaler import Upscaler

    signal.signal(signal.SIGTERM, _terminate)
    tile = parse_tile(tile_text)
    shard_t = paths.parse_shard(shard)
    # Bad paths fail in one line before any model is loaded (loading can take seconds).
    plan = paths.plan_run(input, output, fmt, shard_t, suffix=suffix, overwrite=overwrite)
    check_precision(backend, precision)
    check = None if backend == "torch" else check_published_runnable  # torch runs the checkpoint itself
    model = resolve_model_argument(model, progress=not quiet, check=check)
    if plan.folder is not None and plan.jobs:
        check_model_early(plan.folder, model or default_model_path(), overwrite)
    say = (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))
    with Upscaler(model, backend, tile, tile_pad, batch, device_id=device_id, threads=threads, precision=precision,
                  say=say) as up:
        if not quiet:
            info = up.backend.info
            click.echo(f"backend: {info.name} {info.precision} on {info.device} "
                       f"({', '.join(info.providers)}), x{up.scale}", err=True)
        summary = up.upscale_folder(
            input, output, format=fmt, suffix=suffix, quality=quality, outscale=outscale, overwrite=overwrite, shard=shard_t,
            max_pixels=max_pixels, progress=not quiet,
        )
    click.echo(summary.describe(), err=True)
    if summary.written or summary.skipped:
        click.echo(f"results in {Path(output).resolve()}", err=True)
    sys.exit(summary.exit_code)


if __name__ == "__main__":
    main()
