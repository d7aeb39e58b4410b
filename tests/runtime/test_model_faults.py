"""Models that are broken or foreign: nothing wrong is written, errors are one line, foreign models run.

ONNX Runtime and torch here; the same cases on OpenVINO are in test_openvino_backend.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from esrgan.errors import ModelError, UsageError
from esrgan.runtime.cli import main
from tests.runtime.conftest import gradient, save
from tests.runtime.onnx_graphs import (
    broken_model,
    depth_to_space_model,
    empty_model,
    fixed_size_model,
    resize_model,
)

ORT = ["--backend", "onnxruntime-cpu", "--threads", "1"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def errors(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("build", [resize_model, depth_to_space_model])
def test_a_model_without_metadata_runs_with_its_scale_measured(tmp_path, build):
    model = build(tmp_path / "foreign.onnx")
    img = gradient(10, 13)
    save(tmp_path / "in" / "a.png", img)
    r = run(tmp_path / "in", tmp_path / "out", "--model", model, *ORT, "--tile", "0")
    assert r.exit_code == 0, r.output
    assert "x2" in r.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")),
                                  img.repeat(2, 0).repeat(2, 1))


@pytest.mark.parametrize("kind", ["nan", "constant"])
def test_nan_or_constant_output_fails_the_image_and_writes_nothing(tmp_path, kind):
    model = broken_model(tmp_path / f"{kind}.onnx", kind)
    save(tmp_path / "in" / "a.png", gradient(12, 12))
    save(tmp_path / "in" / "b.png", gradient(40, 40))  # several tiles
    for _ in range(2):  # a rerun fails again: nothing was written that it could skip as complete
        r = run(tmp_path / "in", tmp_path / "out", "--model", model, *ORT, "--tile", "16", "--tile-pad", "4")
        assert r.exit_code == 1, r.output
        assert len(errors(r)) == 2 and all(("NaN" if kind == "nan" else "constant") in e for e in errors(r))
        assert "0 written, 0 skipped, 2 failed" in r.output
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_constant_input_may_give_constant_output(tmp_path):
    from esrgan.runtime.upscaler import Upscaler

    with Upscaler(resize_model(tmp_path / "m.onnx"), "onnxruntime-cpu", tile=0, say=None) as up:
        flat = up.upscale(np.full((8, 8, 3), 77, np.uint8))
    assert (flat == 77).all()


def test_overflowing_weights_on_the_torch_backend_fail_the_image(tmp_path):
    import torch

    from esrgan.models.build import build_generator
    from esrgan.models.checkpoints import save_generator
    from esrgan.models.spec import GeneratorSpec

    model = build_generator(GeneratorSpec(scale=4, num_feat=8, num_block=1, num_grow_ch=4))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1e30)  # finite weights, infinite activations
    ckpt = save_generator(model, tmp_path / "huge.safetensors")
    save(tmp_path / "in" / "a.png", gradient(8, 8))
    r = run(tmp_path / "in", tmp_path / "out", "--model", ckpt, "--backend", "torch")
    assert r.exit_code == 1 and "NaN or infinite" in errors(r)[0], r.output
    assert not (tmp_path / "out" / "a.png").exists()


@pytest.mark.parametrize("backend", ["torch", "onnxruntime-cpu"])
def test_nan_checkpoint_is_refused_at_load_naming_the_file(tmp_path, backend, monkeypatch):
    import torch

    from esrgan.models.build import build_generator
    from esrgan.models.checkpoints import save_generator
    from esrgan.models.spec import GeneratorSpec

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    model = build_generator(GeneratorSpec(scale=4, num_feat=8, num_block=1, num_grow_ch=4))
    with torch.no_grad():
        model.conv_first.weight[0, 0, 0, 0] = float("nan")
    ckpt = save_generator(model, tmp_path / "nan.safetensors")
    save(tmp_path / "in" / "a.png", gradient(8, 8))
    r = run(tmp_path / "in", tmp_path / "out", "--model", ckpt, "--backend", backend)
    assert r.exit_code == 2 and len(errors(r)) == 1, r.output
    assert str(ckpt) in errors(r)[0] and "conv_first.weight" in errors(r)[0] and ".export-" not in r.output


@pytest.mark.parametrize("props", [
    {"esrgan.spec": '{"num_feat": null}'}, {"esrgan.spec": "[1]"}, {"esrgan.spec": "{oops"},
    {"esrgan.scale": "four"}, {"esrgan.scale": "0"}, {"esrgan.scale": "2", "esrgan.spec": json.dumps({"scale": 4})},
    {"esrgan.scale": "2", "esrgan.precision": "fp64"},
])
def test_malformed_metadata_is_one_line_exit_2(tmp_path, props):
    model = resize_model(tmp_path / "m.onnx", props=props)
    save(tmp_path / "in" / "a.png", gradient(8, 8))
    r = run(tmp_path / "in", tmp_path / "out", "--model", model, *ORT)
    assert r.exit_code == 2 and len(errors(r)) == 1 and str(model) in errors(r)[0], r.output


def test_empty_graph_and_non_upscaling_graph_are_one_line(tmp_path):
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    with pytest.raises(ModelError) as err:
        OnnxRuntimeBackend(empty_model(tmp_path / "empty.onnx"))
    assert "\n" not in str(err.value)
    from onnx import helper

    identity = tmp_path / "identity.onnx"
    from tests.runtime.onnx_graphs import _save

    _save([helper.make_node("Identity", ["input"], ["output"])], identity)
    assert OnnxRuntimeBackend(identity).scale == 1  # x1 models (denoisers) are fine
    shrink = tmp_path / "shrink.onnx"
    _save([helper.make_node("AveragePool", ["input"], ["output"], kernel_shape=[2, 2], strides=[2, 2])], shrink)
    with pytest.raises(ModelError, match="not an integer upscale"):
        OnnxRuntimeBackend(shrink)


@pytest.mark.parametrize("backend", [["--backend", "auto"], ORT])
def test_a_missing_external_data_file_is_one_line_before_any_engine_runs(tmp_path, backend):
    """Moved without its .data file, a model's load failed in each engine's words (several lines), after
    auto's BF16 measurement had started."""
    import onnx

    model = tmp_path / "ext.onnx"
    onnx.save_model(onnx.load(depth_to_space_model(tmp_path / "m.onnx")), model, save_as_external_data=True,
                    location="ext.onnx.data", size_threshold=0)
    save(tmp_path / "in" / "a.png", gradient(9, 11))
    data = tmp_path / "ext.onnx.data"
    data.rename(tmp_path / "elsewhere")
    for state, make in (("missing", lambda: None), ("not a regular file", data.mkdir)):
        make()
        result = run(tmp_path / "in", tmp_path / "out", "--model", model, *backend)
        assert result.exit_code == 2 and result.output.splitlines() == [
            f"error: {model}: its weights are kept in ext.onnx.data, which is {state} (it must lie beside the "
            ".onnx file, under that name)"]
    data.rmdir()
    (tmp_path / "elsewhere").rename(data)
    assert run(tmp_path / "in", tmp_path / "out", "--model", model, *ORT).exit_code == 0


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "0", "-2", "1e999", "1e-300", "100000", "16.5"])
def test_outscale_is_refused_when_parsing(tmp_path, value):
    r = run(tmp_path / "missing-input", tmp_path / "out", "--model", tmp_path / "missing.onnx", "--outscale", value)
    assert r.exit_code == 2 and "--outscale" in r.output and "missing" not in r.output


