"""Fixtures for training tests: folders of small real photographs and tiny-run flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo


def write_png(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture
def train_dir(tmp_path: Path) -> Path:
    """Three 40-72 px crops of scikit-image photographs (tiny preset patches are 32 px)."""
    folder = tmp_path / "train"
    write_png(folder / "astronaut.png", photo("astronaut")[100:172, 150:222])
    write_png(folder / "sub" / "coffee.png", photo("coffee")[50:98, 100:160])
    write_png(folder / "rocket.jpg", photo("rocket")[200:240, 300:360])
    return folder


@pytest.fixture
def val_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "val"
    write_png(folder / "chelsea.png", photo("chelsea")[100:148, 150:198])
    return folder


@pytest.fixture
def tiny_flags(train_dir: Path, tmp_path: Path) -> dict[str, object]:
    return {"preset": "tiny", "data": str(train_dir), "output": str(tmp_path / "out")}
