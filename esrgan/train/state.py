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
from esrgan.errors import CheckpointError, ConfigError


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


# The entries of a state and what each must be: a state is an untrusted file (copied, hand-edited,
# from another version), and a wrong entry must be named in one line before anything is restored.
_STAGES = ("psnr", "gan")  # what a state file can belong to
_MAPPINGS = ("config", "spec", "g", "ema", "opt_g", "sched_g", "scaler", "rng", "data")
_GAN_MAPPINGS = ("d", "opt_d", "sched_d")


def load_state(path: str | Path, stage: str | None = None, iterations: int | None = None) -> dict[str, Any]:
    """The training state at ``path``, its entries checked (see ``check_state``): of ``stage`` (else
    of the stage it names), its iteration at most ``iterations`` when given."""
    from esrgan.models.checkpoints import torch_load_problem

    src = Path(path)
    try:
        # MultiStepLR keeps its milestones in a Counter: the one non-tensor class a state holds.
        with torch.serialization.safe_globals([collections.Counter]):
            state = torch.load(src, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{src}: no training state to resume from") from None
    except Exception as exc:
        raise CheckpointError(f"{src}: {torch_load_problem(src, exc, 'training state')}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{src}: not a training state (a {type(state).__name__}, expected a dict)")
    check_state(state, src, stage, iterations)
    return state


def check_state(state: dict[str, Any], src: Path, stage: str | None = None, iterations: int | None = None) -> None:
    """Refuse, in one line naming the entry, a state whose structure or types are not what
    ``StageRun.state`` writes: the stage, an integer iteration in [0, iterations], mappings for the
    modules, optimisers, schedulers, scaler, RNG and data position, and the data position's integers."""

    def bad(entry: str, why: str) -> CheckpointError:
        return CheckpointError(f"{src}: entry {entry!r} of the training state {why}; not a usable {stage}-stage state")

    expected = stage or (state.get("stage") if state.get("stage") in _STAGES else "psnr or gan")
    if state.get("stage") != expected:
        raise bad("stage", f"is {state.get('stage')!r}, expected {expected!r}")
    stage = expected
    it = state.get("iter")
    if isinstance(it, bool) or not isinstance(it, int):
        raise bad("iter", f"is {it!r}, expected an integer")
    if it < 0 or (iterations is not None and it > iterations):
        raise bad("iter", f"is {it}, outside 0..{iterations if iterations is not None else ''} (the stage's iterations)")
    for entry in _MAPPINGS + (_GAN_MAPPINGS if stage == "gan" else ()):
        if not isinstance(state.get(entry), dict):
            raise bad(entry, f"is {type(state.get(entry)).__name__}, expected a mapping" if entry in state else "is missing")
    from esrgan.train.config import check_values

    try:
        check_values(state["config"], "config")
    except ConfigError as exc:
        raise bad("config", f"is not a training config ({exc})") from None
    for entry in ("g", "ema"):
        weights = state[entry].get("model") if entry == "ema" else state[entry]
        if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise bad(entry, "does not hold a generator's tensors")
    for key in ("seed", "position"):
        value = state["data"].get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("data", f"has {key} {value!r}, expected an integer >= 0")