def test_outscale_is_checked_by_the_python_api_too(tmp_path):
    from esrgan.runtime.pipeline import RunOptions
    from esrgan.runtime.upscaler import Upscaler

    with pytest.raises(UsageError):
        RunOptions(outscale=float("inf"))
    with Upscaler(resize_model(tmp_path / "m.onnx"), "onnxruntime-cpu", say=None) as up:
        with pytest.raises(UsageError):
            up.upscale(gradient(8, 8), outscale=float("nan"))
        assert up.upscale(gradient(8, 8), outscale=3).shape == (24, 24, 3)


def test_failed_export_on_the_fly_is_a_model_error_without_a_deleted_folder(tmp_path, monkeypatch):
    import torch

    from esrgan.models.build import build_generator
    from esrgan.models.checkpoints import save_generator
    from esrgan.models.spec import GeneratorSpec

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    model = build_generator(GeneratorSpec(scale=4, num_feat=8, num_block=1, num_grow_ch=4))
    with torch.no_grad():  # finite but huge weights: FP32 ONNX and PyTorch overflow differently
        for p in model.parameters():
            p.mul_(1e6)
    ckpt = save_generator(model, tmp_path / "huge.safetensors")
    save(tmp_path / "in" / "a.png", gradient(8, 8))
    r = run(tmp_path / "in", tmp_path / "out", "--model", ckpt, *ORT)
    assert r.exit_code == 2 and len(errors(r)) == 1, r.output
    assert str(ckpt) in errors(r)[0] and "does not match PyTorch" in errors(r)[0]
    assert ".export-" not in r.output and "files kept" not in r.output
    assert not list((tmp_path / "cache" / "onnx").iterdir())


