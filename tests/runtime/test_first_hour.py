"""esrgan-run without surprises: named backends that cannot run, single-file outputs, reruns with
another model or settings, and why inputs were skipped."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from esrgan.errors import BackendError, DependencyError
from esrgan.runtime.backends import ort_backend, registry
from esrgan.runtime.cli import main
from tests.runtime.conftest import gradient, loaded, save


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
    monkeypatch.setattr(registry, "choose_cpu", lambda path, precision, threads=None, say=None: ("onnxruntime-cpu", {}, None, path))
    assert registry.load_backend(nearest_onnx, "auto", threads=1).info.name == "onnxruntime-cpu"


def test_auto_still_runs_on_the_cpu(tmp_path, nearest_onnx):
    save(tmp_path / "in" / "a.png", gradient(4, 4))
    r = run(tmp_path / "in", tmp_path / "out", "--model", nearest_onnx, "--backend", "auto", "-q")
    assert r.exit_code == 0 and (tmp_path / "out" / "a.png").exists()


# ---- OUTPUT with an image suffix and one input file is that file ---------------------------------
@pytest.mark.parametrize(("name", "fmt"), [("r4.png", "PNG"), ("r4.JPG", "JPEG"), ("sub/r4.webp", "WEBP")])
def test_one_input_file_into_an_image_named_output_writes_that_file(tmp_path, nearest_onnx, name, fmt):

    src = save(tmp_path / "chelsea.jpg", gradient(6, 5))
    out = tmp_path / name
    r = run(src, out, "--model", nearest_onnx, "-q")
    assert r.exit_code == 0, r.output
    assert out.is_file() and loaded(out).format == fmt and loaded(out).size == (20, 24)
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


# ---- an output folder records the model and settings that wrote it -----------------------------
@pytest.fixture
def other_onnx(tmp_path):
    """Another x4 model file: the same pixels, but a different file."""
    import onnx

    from tests.runtime.conftest import write_nearest_onnx

    path = write_nearest_onnx(tmp_path / "other.onnx")
    model = onnx.load(str(path))
    model.doc_string = "another model"
    onnx.save(model, str(path))
    return path


def folder_of_four(tmp_path):
    src = tmp_path / "examples"
    for i in range(4):
        save(src / f"{i}.png", gradient(5 + i, 6))
    return src


def test_rerun_says_why_inputs_were_skipped(tmp_path, nearest_onnx):
    src, out = folder_of_four(tmp_path), tmp_path / "out"
    assert run(src, out, "--model", nearest_onnx).exit_code == 0
    r = run(src, out, "--model", nearest_onnx)
    assert r.exit_code == 0 and "0 written, 4 skipped (outputs exist; --overwrite to redo)" in r.output
    assert "0 skipped (" not in run(src, tmp_path / "fresh", "--model", nearest_onnx).output


@pytest.mark.parametrize(("change", "named"), [
    (("--model", "OTHER"), "model other.onnx, not nearest_x4.onnx"),
    (("--outscale", "2"), "scale 2, not 4"),
    (("--quality", "80"), "quality 80, not 95"),
])
def test_other_model_or_settings_refuse_to_mix_into_a_written_folder(tmp_path, nearest_onnx, other_onnx, change,
                                                                     named):
    src, out = folder_of_four(tmp_path), tmp_path / "out"
    save(src / "photo.jpg", gradient(5, 5))  # a JPEG input: --quality matters with --format same
    assert run(src, out, "--model", nearest_onnx).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    args = [other_onnx if a == "OTHER" else a for a in change]
    model = [] if "--model" in change else ["--model", nearest_onnx]
    r = run(src, out, *model, *args)
    assert r.exit_code == 2 and named in r.output and "--overwrite" in r.output
    assert len(error_lines(r.output)) == 1 and "Traceback" not in r.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written, nothing mixed
    r = run(src, out, *model, *args, "--overwrite")
    assert r.exit_code == 0 and "0 skipped" in r.output
    again = run(src, out, *model, *args)  # the folder now records the new settings
    assert again.exit_code == 0 and "0 written, 5 skipped" in again.output
    assert run(src, out, "--model", nearest_onnx).exit_code == 2


def test_another_model_is_refused_before_it_loads(tmp_path, nearest_onnx, other_onnx, monkeypatch):
    """Loading can take a minute (a checkpoint's export, auto's measurement): the record's model is
    checked first; scale and quality, which need the loaded model, after."""
    from esrgan.runtime import upscaler

    src, out = folder_of_four(tmp_path), tmp_path / "out"
    assert run(src, out, "--model", nearest_onnx).exit_code == 0
    monkeypatch.setattr(upscaler.Upscaler, "__init__", lambda *a, **k: pytest.fail("loaded the model"))
    r = run(src, out, "--model", other_onnx)
    assert r.exit_code == 2 and "model other.onnx, not nearest_x4.onnx" in r.output, r.output
    assert len(error_lines(r.output)) == 1


def test_a_record_from_before_external_data_was_digested_still_names_its_model(tmp_path):
    """Older records hold the .onnx file's own sha256 and no ``model_digest``: the same model is not
    refused after an upgrade, and another one still is."""
    import json

    import onnx

    from esrgan.hashing import file_sha256
    from esrgan.runtime.manifest import MANIFEST_NAME
    from tests.runtime.onnx_graphs import depth_to_space_model

    model = tmp_path / "m" / "model.onnx"
    model.parent.mkdir()
    d2s = depth_to_space_model(tmp_path / "d2s.onnx")
    onnx.save_model(onnx.load(str(d2s)), str(model), save_as_external_data=True,
                    location="model.onnx.data", size_threshold=0)
    src, out = folder_of_four(tmp_path), tmp_path / "out"
    assert run(src, out, "--model", model).exit_code == 0
    record = json.loads((out / MANIFEST_NAME).read_text())
    assert record.pop("model_digest") == "model_sha256" and record["model_sha256"] != file_sha256(model)
    (out / MANIFEST_NAME).write_text(json.dumps({**record, "model_sha256": file_sha256(model)}))
    next(out.glob("*.png")).unlink()
    r = run(src, out, "--model", model)
    assert r.exit_code == 0 and "1 written, 3 skipped" in r.output, r.output
    (out / MANIFEST_NAME).write_text(json.dumps(record))  # the whole model's digest, without model_digest
    next(out.glob("*.png")).unlink()
    assert run(src, out, "--model", model).exit_code == 0
    (out / MANIFEST_NAME).write_text(json.dumps({**record, "model_sha256": "0" * 64}))
    assert run(src, out, "--model", model).exit_code == 2


def test_tiling_and_backend_settings_do_not_refuse_a_rerun(tmp_path, nearest_onnx):
    """They change pixels only within the tile-parity bound: the folder's result is the same."""
    src, out = folder_of_four(tmp_path), tmp_path / "out"
    assert run(src, out, "--model", nearest_onnx).exit_code == 0
    r = run(src, out, "--model", nearest_onnx, "--tile", "16", "--tile-pad", "4", "--batch", "2")
    assert r.exit_code == 0 and "4 skipped" in r.output


