"""VGG19 feature extractor for the perceptual loss: conv5_4 *before* its ReLU (ESRGAN sec. 3.3).

The paper's point is that pre-activation features are denser and keep brightness consistent, so the
extractor is torchvision's ``vgg19().features[:35]`` (ending at conv5_4, index 34), fed ImageNet
mean/std-normalised copies of [0, 1] images, frozen and in eval mode.

Weights: torchvision's ImageNet VGG19 file, found in torch hub's cache ($TORCH_HOME/hub/checkpoints,
default ~/.cache/torch/hub/checkpoints) or at an explicit path. Nothing is downloaded: when the file is
missing the error names it. ``weights="untrained"`` builds a randomly initialised VGG19 for smoke tests
only (the tiny preset uses it and its resolved config says so); it is never chosen silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from esrgan.errors import CheckpointError, DependencyError, first_line

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
# torchvision's VGG19 'E' configuration: numbers are conv widths, "M" max-pools.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
CONV5_4_PRE_RELU = 35  # features[:35] ends with conv5_4, before its ReLU
# The normalisation of the ImageNet images VGG19 was trained on (also PyTorch-GAN's training inputs).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNTRAINED = "untrained"
AUTO = "auto"


def expected_weights_path() -> Path:
    """Where torchvision looks for (and would download) the VGG19 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def _vgg19_features(num_layers: int) -> nn.Sequential:
    """torchvision's ``vgg19().features`` layer for layer (same indices, hence same state-dict keys)."""
    layers: list[nn.Module] = []
    prev = 3
    for item in _VGG19_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(prev, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            prev = int(item)
    return nn.Sequential(*layers[:num_layers])


def resolve_weights(weights: str | os.PathLike[str] | None) -> Path | None:
    """The weight file to load, None for 'untrained', or a DependencyError saying exactly what to do."""
    if str(weights) == UNTRAINED:
        return None
    if weights is None or str(weights) == AUTO:
        path = expected_weights_path()
        if not path.is_file():
            raise DependencyError(
                f"VGG19 weights for the perceptual loss not found: torchvision expects {path} "
                f"($TORCH_HOME/hub/checkpoints/{VGG19_FILE}; download {VGG19_URL} there) "
                "or pass --vgg-weights PATH"
            )
        return path
    path = Path(weights)
    if not path.is_file():
        raise DependencyError(
            f"--vgg-weights {path}: no such file (expected torchvision's {VGG19_FILE}, from {VGG19_URL})"
        )
    return path


def _load_features(features: nn.Sequential, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable VGG19 weight file ({first_line(exc)})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = features.state_dict()
    picked = {}
    for key in own:
        full = f"features.{key}"
        value = state.get(full, state.get(key)) if isinstance(state, dict) else None
        if not isinstance(value, torch.Tensor) or value.shape != own[key].shape:
            raise CheckpointError(f"{path}: not torchvision VGG19 weights (missing or mismatched {full!r})")
        picked[key] = value
    features.load_state_dict(picked)


class VGGFeatureExtractor(nn.Module):
    """Frozen VGG19 conv5_4 pre-activation features of ImageNet-normalised [0, 1] images."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, weights: str | os.PathLike[str] | None = AUTO, num_layers: int = CONV5_4_PRE_RELU) -> None:
        super().__init__()
        path = resolve_weights(weights)
        self.features = _vgg19_features(num_layers)
        if path is not None:
            _load_features(self.features, path)
        self.weights = str(path) if path is not None else UNTRAINED
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatureExtractor:
        """Always eval: the extractor is a fixed measuring instrument, not a trained layer."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)