def test_checkpoint_export_tries_torchscript_then_dynamo(tmp_path, monkeypatch):
    """The fast exporter first; a file that fails verification goes to the next exporter, and the line
    saying so does not point at the temporary folder about to be deleted."""
    import esrgan.export.pipeline as export_pipeline
    from esrgan.errors import VerificationError
    from esrgan.runtime import model_source

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"stand-in checkpoint")
    tried = []

    class Result:
        def __init__(self, onnx):
            self.onnx_fp32 = onnx

    first_failure = [VerificationError("model.onnx [fp32, cpu]: max abs err 0.3: FAILED", kept=tmp_path)]

    def fake_export(src, folder, *, exporter, **kw):
        tried.append(exporter)
        if exporter == "torchscript":
            raise first_failure[0]
        return Result(resize_model(folder / "model.onnx"))

    monkeypatch.setattr(export_pipeline, "export_artifacts", fake_export)
    lines: list[str] = []
    assert model_source.checkpoint_to_onnx(ckpt, say=lines.append).is_file()
    assert tried == ["torchscript", "dynamo"] == list(model_source.RUNTIME_EXPORTERS)
    said = "\n".join(lines)
    assert "torchscript exporter's file is not usable (model.onnx [fp32, cpu]: max abs err 0.3: FAILED)" in said
    assert ".export-" not in said

    # ONNX Runtime failing on the traced file during verification (spandrel's DITN) falls back the same way
    from esrgan.errors import BackendError

    for target in (tmp_path / "cache" / "onnx").glob("*.onnx"):
        target.unlink()
    first_failure[0] = BackendError("ONNX Runtime failed on a (1, 3, 40, 56) batch: Reshape")
    tried.clear()
    assert model_source.checkpoint_to_onnx(ckpt, say=lines.append).is_file() and tried == ["torchscript", "dynamo"]


def test_when_every_exporter_fails_one_line_gives_each_reason(tmp_path, monkeypatch):
    import esrgan.export.pipeline as export_pipeline
    from esrgan.runtime import model_source

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"stand-in checkpoint")

    def fake_export(src, folder, *, exporter, **kw):
        if exporter == "torchscript":  # the file's path lies in the temporary folder
            raise ModelError(f"{folder / 'model.onnx'}: the model has 2 input(s); expected 1")
        raise ModelError("SAFMN x2: the dynamo exporter fixed the input height 24; try --exporter torchscript")

    monkeypatch.setattr(export_pipeline, "export_artifacts", fake_export)
    lines: list[str] = []
    with pytest.raises(ModelError) as err:
        model_source.checkpoint_to_onnx(ckpt, say=lines.append)
    message = str(err.value)
    assert message.startswith(f"{ckpt}: no exporter could export it (torchscript: model.onnx: the model has 2")
    assert "dynamo: SAFMN x2: the dynamo exporter fixed the input height 24)" in message
    assert "--exporter" not in message and ".export-" not in message + "\n".join(lines)
    assert not list((tmp_path / "cache" / "onnx").glob("*.onnx"))