def test_the_python_api_refuses_alike(tmp_path, nearest_onnx, other_onnx):
    from esrgan.errors import UsageError
    from esrgan.runtime.upscaler import Upscaler

    src, out = folder_of_four(tmp_path), tmp_path / "out"
    with Upscaler(nearest_onnx, "onnxruntime-cpu", threads=1, say=None) as up:
        assert up.upscale_folder(src, out, progress=False).written == 4
    with Upscaler(other_onnx, "onnxruntime-cpu", threads=1, say=None) as up:
        with pytest.raises(UsageError, match="model other.onnx"):
            up.upscale_folder(src, out, progress=False)
        assert up.upscale_folder(src, out, overwrite=True, progress=False).written == 4


def test_shards_with_the_same_settings_share_one_record(tmp_path, nearest_onnx):
    src, out = folder_of_four(tmp_path), tmp_path / "out"
    for i in range(2):
        assert run(src, out, "--model", nearest_onnx, "--shard", f"{i}/2", "-q").exit_code == 0
    assert len(list(out.glob("*.png"))) == 4
    r = run(src, out, "--model", nearest_onnx, "--shard", "0/2", "--outscale", "2")
    assert r.exit_code == 2 and "scale 2, not 4" in r.output


def test_another_format_writes_other_names_and_is_not_refused(tmp_path, nearest_onnx):
    src, out = folder_of_four(tmp_path), tmp_path / "out"
    assert run(src, out, "--model", nearest_onnx).exit_code == 0
    r = run(src, out, "--model", nearest_onnx, "--format", "webp")
    assert r.exit_code == 0 and "4 written, 0 skipped" in r.output
    assert len(list(out.glob("*.png"))) == len(list(out.glob("*.webp"))) == 4


def test_a_run_that_writes_nothing_records_nothing(tmp_path, nearest_onnx, other_onnx):
    from esrgan.runtime.manifest import MANIFEST_NAME

    src, out = tmp_path / "in", tmp_path / "out"
    (src / "broken.png").parent.mkdir()
    (src / "broken.png").write_bytes(b"not an image")
    assert run(src, out, "--model", nearest_onnx).exit_code == 1
    assert not (out / MANIFEST_NAME).exists()
    save(src / "good.png", gradient(4, 4))
    assert run(src, out, "--model", other_onnx).exit_code == 1  # the first model left no claim
    assert (out / "good.png").exists() and "other.onnx" in (out / MANIFEST_NAME).read_text()


def test_racing_writers_agree_when_settings_agree(tmp_path):
    """Processes starting at once (shards) see no record or a whole one: equal settings never conflict."""
    import threading

    from esrgan.errors import UsageError
    from esrgan.runtime.manifest import MANIFEST_NAME, FolderRecord, OutputSettings

    same = OutputSettings("m.onnx", "ab" * 32, 4.0, 95)
    other = OutputSettings("m.onnx", "ab" * 32, 4.0, 80)

    def claim(folder, settings, barrier, outcome):
        record = FolderRecord(folder, settings, overwrite=False)
        barrier.wait()
        try:
            record.write()
            outcome.append(settings.quality)
        except UsageError:
            outcome.append("refused")

    for trial in range(20):
        folder = tmp_path / f"out{trial}"
        barrier = threading.Barrier(8)
        outcome: list[object] = []
        threads = [threading.Thread(target=claim, args=(folder, same if i < 6 else other, barrier, outcome))
                   for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winner = 95 if '"quality": 95' in (folder / MANIFEST_NAME).read_text() else 80
        assert outcome.count(winner) == (6 if winner == 95 else 2)
        assert outcome.count("refused") == 8 - outcome.count(winner)
        assert [p.name for p in folder.iterdir()] == [MANIFEST_NAME]  # no temp file left
