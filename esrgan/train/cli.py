"""``esrgan-train``: the paper's two training stages from the command line.

Every option defaults to "not given" so that the precedence preset < YAML (--config) < flags holds;
the help shows the value from ``TrainConfig`` (whose defaults are the paper preset), never a restated
one. The resolved config is printed (once the data and output folder have been checked, so an error
is not buried under it) and saved as config.yaml.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from esrgan.cli_support import Command, debug_option, handle_errors, version_option
from esrgan.train.config import (
    AMP_DTYPES,
    ARCHS,
    DEVICES,
    PRESETS,
    SCHEDULES,
    STAGES,
    TrainConfig,
    resolve_config,
)

_PAPER = TrainConfig()


def _help(text: str, field: str, label: str = "paper preset") -> str:
    """``text`` plus ``TrainConfig``'s value of ``field``; ``label`` says where that value applies."""
    value = getattr(_PAPER, field)
    shown = "none" if value is None else ("yes" if value is True else "no" if value is False else value)
    return f"{text} [{label}: {shown}]"


class _OneLineHandler(logging.Handler):
    """'warning: ...' lines on stderr, written through tqdm so progress bars stay intact."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def setup_logging() -> None:
    logger = logging.getLogger("esrgan.train")
    if not any(isinstance(h, _OneLineHandler) for h in logger.handlers):
        logger.addHandler(_OneLineHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _print_config(config: TrainConfig) -> None:
    """The resolved config, printed once the data and output have been checked (errors come first)."""
    click.echo("resolved config:\n" + "\n".join("  " + line for line in config.to_yaml().splitlines()))


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--data", type=click.Path(file_okay=False), help="Folder of HR training images (any depth; png/jpg/webp/tif).")
@click.option("--val-data", type=click.Path(file_okay=False), help=_help("Folder of HR validation images (PSNR-Y/SSIM-Y vs bicubic).", "val_data", "default"))
@click.option("--output", type=click.Path(file_okay=False), help="Folder for checkpoints, state, config, log and plot.")
@click.option("--stage", type=click.Choice(STAGES), help=_help("Which stage(s) to run; gan starts from the PSNR weights.", "stage"))
@click.option("--preset", type=click.Choice(list(PRESETS)), help=_help("Named defaults: paper (the ESRGAN recipe), tiny (CI smoke test), default-x4 (the shipped compact model).", "preset", "default"))
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file of option: value (field names as in config.yaml); overrides the preset, flags override it.")
@click.option("--arch", type=click.Choice(ARCHS), help=_help("Generator: rrdbnet (paper, VGG-style D) or pytorch-gan (PyTorch-GAN's ESRGAN, patch D).", "arch"))
@click.option("--scale", type=click.Choice(["2", "4", "8"]), help=_help("Upscaling factor.", "scale"))
@click.option("--num-feat", type=int, help=_help("Generator features (nf).", "num_feat"))
@click.option("--num-block", type=int, help=_help("Generator RRDB blocks (nb).", "num_block"))
@click.option("--num-grow-ch", type=int, help=_help("Generator growth channels (gc).", "num_grow_ch"))
@click.option("--psnr-iters", type=int, help=_help("Iterations of the PSNR (L1) stage.", "psnr_iters"))
@click.option("--gan-iters", type=int, help=_help("Iterations of the GAN stage.", "gan_iters"))
@click.option("--batch-size", type=int, help=_help("Global batch size (split across torchrun processes).", "batch_size"))
@click.option("--patch-size", type=int, help=_help("HR patch size in pixels (LR is patch/scale).", "patch_size"))
@click.option("--lr", type=float, help=_help("PSNR-stage learning rate (Adam).", "lr"))
@click.option("--gan-lr", type=float, help=_help("GAN-stage learning rate of G and D (Adam).", "gan_lr"))
@click.option("--schedule", type=click.Choice(SCHEDULES), help=_help("Learning-rate schedule: multistep (halve at milestones) or cosine.", "schedule"))
@click.option("--ema-decay", type=float, help=_help("Decay of the generator weights' EMA (the saved weights).", "ema_decay"))
@click.option("--warmup-iters", type=int, help=_help("GAN stage: first N iterations L1-only, D idle (PyTorch-GAN's ESRGAN warm-up).", "warmup_iters"))
@click.option("--init", type=click.Path(dir_okay=False), help="GAN stage: start from this PSNR checkpoint instead of OUTPUT/psnr.safetensors.")
@click.option("--resume/--no-resume", default=None, help=_help("Continue from OUTPUT/state_<stage>.pt (exactly where it stopped).", "resume", "default"))
@click.option("--seed", type=int, help=_help("Random seed (weights init, data order, crops).", "seed"))
@click.option("--device", type=click.Choice(DEVICES), help=_help("cpu, cuda, or auto (cuda when available).", "device"))
@click.option("--amp/--no-amp", default=None, help=_help("Mixed precision autocast on CUDA (bf16; fp16 with --amp-dtype fp16 uses a grad scaler).", "amp", "default"))
@click.option("--amp-dtype", type=click.Choice(AMP_DTYPES), help=_help("Autocast dtype with --amp.", "amp_dtype"))
@click.option("--workers", type=int, help=_help("DataLoader worker processes per training process.", "workers"))
@click.option("--val-every", type=int, help=_help("Validate every N iterations (and at the end).", "val_every"))
@click.option("--save-every", type=int, help=_help("Save the full training state every N iterations (and at the end).", "save_every"))
@click.option("--vgg-weights", help=_help("VGG19 weights for the perceptual loss: 'auto' (torchvision's file under $TORCH_HOME/hub/checkpoints), a path to vgg19-dcbb9e9d.pth, or 'untrained' (random VGG19, smoke tests only; the tiny preset uses it).", "vgg_weights"))
@version_option
@debug_option
@handle_errors(extra="train", on_interrupt="the same command plus --resume continues from the last saved state")
def main(config_file: str | None, **flags: Any) -> None:
    """Train an ESRGAN generator: PSNR stage (L1), then GAN stage (perceptual + RaGAN + L1).

    Writes OUTPUT/psnr.safetensors and OUTPUT/gan.safetensors (EMA weights), state_<stage>.pt for
    --resume, config.yaml, log.jsonl and training.png. Multi-GPU/multi-process:
    torchrun --nproc_per_node=N -m esrgan.train ...
    """
    from esrgan.train.trainer import train

    setup_logging()
    if flags.get("scale") is not None:
        flags["scale"] = int(flags["scale"])
    config = resolve_config(flags, config_file)
    result = train(config, on_ready=_print_config)
    if int(os.environ.get("RANK", "0")) == 0:
        for stage, path in result.checkpoints.items():
            click.echo(f"{stage} stage: {result.iterations[stage]} iterations, EMA weights in {path}")


if __name__ == "__main__":
    main()