def test_a_checkpoint_exported_on_the_fly_uses_torchscript_and_matches_pytorch(tmp_path, monkeypatch):
    import torch

    from esrgan import metadata as meta
    from esrgan.models.build import build_generator
    from esrgan.models.checkpoints import save_generator
    from esrgan.models.spec import GeneratorSpec
    from esrgan.runtime import model_source
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = build_generator(GeneratorSpec(scale=4, num_feat=8, num_block=1, num_grow_ch=4)).eval()
    onnx_file = model_source.checkpoint_to_onnx(save_generator(model, tmp_path / "m.safetensors"), say=lambda _: None)
    assert meta.onnx_metadata(onnx_file)[meta.EXPORTER].startswith("torch.onnx torchscript")
    x = np.random.default_rng(0).random((1, 3, 19, 27), dtype=np.float32)  # not a size verification used
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.abs(OnnxRuntimeBackend(onnx_file, threads=1).run(x) - expected).max() <= 1e-4


def test_checkpoint_export_stages_under_a_unique_name(tmp_path, monkeypatch):
    """Concurrent first runs must not share a staging file: the old fixed name is blocked here."""
    import esrgan.export.pipeline as export_pipeline
    from esrgan.hashing import file_sha256
    from esrgan.runtime import model_source

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"stand-in checkpoint")

    class Result:
        def __init__(self, onnx):
            self.onnx_fp32 = onnx

    def fake_export(src, folder, **kw):
        return Result(resize_model(folder / "model.onnx"))

    monkeypatch.setattr(export_pipeline, "export_artifacts", fake_export)
    target = tmp_path / "cache" / "onnx" / f"{file_sha256(ckpt)}.onnx"
    (target.parent / f".{target.name}.tmp").mkdir(parents=True)  # what a fixed staging name would hit
    assert model_source.checkpoint_to_onnx(ckpt) == target and target.is_file()
    assert sorted(p.name for p in target.parent.iterdir() if p.is_file()) == [target.name, f"{target.name}.sha256"]


def test_a_cached_export_changed_after_it_was_written_is_exported_again(tmp_path, monkeypatch):
    """As when onnx2tf saved a fixed-shape version over the cached file it was given to convert."""
    import esrgan.export.pipeline as export_pipeline
    from esrgan import metadata as meta
    from esrgan.hashing import file_sha256
    from esrgan.runtime import model_source

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"stand-in checkpoint")
    exports: list[object] = []

    class Result:
        def __init__(self, onnx):
            self.onnx_fp32 = onnx

    def fake_export(src, folder, **kw):
        exports.append(folder)
        sources = json.dumps({"gan": file_sha256(src)})
        return Result(resize_model(folder / "model.onnx", props={meta.SOURCE_SHA256: sources}))

    monkeypatch.setattr(export_pipeline, "export_artifacts", fake_export)
    target = model_source.checkpoint_to_onnx(ckpt, say=lambda line: None)
    written = target.read_bytes()
    lines: list[str] = []
    assert model_source.checkpoint_to_onnx(ckpt, say=lines.append) == target and lines == [] and len(exports) == 1
    target.write_bytes(written[:-7] + b"changed")
    assert model_source.checkpoint_to_onnx(ckpt, say=lines.append) == target and len(exports) == 2
    assert target.read_bytes() == written and "changed after it was written" in lines[0]
    # a cached file from a version that kept no record, even one whose metadata still names this
    # checkpoint (in-place rewriters keep it): exported again, once, and recorded
    record = target.with_name(f"{target.name}.sha256")
    record.unlink()
    lines.clear()
    assert model_source.checkpoint_to_onnx(ckpt, say=lines.append) == target and len(exports) == 3
    assert "has no record of its sha256" in lines[0] and record.read_text() == file_sha256(target)
    assert model_source.checkpoint_to_onnx(ckpt, say=lines.append) == target and len(exports) == 3
    # the runtime alone cannot export: such a file is used as the version that wrote it did
    record.unlink()
    monkeypatch.setattr(model_source, "_can_export", lambda: False)
    lines.clear()
    assert model_source.checkpoint_to_onnx(ckpt, say=lines.append) == target and len(exports) == 3 and lines == []


