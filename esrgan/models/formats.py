"""Recognise a generator state dict's layout and convert it to our module's key names.

Only this project's own format is handled here so far; the published formats (BasicSR /
Real-ESRGAN, original ESRGAN, old arch, PyTorch-GAN) are detected from key names and tensor
shapes, never from file names.
"""

from __future__ import annotations

import torch

from esrgan.errors import CheckpointError
from esrgan.models.spec import GeneratorSpec

StateDict = dict[str, torch.Tensor]
SPEC_KEY = "esrgan.spec"


def convert_state_dict(state: StateDict, meta: dict[str, str], src: str) -> tuple[str, GeneratorSpec, StateDict]:
    """Return (format name, spec, state dict with our key names)."""
    if SPEC_KEY in meta:
        return "esrgan", GeneratorSpec.from_json(meta[SPEC_KEY]), state
    raise CheckpointError(f"{src}: unknown checkpoint layout (first keys: {', '.join(list(state)[:5])})")
