"""The OpenVINO backend on a tiny exported model: parity, BF16 on a real photograph, cache, errors,
and a process that survives its backends."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from esrgan.errors import DependencyError, ModelError, UsageError, install_hint
from esrgan.parity import compare, passes
from esrgan.runtime.cpu_features import CpuFeatures, probe_cpu_features
from tests.cpu_models import export_tiny_onnx, photo_batch

pytest.importorskip("openvino")
ROOT = Path(__file__).resolve().parents[2]
NO_BF16 = CpuFeatures("test cpu", "x86_64", 2, frozenset({"avx2"}))
WITH_BF16 = CpuFeatures("test cpu", "x86_64", 2, frozenset({"avx2", "avx512_bf16"}))


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return export_tiny_onnx(tmp_path_factory.mktemp("ov") / "tiny.onnx")


@pytest.fixture(scope="module")
def reference(tiny_onnx):
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    x = photo_batch(size=24)
    return x, OnnxRuntimeBackend(tiny_onnx, threads=1).run(x)


def _ov(path, cache, **kw):
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(path, threads=1, cache_dir=cache, **kw)


def test_fp32_matches_onnxruntime_and_reads_scale_from_metadata(tiny_onnx, reference, tmp_path):
    x, ref = reference
    backend = _ov(tiny_onnx, tmp_path, precision="fp32", mode="latency")
    out = backend.run(x)
    assert backend.scale == 4 and backend.in_channels == 3
    assert out.shape == (1, 3, 96, 96)
    assert passes(compare(ref, out), "fp32")
    assert backend.info.name == "openvino" and backend.info.precision == "fp32"


def test_throughput_mode_runs_tiles_in_flight_in_order(tiny_onnx, reference, tmp_path):
    x, ref = reference
    batch = np.concatenate([x, x[..., ::-1].copy(), 1.0 - x], axis=0)
    backend = _ov(tiny_onnx, tmp_path, precision="fp32", mode="throughput", streams=2)
    out = backend.run(batch)
    assert out.shape == (3, 3, 96, 96)
    assert passes(compare(ref, out[:1]), "fp32")
    single = backend.run(batch[2:3])  # one tile: the latency-compiled model
    assert np.abs(out[2:3] - single).max() <= 1e-4
    assert np.abs(out[0] - out[2]).max() > 1e-3  # outputs are not all the same tile


def test_auto_precision_follows_native_bf16(tiny_onnx, tmp_path):
    assert _ov(tiny_onnx, tmp_path, cpu_features=NO_BF16, mode="latency").info.precision == "fp32"
    assert _ov(tiny_onnx, tmp_path, cpu_features=WITH_BF16, mode="latency").info.precision == "bf16"


def test_bf16_parity_on_a_real_photograph(tiny_onnx, tmp_path):
    from esrgan.runtime.cpu_parity import measure_cpu_paths

    figures = measure_cpu_paths(tiny_onnx, cache_dir=tmp_path, threads=1)
    assert set(figures.parity) == {"openvino:bf16-fp32-head", "openvino:bf16-fp32-ends"}
    assert set(figures.seconds) == {"openvino:fp32", *figures.parity} and min(figures.seconds.values()) > 0
    for parity in figures.parity.values():
        assert passes(parity, "bf16")
        if probe_cpu_features().bf16_native:  # BF16 really ran: the output is not bit-identical to FP32
            assert parity.max_abs_err > 0.0


def test_the_measurement_says_each_step_and_caches_only_the_fp32_compiled_model(tiny_onnx, tmp_path):
    """A step every few seconds on the paper-size model, not half a minute of silence; and the BF16
    layouts, compiled only to be measured, do not fill the compiled-model cache."""
    from esrgan.runtime.cpu_parity import TIMED_RUNS, measure_cpu_paths

    lines: list[str] = []
    measure_cpu_paths(tiny_onnx, cache_dir=tmp_path, threads=1, progress=lines.append)
    assert [line.split(":")[0] for line in lines[:3]] == ["FP32", "BF16 (first conv FP32)",
                                                          "BF16 (first conv and tail FP32)"]
    assert lines[-1].endswith(f"round {TIMED_RUNS} of {TIMED_RUNS}") and len(lines) == 3 + TIMED_RUNS
    blobs = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(blobs) == 1, blobs  # FP32's compiled model alone


def test_bf16_parity_is_measured_once_then_read_from_the_cache(tiny_onnx, tmp_path, monkeypatch):
    import esrgan.runtime.cpu_parity as cp

    first = cp.select_cpu_backend(tiny_onnx, "fp32", ["openvino", "onnxruntime-cpu"], features=WITH_BF16,
                                  cache_dir=tmp_path, threads=1)
    # BF16 or FP32, whichever was measured faster on this machine (the tiny model's parity passes)
    assert first.backend == "openvino" and first.precision in ("bf16", "fp32")
    assert list((tmp_path / "parity").glob("*.json"))

    def boom(*a, **k):
        raise AssertionError("measured again instead of reading the cache")

    monkeypatch.setattr(cp, "measure_cpu_paths", boom)
    again = cp.select_cpu_backend(tiny_onnx, "fp32", ["openvino", "onnxruntime-cpu"], features=WITH_BF16,
                                  cache_dir=tmp_path, threads=1)
    assert again == first


@pytest.mark.parametrize("damage", ["55", None, [], {"psnr_db": 55.0}])
def test_a_damaged_cached_figure_is_measured_again(tiny_onnx, tmp_path, monkeypatch, damage):
    """A record whose figure is no number (hand-edited, another version) is measured again, not a traceback."""
    import esrgan.runtime.cpu_parity as cp

    args = (tiny_onnx, "fp32", ["openvino", "onnxruntime-cpu"])
    first = cp.select_cpu_backend(*args, features=WITH_BF16, cache_dir=tmp_path, threads=1)
    (record,) = (tmp_path / "parity").glob("*.json")
    payload = json.loads(record.read_text())
    key = next(iter(payload["figures"]))
    if isinstance(damage, dict):
        payload["figures"][key] = damage
    elif damage is None or isinstance(damage, str):
        payload["figures"][key]["psnr_db"] = damage
    else:
        payload["figures"] = damage
    record.write_text(json.dumps(payload))
    calls = []
    real = cp.measure_cpu_paths
    monkeypatch.setattr(cp, "measure_cpu_paths", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = cp.select_cpu_backend(*args, features=WITH_BF16, cache_dir=tmp_path, threads=1)
    assert calls == [1] and again.backend == first.backend
    assert cp.PathFigures.from_json(json.loads(record.read_text()))  # overwritten with a sound record


def test_a_reduced_precision_that_fails_here_is_dropped_and_fp32_still_runs(tiny_onnx, tmp_path, monkeypatch):
    """A BF16 or INT8 path that cannot compile or run on this machine costs that path, not the run."""
    import esrgan.runtime.backends.openvino_backend as ob
    import esrgan.runtime.cpu_parity as cp

    real = ob.OpenVinoBackend

    def picky(path, *, precision="auto", **kw):
        if precision == "bf16":
            raise RuntimeError("Exception from src/plugin.cpp:54:\n[CPU] node object is not initialized")
        return real(path, precision=precision, **kw)

    monkeypatch.setattr(ob, "OpenVinoBackend", picky)
    figures = cp.measure_cpu_paths(tiny_onnx, cache_dir=tmp_path, threads=1)
    assert set(figures.failed) == {"openvino:bf16-fp32-head", "openvino:bf16-fp32-ends"}
    assert figures.parity == {} and set(figures.seconds) == {"openvino:fp32"}
    choice = cp.select_cpu_backend(tiny_onnx, "fp32", ["openvino", "onnxruntime-cpu"], features=WITH_BF16,
                                   cache_dir=tmp_path, threads=1)
    assert choice.precision == "fp32" and "BF16 failed to run here" in choice.reason
    record = next((tmp_path / "parity").glob("*.json"))  # the failure is cached with the figures
    assert cp.PathFigures.from_json(json.loads(record.read_text())).failed == figures.failed

    def broken_fp32(path, *, precision="auto", **kw):
        raise RuntimeError("the model itself does not compile")

    monkeypatch.setattr(ob, "OpenVinoBackend", broken_fp32)
    with pytest.raises(RuntimeError, match="the model itself"):  # FP32's failure is the model's: raised
        cp.measure_cpu_paths(tiny_onnx, cache_dir=tmp_path, threads=1)


def test_a_path_that_fails_later_or_runs_out_of_memory_is_dropped_and_not_cached(tiny_onnx, tmp_path, monkeypatch):
    import esrgan.runtime.backends.openvino_backend as ob
    import esrgan.runtime.cpu_parity as cp
    from esrgan.errors import OutOfMemoryError

    real = ob.OpenVinoBackend

    class Flaky(real):
        """BF16 "head" runs out of memory on its first run; "ends" fails on its third (a timed run)."""

        def __init__(self, path, *, precision="auto", bf16_layout="head", **kw):
            super().__init__(path, precision=precision, bf16_layout=bf16_layout, **kw)
            self.calls, self.kind = 0, (precision, bf16_layout)

        def run(self, batch):
            self.calls += 1
            if self.kind == ("bf16", "head"):
                raise OutOfMemoryError("OpenVINO ran out of memory on a (1, 3, 64, 64) batch")
            if self.kind == ("bf16", "ends") and self.calls == 3:
                raise RuntimeError("[CPU] a kernel failed")
            return super().run(batch)

    monkeypatch.setattr(ob, "OpenVinoBackend", Flaky)
    figures = cp.measure_cpu_paths(tiny_onnx, cache_dir=tmp_path, threads=1)
    assert set(figures.failed) == {"openvino:bf16-fp32-head", "openvino:bf16-fp32-ends"} and figures.transient
    assert figures.parity == {} and set(figures.seconds) == {"openvino:fp32"}
    choice = cp.select_cpu_backend(tiny_onnx, "fp32", ["openvino"], features=WITH_BF16, cache_dir=tmp_path,
                                   threads=1)
    assert choice.precision == "fp32" and not list((tmp_path / "parity").glob("*.json"))  # measured again next time

    class Buggy(real):
        def run(self, batch):
            raise TypeError("a programming error is not a path that fails here")

    monkeypatch.setattr(ob, "OpenVinoBackend", Buggy)
    with pytest.raises(TypeError):
        cp.measure_cpu_paths(tiny_onnx, cache_dir=tmp_path, threads=1)


_ISA_CAPPED = """
import sys
from esrgan.runtime.cpu_features import CpuFeatures
from esrgan.runtime.cpu_parity import select_cpu_backend
bf16 = CpuFeatures("test cpu", "x86_64", 2, frozenset({"avx2", "avx512_bf16"}))
choice = select_cpu_backend(sys.argv[1], "fp32", ["openvino"], features=bf16, cache_dir=sys.argv[2], threads=1)
print(choice.describe())
"""


def test_auto_under_a_oneDNN_isa_cap_runs_what_compiles(tiny_onnx, tmp_path):
    """ONEDNN_MAX_CPU_ISA=AVX2 on a BF16 CPU: OpenVINO still lists BF16 but (2026.4) cannot compile it;
    auto must fall back to FP32 rather than stop. The cap is part of the cached figures' key."""
    import os
    import subprocess

    from esrgan.runtime.cpu_parity import parity_cache_file

    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-c", _ISA_CAPPED, str(tiny_onnx), str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.startswith("CPU backend: openvino ")
    capped = next((tmp_path / "parity").glob("*.json"))
    assert parity_cache_file(tiny_onnx, WITH_BF16, tmp_path) != capped  # uncapped runs measure afresh