class _FlatBackend:
    """Nearest x2, except that the first ``flat_calls`` batches come out as one grey value."""

    def __init__(self, flat_calls: int) -> None:
        from esrgan.runtime.backends.base import BackendInfo

        self.scale, self.in_channels, self.size_multiple = 2, 3, 1
        self.info = BackendInfo("fake", "fp32", "cpu")
        self.flat_calls = flat_calls

    def run(self, batch):
        out = batch.repeat(2, axis=2).repeat(2, axis=3)
        if self.flat_calls > 0:
            self.flat_calls -= 1
            out = np.full_like(out, 0.5)
        return out


@pytest.mark.parametrize("flat_calls,fails", [(100, True), (1, False)])
def test_constant_output_fails_an_image_only_when_every_tile_is_constant(flat_calls, fails):
    from esrgan.runtime.engine import TileEngine
    from esrgan.runtime.images import from_array

    done, failed = [], []
    engine = TileEngine(_FlatBackend(flat_calls), 16, 4, 1, on_done=done.append,
                        on_fail=lambda work, msg: failed.append(msg))
    engine.submit("a", from_array(gradient(40, 40)))
    assert (len(failed), len(done)) == ((1, 0) if fails else (0, 1))
    assert not failed or "constant" in failed[0]


@pytest.mark.parametrize("backend,content", [("onnxruntime-cpu", "empty"), ("openvino", "garbage")])
def test_native_library_logs_stay_out_of_a_load_error(tmp_path, backend, content):
    """C++ loggers write to fd 2 directly (CliRunner cannot see them): run the CLI as a process."""
    import os
    import subprocess
    import sys

    if backend == "openvino":
        pytest.importorskip("openvino")
    model = tmp_path / "m.onnx"
    if content == "empty":
        empty_model(model)
    else:
        model.write_bytes(b"\x08\x07garbage" * 50)
    save(tmp_path / "in" / "a.png", gradient(8, 8))
    env = {k: v for k, v in os.environ.items() if k != "ESRGAN_DEBUG"}
    code = "import sys; from esrgan.runtime.cli import main; sys.argv[0] = 'esrgan-run'; main()"
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(model),
                        "--backend", backend], capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert len(lines[0]) < 500


@pytest.mark.parametrize("backend", ["onnxruntime-cpu", "openvino"])
@pytest.mark.parametrize("tile_args", [[], ["--tile", "0"], ["--tile", "200", "--tile-pad", "40", "--batch", "4"]])
def test_a_fixed_input_model_runs_on_images_of_any_size(tmp_path, backend, tile_args):
    if backend == "openvino":
        pytest.importorskip("openvino")
    model = fixed_size_model(tmp_path / "fixed.onnx", (64, 64))
    sizes = {"a.png": (77, 81), "b.png": (10, 13), "c.png": (64, 64), "d.png": (150, 40)}
    for name, (h, w) in sizes.items():
        save(tmp_path / "in" / name, gradient(h, w))
    r = run(tmp_path / "in", tmp_path / "out", "--model", model, "--backend", backend, *tile_args)
    assert r.exit_code == 0, r.output
    assert "64x64 inputs" in r.output
    for name, (h, w) in sizes.items():
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / name)),
                                      gradient(h, w).repeat(2, 0).repeat(2, 1))


