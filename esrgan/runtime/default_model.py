"""The built-in model ``esrgan-run`` uses when ``--model`` is not given (shipped as package data).

Its JSON sidecar carries how it was trained and what it gains over bicubic on held-out photographs;
the one line printed when it is used quotes that gain, so users know what they are getting.
"""

from __future__ import annotations

import json
from pathlib import Path

from esrgan.errors import EsrganError, ModelError
from esrgan.models.spec import GeneratorSpec

MODEL_DIR = Path(__file__).parent / "models"
MODEL_NAME = "default_x4.onnx"
SIDECAR_NAME = "default_x4.json"


def default_model_path() -> Path:
    """The shipped ONNX file; a ModelError (one line) when this install lacks it."""
    path = MODEL_DIR / MODEL_NAME
    if not path.is_file():
        raise ModelError(
            f"no --model given and the built-in default model is missing ({path}); "
            "reinstall esrgan or pass --model FILE (.onnx, .engine or a checkpoint)"
        )
    return path


def held_out_gain_db(meta: dict) -> float | None:
    """PSNR-Y gain over bicubic on held-out photographs, from the sidecar (None if it says nothing)."""
    if isinstance(meta.get("held_out_psnr_y_gain_db"), (int, float)):
        return float(meta["held_out_psnr_y_gain_db"])
    held = meta.get("held_out")
    if isinstance(held, dict):
        if isinstance(held.get("psnr_y_gain_db"), (int, float)):
            return float(held["psnr_y_gain_db"])
        model, bicubic = held.get("psnr_y"), held.get("bicubic_psnr_y")
        if isinstance(model, (int, float)) and isinstance(bicubic, (int, float)):
            return float(model) - float(bicubic)
    return None


def default_model_notice(path: Path | None = None) -> str:
    """The one line saying the default model is used, with its held-out gain when known."""
    path = path or default_model_path()
    sidecar = path.with_name(SIDECAR_NAME)
    meta: dict = {}
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
    gain = held_out_gain_db(meta)
    what = "x4 model"
    if isinstance(meta.get("spec"), dict):
        try:  # in words a user reads, not the spec's nf/nb/gc shorthand
            spec = GeneratorSpec.from_dict(meta["spec"])
            what = f"x{spec.scale} RRDBNet, {spec.num_block} blocks of {spec.num_feat} features"
        except EsrganError:
            pass
    gain_text = f", {gain:+.2f} dB PSNR-Y over bicubic on held-out photographs" if gain is not None else ""
    return f"using the built-in default {what} ({path.name}{gain_text}); pass --model to use another"