def test_measured_figures_are_keyed_by_thread_count_and_measuring_code(tiny_onnx, tmp_path, monkeypatch):
    """Timed at --threads 1, the fastest path may not be the fastest at 8; a fix to the BF16 graph cut
    must not be hidden by figures measured before it."""
    from esrgan.runtime import cpu_parity
    from esrgan.runtime.backends import openvino_split

    key = cpu_parity.parity_cache_file(tiny_onnx, WITH_BF16, tmp_path)
    assert key == cpu_parity.parity_cache_file(tiny_onnx, WITH_BF16, tmp_path)  # stable from start to start
    assert key != cpu_parity.parity_cache_file(tiny_onnx, WITH_BF16, tmp_path, threads=1)
    monkeypatch.setattr(cpu_parity.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7, 8})
    assert key != cpu_parity.parity_cache_file(tiny_onnx, WITH_BF16, tmp_path)  # another share of the CPUs
    monkeypatch.undo()
    changed = tmp_path / "openvino_split.py"
    changed.write_bytes(Path(openvino_split.__file__).read_bytes() + b"\n# a fix\n")
    monkeypatch.setattr(openvino_split, "__file__", str(changed))
    assert key != cpu_parity.parity_cache_file(tiny_onnx, WITH_BF16, tmp_path)


