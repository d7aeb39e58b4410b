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


# ---- OUTPUT with an image suffix and one input file is that file ---------------------------------
@pytest.mark.parametrize(("name", "fmt"), [("r4.png", "PNG"), ("r4.JPG", "JPEG"), ("sub/r4.webp", "WEBP")])
def test_one_input_file_into_an_image_named_output_writes_that_file(tmp_path, nearest_onnx, name, fmt):
    from PIL import Image

    src = save(tmp_path / "chelsea.jpg", gradient(6, 5))
    out = tmp_path / name
    r = run(src, out, "--model", nearest_onnx, "-q")
    assert r.exit_code == 0, r.output
    assert out.is_file() and Image.open(out).format == fmt and Image.open(out).size == (20, 24)
    assert sorted(p.name for p in out.parent.iterdir() if p != src) == [out.name]  # nothing else written
    again = run(src, out, "--model", nearest_onnx, "-q")
    assert again.exit_code == 0 and "0 written, 1 skipped" in again.output


def test_the_python_api_treats_an_image_named_output_alike(tmp_path, nearest_onnx):
    from esrgan.runtime.upscaler import Upscaler

    src = save(tmp_path / "a.png", gradient(4, 4))
    with Upscaler(nearest_onnx, "onnxruntime-cpu", threads=1, say=None) as up:
        summary = up.upscale_folder(src, tmp_path / "a_x4.jpg", progress=False)
    assert summary.written == 1 and (tmp_path / "a_x4.jpg").is_file()


def test_image_named_output_refusals_are_one_line_exit_2(tmp_path, nearest_onnx):
    src = save(tmp_path / "in" / "a.png", gradient(4, 4))
    save(tmp_path / "in" / "b.png", gradient(4, 4))
    cases = [((tmp_path / "in", tmp_path / "r4.png"), "folder or a pattern"),
             ((str(tmp_path / "in" / "*.png"), tmp_path / "r4.png"), "folder or a pattern"),
             ((src, tmp_path / "r4.png", "--format", "jpg"), "disagree"),
             ((src, tmp_path / "r4.gif"), "cannot write .gif"),
             ((src, src), "is the input file")]
    for args, text in cases:
        r = run(*args, "--model", nearest_onnx)
        assert r.exit_code == 2 and text in r.output and len(error_lines(r.output)) == 1, (args, r.output)
    assert not (tmp_path / "r4.png").exists()


def test_a_folder_with_an_image_name_stays_a_folder(tmp_path, nearest_onnx):
    src = save(tmp_path / "a.png", gradient(4, 4))
    (tmp_path / "old.png").mkdir()
    assert run(src, tmp_path / "old.png", "--model", nearest_onnx, "-q").exit_code == 0
    assert (tmp_path / "old.png" / "a.png").is_file()
    (tmp_path / "notes.txt").write_text("x")
    r = run(src, tmp_path / "notes.txt", "--model", nearest_onnx)
    assert r.exit_code == 2 and "is a file" in r.output
