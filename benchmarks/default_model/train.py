"""Regenerate the default x4 model: ``python -m benchmarks.default_model.train --output DIR``.

Writes the scikit-image photographs to DIR/data/{train,heldout} and runs

    esrgan-train --preset default-x4 --data DIR/data/train --val-data DIR/data/heldout --output DIR

(one CPU thread, as measured for the report). DIR/psnr.safetensors is the model; DIR/log.jsonl has
the held-out PSNR-Y/SSIM-Y vs bicubic over iterations (see benchmarks/default_model/report.py).
Extra arguments are passed to esrgan-train (e.g. --resume).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from esrgan.photographs import DEFAULT_MODEL_HELD_OUT as HELD_OUT
from esrgan.photographs import DEFAULT_MODEL_TRAIN as TRAIN
from esrgan.photographs import export_photos


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--output", required=True, type=click.Path(file_okay=False), help="Run folder (outside the repo).")
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
def main(output: str, extra: tuple[str, ...]) -> None:
    """Export the photographs, then train the default-x4 preset on them."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    out = Path(output)
    export_photos(out / "data" / "train", TRAIN)
    export_photos(out / "data" / "heldout", HELD_OUT)
    args = [
        "--preset", "default-x4", "--data", str(out / "data" / "train"),
        "--val-data", str(out / "data" / "heldout"), "--output", str(out), *extra,
    ]
    click.echo("esrgan-train " + " ".join(args), err=True)
    from esrgan.train.cli import main as train_main

    train_main.main(args=args, prog_name="esrgan-train")


if __name__ == "__main__":
    sys.exit(main())