@pytest.mark.parametrize(("precision", "layout"), [("fp32", "head"), ("bf16", "head"), ("bf16", "ends")])
def test_second_load_hits_the_compiled_model_cache(tiny_onnx, tmp_path, precision, layout):
    cache = tmp_path / "cache"
    first = _ov(tiny_onnx, cache, precision=precision, mode="latency", bf16_layout=layout)
    assert first.info.extra["loaded_from_cache"] == "false"
    blobs = sorted(cache.iterdir())
    assert blobs
    second = _ov(tiny_onnx, cache, precision=precision, mode="latency", bf16_layout=layout)
    assert second.info.extra["loaded_from_cache"] == "true"
    assert sorted(cache.iterdir()) == blobs  # nothing new written


def test_missing_openvino_is_one_clear_line(tiny_onnx, monkeypatch):
    from esrgan.runtime.backends.openvino_backend import OpenVinoBackend

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(DependencyError) as err:
        OpenVinoBackend(tiny_onnx)
    msg = str(err.value)
    assert "\n" not in msg and install_hint("openvino") in msg


def test_bad_arguments_and_files(tiny_onnx, tmp_path):
    with pytest.raises(UsageError):
        _ov(tiny_onnx, tmp_path, precision="fp8")
    with pytest.raises(ModelError):
        _ov(tmp_path / "nope.onnx", tmp_path)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        _ov(junk, tmp_path)