@pytest.mark.parametrize("size", [32, 96])
def test_auto_measures_a_fixed_input_model_at_its_own_size(tmp_path, size):
    """auto's one-time check runs its 64 px photograph and card as windows of the model's one input size."""
    pytest.importorskip("openvino")
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend
    from esrgan.runtime.cpu_parity import fitted_run, measure_cpu_paths, synthetic_card

    model = fixed_size_model(tmp_path / "fixed.onnx", (size, size))
    figures = measure_cpu_paths(model, bf16=False, cache_dir="")
    assert set(figures.seconds) == {"openvino:fp32"} and not figures.failed
    backend = OpenVinoBackend(model, "fp32", cache_dir="")
    card = synthetic_card()  # all of it is run, not its top-left corner: the nearest x2 model shows it
    np.testing.assert_array_equal(fitted_run(backend, card), card.repeat(2, 2).repeat(2, 3))
    backend.close()
    save(tmp_path / "in" / "a.png", gradient(50, 70))
    r = run(tmp_path / "in", tmp_path / "out", "--model", model, "--backend", "auto")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")),
                                  gradient(50, 70).repeat(2, 0).repeat(2, 1))


def test_a_non_square_fixed_input_model_is_refused_in_one_line(tmp_path):
    model = fixed_size_model(tmp_path / "fixed.onnx", (48, 64))
    save(tmp_path / "in" / "a.png", gradient(20, 20))
    r = run(tmp_path / "in", tmp_path / "out", "--model", model, *ORT)
    assert r.exit_code == 2 and len(errors(r)) == 1 and "48x64" in errors(r)[0], r.output


def _nearest_x2(path, in_shape, out_shape, outputs=1):
    """Nearest x2 with the given declared input/output shapes (and extra outputs after the image)."""
    from onnx import TensorProto, helper

    from tests.runtime.onnx_graphs import _resize, _save

    node, scales = _resize(2)
    nodes, extra, consts = [node], [], [scales]
    if isinstance(out_shape[1], int) and out_shape[1] < in_shape[1]:  # really returns fewer channels
        node.output[0] = "up"
        bounds = [helper.make_tensor(name, TensorProto.INT64, [1], [v])
                  for name, v in (("c0", 0), ("c1", out_shape[1]), ("axis", 1))]
        nodes.append(helper.make_node("Slice", ["up", "c0", "c1", "axis"], ["output"]))
        consts += bounds
    for k in range(1, outputs):
        nodes.append(helper.make_node("Identity", ["input"], [f"aux{k}"]))
        extra.append(helper.make_tensor_value_info(f"aux{k}", TensorProto.FLOAT, list(in_shape)))
    model = _save(nodes, path, consts, in_shape=in_shape, out_shape=out_shape)
    if extra:
        import onnx

        proto = onnx.load(str(model))
        proto.graph.output.extend(extra)
        onnx.save(proto, str(model))
    return model


