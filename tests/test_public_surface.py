"""Each package's public names resolve, and importing the packages stays light.

The packages list their public names lazily (``esrgan.lazy``), so a typo or a moved module in a
table only shows when the name is used: this resolves every one. Importing the packages must load
no heavy library, so that the torch-free runtime and ``import esrgan`` stay fast and small.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ("esrgan", "esrgan.models", "esrgan.train", "esrgan.export", "esrgan.runtime", "esrgan.bench")
HEAVY = ("torch", "onnx", "openvino", "onnxruntime", "tensorrt", "skimage")


def test_importing_the_packages_loads_no_heavy_library():
    code = (
        f"import sys, {', '.join(PACKAGES)}\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", f"imported at package import: {done.stdout.strip()}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves(package):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    module = importlib.import_module(package)
    assert module.__all__, f"{package} has no public names"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018
