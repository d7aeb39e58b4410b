"""The CPU runtime modules (and choosing a CPU path on a real model) never import torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cpu_models import export_tiny_onnx


def test_cpu_modules_and_selection_do_not_import_torch(tmp_path):
    pytest.importorskip("openvino")
    model = export_tiny_onnx(tmp_path / "tiny.onnx")
    code = (
        "import sys\n"
        "import esrgan.runtime.cpu_features, esrgan.runtime.cpu_parity\n"
        "import esrgan.runtime.backends.openvino_backend, esrgan.runtime.backends.openvino_split\n"
        "from esrgan.runtime.cpu_parity import select_cpu_backend\n"
        "from esrgan.runtime.backends.openvino_backend import OpenVinoBackend\n"
        f"c = select_cpu_backend({str(model)!r}, 'fp32', ['openvino', 'onnxruntime-cpu'], cache_dir={str(tmp_path)!r}, threads=1)\n"
        f"OpenVinoBackend({str(model)!r}, threads=1, cache_dir={str(tmp_path)!r}, **c.backend_options())\n"
        "print(c.describe())\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("CPU backend: openvino")
