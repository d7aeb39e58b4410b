"""``BenchConfig``: what ``esrgan-bench`` measures and how, the one owner of its defaults, and the one
precedence rule that fills it: a flag given on the command line > the ``--quick`` preset > the field's
default. Light to import (no torch, no ONNX Runtime): the CLI reads it before it sets thread counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esrgan.export.options import DEFAULT_EXPORTER
from esrgan.runtime.tiling import DEFAULT_TILE_PAD

#: The model measured when neither --model nor --preset is given.
DEFAULT_PRESET = "paper"


@dataclass(frozen=True)
class BenchConfig:
    """Every measurement setting of one esrgan-bench run."""

    tiles: tuple[int, ...] = (32, 64, 128)  # input tile sides (px)
    batches: tuple[int, ...] = (1,)
    repeat: int = 5  # timed repetitions per case
    warmup: int = 1  # untimed calls per case
    threads: int = 1  # threads given to each library
    images: Path | None = None  # None: scikit-image photographs
    backends: tuple[str, ...] | None = None  # row keys; None: every row (unavailable ones say why)
    exporter: str = DEFAULT_EXPORTER  # ONNX exporter for the model under test
    # Tile and pad of the tiled-vs-whole and end-to-end checks: the runtime's default pad, and a fixed
    # tile, because the runtime's "auto" tile depends on the machine's memory and reports must compare.
    check_tile: int = 256
    check_pad: int = DEFAULT_TILE_PAD


#: --quick: one small tile, 3 repetitions, torch + ORT FP32 (about a minute on the paper-size model).
QUICK: dict[str, Any] = {
    "tiles": (32,), "batches": (1,), "repeat": 3, "warmup": 1, "backends": ("torch-fp32", "ort-fp32"),
}


def resolve_config(flags: dict[str, Any], preset: dict[str, Any] | None = None) -> BenchConfig:
    """The config: each flag given (None means not given) > the preset's value > BenchConfig's default."""
    given = {k: v for k, v in flags.items() if v is not None}
    return BenchConfig(**{**(preset or {}), **given})
