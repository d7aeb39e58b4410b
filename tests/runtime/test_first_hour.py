"""esrgan-run without surprises: named backends that cannot run, single-file outputs, reruns with
another model or settings, and why inputs were skipped."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from esrgan.errors import BackendError, DependencyError
from esrgan.runtime.backends import ort_backend, registry
from esrgan.runtime.cli import main
from tests.runtime.conftest import gradient, save


def run(*args: object, cpu: bool = True):
    """The CLI in-process; ONNX Runtime CPU unless a test picks the backend."""
    extra = ["--backend", "onnxruntime-cpu", "--threads", "1"] if cpu and "--backend" not in args else []
    return CliRunner().invoke(main, [*map(str, args), *extra], catch_exceptions=False)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# ---- a backend asked for by name runs, or the run stops ------------------------------------------
@pytest.mark.parametrize("name", ["onnxruntime-cuda", "onnxruntime-trt"])
def test_gpu_backend_by_name_without_a_gpu_is_one_line_exit_2(tmp_path, nearest_onnx, monkeypatch, name):
    monkeypatch.setattr(ort_backend, "nvidia_gpu_visible", lambda: False)
    save(tmp_path / "in" / "a.png", gradient(4, 4))
    r = run(tmp_path / "in", tmp_path / "out", "--model", nearest_onnx, "--backend", name)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert error_lines(r.output) == [error_lines(r.output)[0]] and "no NVIDIA GPU" in r.output
    assert not (tmp_path / "out" / "a.png").exists()
    with pytest.raises(DependencyError):
        registry.load_backend(nearest_onnx, name)


def test_gpu_provider_that_falls_back_to_the_cpu_is_refused_by_name_and_skipped_by_auto(nearest_onnx, monkeypatch):
    """ONNX Runtime builds a CPU session when CUDA cannot load; asked for by name, that is an error."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDA provider")
    if ort_backend.nvidia_gpu_visible():
        pytest.skip("a GPU is visible: CUDA may really load here")
    monkeypatch.setattr(ort_backend, "nvidia_gpu_visible", lambda: True)  # pretend: the provider then falls back
    with pytest.raises(BackendError, match="cannot use CUDAExecutionProvider here and would run on CPU"):
        registry.load_backend(nearest_onnx, "onnxruntime-cuda", threads=1)
    monkeypatch.setattr(registry, "choose_cpu", lambda path, precision, threads=None: ("onnxruntime-cpu", {}, None))
    assert registry.load_backend(nearest_onnx, "auto", threads=1).info.name == "onnxruntime-cpu"


def test_auto_still_runs_on_the_cpu(tmp_path, nearest_onnx):
    save(tmp_path / "in" / "a.png", gradient(4, 4))
    r = run(tmp_path / "in", tmp_path / "out", "--model", nearest_onnx, "--backend", "auto", "-q")
    assert r.exit_code == 0 and (tmp_path / "out" / "a.png").exists()