BACKENDS = ["onnxruntime-cpu", "openvino", "auto"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_one_model_runs_with_any_batch(tmp_path, backend):
    """A file whose batch dimension is fixed at 1: --batch is lowered to 1 with one line, not every image failed."""
    if backend != "onnxruntime-cpu":
        pytest.importorskip("openvino")
    model = _nearest_x2(tmp_path / "b1.onnx", (1, 3, "h", "w"), (1, 3, "H", "W"))
    for name in ("a.png", "b.png"):
        save(tmp_path / "in" / name, gradient(30, 41))
    r = run(tmp_path / "in", tmp_path / "out", "--model", model, "--backend", backend, "--batch", "4", "--tile", "16")
    assert r.exit_code == 0, r.output
    assert "batches of at most 1: using batch 1" in r.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")),
                                  gradient(30, 41).repeat(2, 0).repeat(2, 1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("in_shape", "out_shape", "words"), [
    (("n", 1, "h", "w"), ("n", 1, "H", "W"), "takes 1-channel"),
    (("n", 4, "h", "w"), ("n", 4, "H", "W"), "takes 4-channel"),
    (("n", 3, "h", "w"), ("n", 1, "H", "W"), "returns 1-channel"),
    ((2, 3, "h", "w"), (2, 3, "H", "W"), "batches of exactly 2"),
])
def test_a_model_the_tiler_cannot_feed_is_refused_at_load_in_one_line(tmp_path, backend, in_shape, out_shape, words):
    """Not every image failed one by one (exit 1), nor auto's measurement failing on its own images."""
    if backend != "onnxruntime-cpu":
        pytest.importorskip("openvino")
    model = _nearest_x2(tmp_path / "odd.onnx", in_shape, out_shape)
    save(tmp_path / "in" / "a.png", gradient(20, 20))
    r = run(tmp_path / "in", tmp_path / "out", "--model", model, "--backend", backend)
    assert r.exit_code == 2, r.output
    assert len(errors(r)) == 1 and words in errors(r)[0] and "odd.onnx" in errors(r)[0], r.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("backend", ["onnxruntime-cpu", "openvino"])
def test_a_model_with_extra_outputs_runs_its_first(tmp_path, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    model = _nearest_x2(tmp_path / "two.onnx", ("n", 3, "h", "w"), ("n", 3, "H", "W"), outputs=2)
    save(tmp_path / "in" / "a.png", gradient(20, 23))
    r = run(tmp_path / "in", tmp_path / "out", "--model", model, "--backend", backend)
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")),
                                  gradient(20, 23).repeat(2, 0).repeat(2, 1))


@pytest.mark.parametrize("bf16", [True, False])
def test_auto_runs_on_onnxruntime_what_openvino_cannot_read(tmp_path, monkeypatch, bf16):
    """An operator OpenVINO has no conversion for (ai.onnx.ml's Scaler) fails auto's one-time measurement
    (BF16 CPUs) or OpenVINO's load (others): ONNX Runtime runs the file instead, said in one line."""
    pytest.importorskip("openvino")
    from onnx import helper

    import esrgan.runtime.cpu_parity as cp
    from esrgan.runtime.cpu_features import CpuFeatures
    from tests.runtime.onnx_graphs import _resize, _save

    flags = {"avx2", "avx512_bf16"} if bf16 else {"avx2"}
    monkeypatch.setattr(cp, "probe_cpu_features", lambda: CpuFeatures("test cpu", "x86_64", 2, frozenset(flags)))
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    node, scales = _resize(2, "up")
    scaler = helper.make_node("Scaler", ["up"], ["output"], domain="ai.onnx.ml", offset=[0.0], scale=[1.0])
    model = tmp_path / "ml.onnx"
    _save([node, scaler], model, [scales])
    import onnx

    proto = onnx.load(str(model))
    proto.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    onnx.save(proto, str(model))
    save(tmp_path / "in" / "a.png", gradient(20, 23))
    r = run(tmp_path / "in", tmp_path / "out", "--model", model)
    assert r.exit_code == 0, r.output
    assert "OpenVINO cannot run ml.onnx (" in r.output and "using ONNX Runtime on the CPU" in r.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")),
                                  gradient(20, 23).repeat(2, 0).repeat(2, 1))


def test_a_model_whose_input_is_not_an_image_batch_is_one_line_with_no_fallback(tmp_path):
    """No backend runs it, so auto does not announce ONNX Runtime after OpenVINO refused it."""
    pytest.importorskip("openvino")
    from onnx import helper

    from tests.runtime.onnx_graphs import _save

    model = _save([helper.make_node("Identity", ["input"], ["output"])], tmp_path / "rank3.onnx",
                  in_shape=("n", "h", "w"), out_shape=("n", "h", "w"))
    save(tmp_path / "in" / "a.png", gradient(8, 8))
    r = run(tmp_path / "in", tmp_path / "out", "--model", model)
    assert r.exit_code == 2 and len(errors(r)) == 1 and "NCHW" in errors(r)[0], r.output
    assert "using ONNX Runtime" not in r.output