SHIPPED = Path(__file__).resolve().parents[2] / "esrgan" / "runtime" / "models" / "default_x4.onnx"


@pytest.mark.parametrize("layout", ["head", "ends"])
@pytest.mark.parametrize("which", ["tiny (torchscript export)", "shipped (dynamo export)"])
def test_split_model_chain_equals_the_whole_model_in_fp32(tiny_onnx, layout, which):
    from esrgan.runtime.backends.openvino_backend import openvino_core
    from esrgan.runtime.backends.openvino_split import split_for_bf16

    path = tiny_onnx if which.startswith("tiny") else SHIPPED
    core = openvino_core()
    stages = split_for_bf16(lambda: core.read_model(str(path)), layout)
    assert stages is not None
    assert [p for _, p in stages] == (["fp32", "bf16"] if layout == "head" else ["fp32", "bf16", "fp32"])
    # the FP32 head must include the first conv's bias (torchscript adds it through a Reshape)
    assert stages[0][0].get_results()[0].input_value(0).get_node().get_type_name() == "Add"
    x = photo_batch(size=20)
    whole = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ref = whole.create_infer_request().infer({0: x})[0]
    y = x
    for part, _ in stages:
        y = core.compile_model(part, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request().infer({0: y})[0]
    assert y.shape == ref.shape == (1, 3, 80, 80)
    assert np.abs(y - ref).max() <= 1e-5


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning")
@pytest.mark.parametrize("layout", ["head", "ends"])
def test_a_model_whose_output_reads_its_input_runs_whole(tmp_path, layout):
    """Real-ESRGAN's compact network adds the upsampled input to its last conv: no stage after the
    first may read the input, so such a model is not cut (and the backend runs it)."""
    import torch

    from esrgan.runtime.backends.openvino_backend import openvino_core
    from esrgan.runtime.backends.openvino_split import split_for_bf16

    class SkipFromInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.last = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 12, 3, padding=1)

        def forward(self, x):
            up = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            return torch.nn.functional.pixel_shuffle(self.last(torch.relu(self.first(x))), 2) + up

    path = tmp_path / "skip.onnx"
    torch.onnx.export(SkipFromInput().eval(), (torch.rand(1, 3, 8, 8),), str(path), dynamo=False,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h2", 3: "w2"}})
    core = openvino_core()
    assert split_for_bf16(lambda: core.read_model(str(path)), layout) is None
    backend = _ov(path, tmp_path / "cache", precision="bf16", bf16_layout=layout)
    assert backend.run(photo_batch(size=12)).shape == (1, 3, 24, 24)


def test_head_stage_is_the_first_conv_with_its_bias(tiny_onnx):
    import torch

    from esrgan.models.build import build_generator
    from esrgan.runtime.backends.openvino_backend import openvino_core
    from esrgan.runtime.backends.openvino_split import split_for_bf16
    from tests.cpu_models import TINY

    core = openvino_core()
    stages = split_for_bf16(lambda: core.read_model(str(tiny_onnx)), "head")
    assert stages is not None
    x = photo_batch(size=12)
    head = core.compile_model(stages[0][0], "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = head.create_infer_request().infer({0: x})[0]
    torch.manual_seed(0)  # export_tiny_onnx's seed: the same weights
    model = build_generator(TINY).eval()
    with torch.no_grad():
        want = model.conv_first(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= 1e-5


def test_bf16_layouts_keeping_layers_in_fp32_are_at_least_as_close_as_all_bf16(tiny_onnx, tmp_path):
    x = photo_batch("coffee", size=32, y=150, x=250)
    ref = _ov(tiny_onnx, tmp_path, precision="fp32", mode="latency").run(x)
    whole = _ov(tiny_onnx, tmp_path, precision="bf16", mode="latency", bf16_layout="all")
    assert whole.info.extra["bf16_layout"] == "all"
    p_whole = compare(ref, whole.run(x))
    for layout in ("head", "ends"):
        mixed = _ov(tiny_onnx, tmp_path, precision="bf16", mode="latency", bf16_layout=layout)
        assert mixed.info.extra["bf16_layout"] == layout
        p_mixed = compare(ref, mixed.run(x))
        assert passes(p_mixed, "bf16")
        if probe_cpu_features().bf16_native:
            assert p_mixed.psnr_db >= p_whole.psnr_db - 0.5
    assert _ov(tiny_onnx, tmp_path, precision="bf16", mode="latency").info.extra["bf16_layout"] == "head"
    with pytest.raises(UsageError):
        _ov(tiny_onnx, tmp_path, precision="bf16", bf16_layout="tail")


# ---- foreign and broken models (the same cases on ONNX Runtime are in test_model_faults.py) ----------


def _run_cli(tmp_path, model, *extra):
    from click.testing import CliRunner

    from esrgan.runtime.cli import main
    from tests.runtime.conftest import gradient, save

    img = gradient(10, 13)
    save(tmp_path / "in" / "a.png", img)
    args = [tmp_path / "in", tmp_path / "out", "--model", model, "--backend", "openvino", "--threads", "1", *extra]
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result, img, [line for line in result.output.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("build", ["resize_model", "depth_to_space_model"])
def test_a_model_without_metadata_runs_with_its_scale_measured(tmp_path, monkeypatch, build):
    from PIL import Image

    from tests.runtime import onnx_graphs

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    model = getattr(onnx_graphs, build)(tmp_path / "foreign.onnx")
    result, img, errors = _run_cli(tmp_path, model, "--tile", "0")
    assert result.exit_code == 0 and not errors, result.output
    out = np.asarray(Image.open(tmp_path / "out" / "a.png")).astype(int)
    assert out.shape == (20, 26, 3) and np.abs(out - img.repeat(2, 0).repeat(2, 1)).max() <= 1


@pytest.mark.parametrize("kind", ["nan", "constant"])
def test_nan_or_constant_output_fails_the_image_and_writes_nothing(tmp_path, monkeypatch, kind):
    from tests.runtime.onnx_graphs import broken_model

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    result, _, errors = _run_cli(tmp_path, broken_model(tmp_path / f"{kind}.onnx", kind))
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert ("NaN" if kind == "nan" else "constant") in errors[0]
    assert not (tmp_path / "out" / "a.png").exists()


def test_malformed_spec_and_empty_graph_are_one_line(tmp_path, monkeypatch):
    from tests.runtime.onnx_graphs import empty_model, resize_model

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    bad_spec = resize_model(tmp_path / "spec.onnx", props={"esrgan.spec": '{"num_feat": [8]}'})
    for model in (bad_spec, empty_model(tmp_path / "empty.onnx")):
        result, _, errors = _run_cli(tmp_path, model)
        assert result.exit_code == 2 and len(errors) == 1 and str(model) in errors[0], result.output


def test_openvino_errors_keep_their_reason_not_the_location_line(tmp_path):
    from onnx import helper

    from esrgan.runtime.backends.openvino_backend import openvino_reason
    from tests.runtime.onnx_graphs import _save

    model = _save([helper.make_node("NoSuchOp", ["input"], ["output"])], tmp_path / "unknown_op.onnx")
    with pytest.raises(ModelError) as err:
        _ov(model, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "NoSuchOp" in msg and "Exception from" not in msg
    text = "Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'x' failed at src/a.cpp:9:\nthe reason\n"
    assert openvino_reason(RuntimeError(text)) == "the reason"
    assert openvino_reason(RuntimeError("")) == "RuntimeError"


@pytest.mark.parametrize("layout", ["head", "ends"])
def test_model_whose_output_reads_the_input_again_is_not_cut(tmp_path, layout):
    """Real-ESRGAN's compact model adds the upsampled input to its output: a stage after the first conv
    would still need the input, so the model runs whole (all BF16) instead of failing to compile."""
    import warnings

    import torch

    from esrgan import metadata as meta
    from esrgan.export.onnx_metadata import update_metadata
    from esrgan.runtime.backends.openvino_backend import openvino_core
    from esrgan.runtime.backends.openvino_split import split_for_bf16

    class GlobalResidual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.PReLU(8),
                                            torch.nn.Conv2d(8, 12, 3, padding=1), torch.nn.PixelShuffle(2))

        def forward(self, x):  # noqa: ANN001, ANN202
            return self.body(x) + torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    torch.manual_seed(0)
    model, path = GlobalResidual().eval(), tmp_path / "residual.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 3, 16, 16),), str(path), input_names=["input"], output_names=["output"],
                          opset_version=18, dynamo=False, dynamic_axes={"input": {2: "h", 3: "w"}})
    update_metadata(path, {meta.SCALE: "2"})
    core = openvino_core()
    assert split_for_bf16(lambda: core.read_model(str(path)), layout) is None
    backend = _ov(path, tmp_path, precision="bf16", mode="latency", bf16_layout=layout, cpu_features=WITH_BF16)
    assert backend.info.extra["bf16_layout"] == "all"
    x = photo_batch(size=16)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert passes(compare(want, backend.run(x)), "bf16")


# Two backends closed in the order they were made, then a signal with a Python handler: OpenVINO's CPU
# plugin swaps the thread's signal stack per Core, so with a Core per backend this left the stack
# unmapped and the signal killed the process (SIGSEGV, no traceback); Ctrl-C or a child process ending
# (torchrun, DataLoader workers) did the same in a real run.
_SIGNAL_AFTER_CLOSE = """
import gc, os, signal, sys
from esrgan.runtime.backends.openvino_backend import OpenVinoBackend
made = [OpenVinoBackend(sys.argv[1], precision="fp32", threads=1, cache_dir="") for _ in range(3)]
for backend in made:
    backend.close()
del made, backend
gc.collect()
seen = []
signal.signal(signal.SIGUSR1, lambda *_: seen.append(1))
os.kill(os.getpid(), signal.SIGUSR1)
print("signal handled", len(seen))
"""


def test_signals_are_handled_after_backends_close_in_any_order(tiny_onnx):
    import subprocess

    done = subprocess.run([sys.executable, "-c", _SIGNAL_AFTER_CLOSE, str(tiny_onnx)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-1500:]}"
    assert done.stdout.strip().endswith("signal handled 1")


def test_backends_share_one_core_and_keep_their_own_compiled_cache(tiny_onnx, tmp_path):
    a = _ov(tiny_onnx, tmp_path / "a", precision="fp32")
    b = _ov(tiny_onnx, tmp_path / "b", precision="fp32")
    assert a.core is b.core
    assert list((tmp_path / "a").iterdir()) and list((tmp_path / "b").iterdir())
    again = _ov(tiny_onnx, tmp_path / "b", precision="fp32")
    assert again.info.extra["loaded_from_cache"] == "true"
    assert not list(tmp_path.glob("*.blob"))  # no cache outside the folders asked for
