"""``esrgan-export``: checkpoints -> verified ONNX FP32/FP16 (and INT8, TensorRT) artefacts.

    esrgan-export [--psnr CKPT] --gan CKPT [--alpha 0.8] -o OUTDIR [--trt ...]
    esrgan-export --inspect CKPT
    esrgan-export --build-engine OUTDIR/model_fp16.onnx [--min-shape ...]   (later, on a GPU machine)

Defaults come from ``ExportOptions`` and ``EngineOptions`` (the library resolves alpha), never restated here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from esrgan.cli_support import EXIT_OK, Command, debug_option, handle_errors, version_option
from esrgan.elapsed import timed
from esrgan.errors import DependencyError, UsageError
from esrgan.export.engine import EngineOptions
from esrgan.export.options import DEFAULT_ALPHA, EXPORTERS, ExportOptions
from esrgan.runtime.tensorrt_profile import parse_shape


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--gan", "gan", type=click.Path(dir_okay=False), help="GAN-stage (or only) checkpoint, or a published model's name (esrgan-run --list-models).")
@click.option("--psnr", "psnr", type=click.Path(dir_okay=False),
              help="PSNR-stage checkpoint: enables network interpolation with --alpha.")
@click.option("--alpha", type=float, default=ExportOptions.alpha,
              help=f"Interpolation weight in [0, 1]: (1-alpha)*PSNR + alpha*GAN. Default {DEFAULT_ALPHA:g} "
                   "with --psnr (the Python API's too), the GAN weights as they are without.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), help="Output folder.")
@click.option("--opset", type=int, default=ExportOptions.opset, show_default=True, help="ONNX opset (>= 17).")
@click.option("--exporter", type=click.Choice(EXPORTERS), default=ExportOptions.exporter, show_default=True,
              help="torch.onnx exporter: dynamo is torch's default; torchscript, deprecated by torch, exports "
                   "the same graph far faster (x4plus's export step on 2 cores: 5 s against 61 s) and writes opset 17.")
@click.option("--fp16/--no-fp16", default=ExportOptions.fp16, show_default=True, help="Also write model_fp16.onnx.")
@click.option("--int8", is_flag=True, help="Also write model_int8.onnx (static quantisation, needs --calib).")
@click.option("--calib", type=click.Path(exists=True, file_okay=False), help="Folder of calibration images for --int8.")
@click.option("--trt", is_flag=True, help="Also build a TensorRT FP16 engine (needs TensorRT and a CUDA GPU).")
@click.option("--build-engine", "build_engine_from", type=click.Path(dir_okay=False),
              help="Only build a TensorRT engine from this FP16 ONNX file (e.g. on a GPU machine, later).")
@click.option("--min-shape", help="TensorRT profile NxCxHxW (default: the runtime's tiles, 64-512 px + pad, batch 1-4).")
@click.option("--opt-shape", help="TensorRT profile NxCxHxW (default: the runtime's tiles, 64-512 px + pad, batch 1-4).")
@click.option("--max-shape", help="TensorRT profile NxCxHxW (default: the runtime's tiles, 64-512 px + pad, batch 1-4).")
@click.option("--workspace", type=float, default=EngineOptions.workspace_gib, show_default=True,
              help="TensorRT workspace limit (GiB).")
@click.option("--builder-opt-level", type=int, default=EngineOptions.opt_level, show_default=True,
              help="TensorRT builder optimisation level 0-5.")
@click.option("--timing-cache", type=click.Path(dir_okay=False), help="Persistent TensorRT timing cache file.")
@click.option("--verify/--no-verify", default=ExportOptions.verify, show_default=True,
              help="Check every artefact against PyTorch.")
@click.option("--inspect", "inspect_ckpt", type=click.Path(dir_okay=False),
              help="Print what the checkpoint contains (format, spec, size) and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@version_option
@debug_option
@handle_errors(extra="export")
def main(
    gan: str | None, psnr: str | None, alpha: float | None, out_dir: str | None, opset: int, exporter: str,
    fp16: bool, int8: bool, calib: str | None, trt: bool, build_engine_from: str | None,
    min_shape: str | None, opt_shape: str | None, max_shape: str | None,
    workspace: float, builder_opt_level: int, timing_cache: str | None, verify: bool, inspect_ckpt: str | None,
    quiet: bool,
) -> None:
    """Export ESRGAN checkpoints to verified ONNX FP32/FP16 (+ INT8, TensorRT) files."""
    from esrgan.download import resolve_model_argument  # published model names -> downloaded checkpoints

    gan, psnr, inspect_ckpt = (resolve_model_argument(p, progress=not quiet) for p in (gan, psnr, inspect_ckpt))
    engine = EngineOptions(
        min_shape=parse_shape(min_shape) if min_shape else None,
        opt_shape=parse_shape(opt_shape) if opt_shape else None,
        max_shape=parse_shape(max_shape) if max_shape else None,
        workspace_gib=workspace, opt_level=builder_opt_level, timing_cache=Path(timing_cache) if timing_cache else None,
    )
    if inspect_ckpt:
        from esrgan.models.checkpoints import describe_checkpoint

        click.echo(str(describe_checkpoint(inspect_ckpt)))
        sys.exit(EXIT_OK)
    say = _progress(quiet)
    if build_engine_from:
        _build_engine_only(build_engine_from, engine, gan, verify, say)
        sys.exit(EXIT_OK)
    if not gan or not out_dir:
        raise UsageError("--gan CKPT and -o OUTDIR are required (or use --inspect / --build-engine)")
    if int8 != bool(calib):
        raise UsageError("--int8 and --calib DIR go together")

    from esrgan.export.pipeline import export_artifacts

    result = export_artifacts(
        gan, out_dir, psnr_ckpt=psnr, alpha=alpha, fp16=fp16, verify=verify, opset=opset, exporter=exporter,
        int8_calib=calib if int8 else None, engine=engine if trt else None, progress=say,
    )
    for path in result.artifacts():
        click.echo(str(path))
    if not verify:
        click.echo("not verified (--no-verify)", err=True)


def _build_engine_only(onnx_path: str, options: EngineOptions, gan: str | None, verify: bool, say) -> None:  # noqa: ANN001
    from esrgan.export.engine import build_command, build_engine, tensorrt_unavailable
    from esrgan.export.onnx_metadata import read_metadata
    from esrgan.metadata import parse_metadata

    info = parse_metadata(read_metadata(onnx_path), onnx_path)
    if info.precision != "fp16":
        raise UsageError(f"{onnx_path}: --build-engine needs the FP16 ONNX file (this one is {info.precision})")
    if info.spec is not None:
        options = options.resolved(info.spec)
    reason = tensorrt_unavailable()
    if reason:  # before announcing minutes of building
        raise DependencyError(f"{reason}; build the engine on a machine with TensorRT and a CUDA GPU: "
                              f"{build_command(onnx_path, options)}")
    say("building the TensorRT engine (minutes)...")
    path = build_engine(onnx_path, options)
    click.echo(str(path))
    ckpt = Path(gan) if gan else Path(onnx_path).with_name("model.safetensors")
    if verify and ckpt.is_file():
        from esrgan.export.pipeline import raise_if_failed, verify_engine
        from esrgan.export.verify import ParityReport
        from esrgan.models.checkpoints import load_generator

        say(f"verifying {path.name} against {ckpt.name}...")
        check = verify_engine(load_generator(ckpt), path, None)
        say(f"  {check.line()}")
        raise_if_failed(ParityReport([check]), path.parent)
    elif verify:
        click.echo(f"engine not verified: no {ckpt.name} next to {onnx_path} (pass --gan CKPT)", err=True)


def _progress(quiet: bool):  # noqa: ANN202
    if quiet:
        return lambda message: None
    return timed(lambda message: click.echo(message, err=True))


if __name__ == "__main__":
    main()
