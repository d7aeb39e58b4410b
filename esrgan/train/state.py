"""Full training state: everything a resumed run needs to continue bit for bit.

One file per stage (``state_psnr.pt``, ``state_gan.pt``) with the model, EMA, discriminator,
optimisers, schedulers, grad scaler, iteration, the RNG states of python/numpy/torch(/CUDA) and the
data stream position. It is written through ``write_atomic`` (temp file + rename), so a run killed
during a save leaves the previous state intact. Everything is stored as tensors and plain Python
values so that it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import collections
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esrgan.atomic import write_atomic
from esrgan.errors import CheckpointError, first_line


def state_path(output: str | Path, stage: str) -> Path:
    return Path(output) / f"state_{stage}.pt"


def weights_path(output: str | Path, stage: str) -> Path:
    return Path(output) / f"{stage}.safetensors"


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # type: ignore[misc]
    keys = np.asarray(keys)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a training state atomically (the last good state survives a crash mid-save)."""
    dest = Path(path)
    with write_atomic(dest) as tmp:
        torch.save(state, tmp)
    return dest


def load_state(path: str | Path) -> dict[str, Any]:
    src = Path(path)
    try:
        # MultiStepLR keeps its milestones in a Counter: the one non-tensor class a state holds.
        with torch.serialization.safe_globals([collections.Counter]):
            state = torch.load(src, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{src}: no training state to resume from") from None
    except Exception as exc:
        raise CheckpointError(f"{src}: unreadable training state ({first_line(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{src}: not a training state (a {type(state).__name__}, expected a dict)")
    return state

