"""The ncnn backends: CPU and Vulkan parity with FP32 PyTorch, model files, ``auto``'s choice, errors.

The Vulkan tests run on whatever Vulkan device ncnn finds; in CI that is Mesa's lavapipe, a software
Vulkan driver on the CPU (Debian's mesa-vulkan-drivers, installed by .ci/run): correctness, not speed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from esrgan.errors import (
    BackendError,
    DependencyError,
    ModelError,
    OutOfMemoryError,
    UsageError,
    install_hint,
)
from esrgan.parity import HALF_MIN_PSNR_DB, Parity, compare, passes
from esrgan.runtime.backends import ncnn_backend, registry
from esrgan.runtime.backends.base import BackendInfo
from esrgan.runtime.backends.ncnn_backend import VulkanDevice
from tests.cpu_models import photo_batch

pytest.importorskip("ncnn")
pytest.importorskip("onnx")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def reference(tiny_model_files):
    """Two photograph crops and the FP32 PyTorch output of the tiny checkpoint on them."""
    import torch

    from esrgan.models.checkpoints import load_generator

    x = np.concatenate([photo_batch(size=24), photo_batch("coffee", size=24, y=150, x=250)])
    with torch.no_grad():
        ref = load_generator(tiny_model_files[0]).eval()(torch.from_numpy(x)).numpy()
    return x, ref


def _software_vulkan() -> VulkanDevice | None:
    devices = ncnn_backend.vulkan_devices()
    return devices[0] if devices else None


def test_ncnn_cpu_matches_pytorch_fp32_and_writes_the_model_once(tiny_onnx, reference, cache):
    x, ref = reference
    lines: list[str] = []
    backend = registry.load_backend(tiny_onnx, "ncnn-cpu", threads=1, say=lines.append)
    y = backend.run(x)
    par = compare(ref, y)
    assert y.shape == ref.shape == (2, 3, 96, 96)
    assert passes(par, "fp32") and (par.max_abs_err <= 1e-4 or par.psnr_db >= 100), par
    assert (backend.scale, backend.info.name, backend.info.precision, backend.info.device) == (4, "ncnn-cpu", "fp32", "cpu")
    assert len(lines) == 1 and "ncnn files" in lines[0]
    written = sorted(p.name for p in (cache / "ncnn").glob("*/*"))
    assert written == ["model.bin", "model.json", "model.param"]
    lines.clear()
    again = registry.load_backend(tiny_onnx, "ncnn-cpu", threads=1, say=lines.append)
    assert lines == [] and again.scale == 4  # from the cache: nothing written, nothing said
    np.testing.assert_array_equal(again.run(x), y)


def test_checkpoint_goes_through_its_onnx_export(tiny_model_files, reference, cache):
    ckpt, onnx_file = tiny_model_files
    x, ref = reference
    seen = []
    backend = registry.load_backend(ckpt, "ncnn-cpu", threads=1, say=lambda line: None,
                                    export_checkpoint=lambda p: seen.append(p) or onnx_file)
    assert seen == [ckpt] and passes(compare(ref, backend.run(x)), "fp32")


@pytest.mark.parametrize("damage", ["truncated spec", "no bin", "bin cut short"])
def test_a_damaged_cached_ncnn_folder_is_written_again(tiny_onnx, reference, cache, damage):
    from esrgan.runtime.ncnn_writer import ncnn_files

    x, ref = reference
    param, weights, spec = ncnn_files(tiny_onnx)
    if damage == "no bin":
        weights.unlink()
    elif damage == "bin cut short":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        spec_file = param.with_name("model.json")
        spec_file.write_text(spec_file.read_text()[:10])
    lines: list[str] = []
    assert ncnn_files(tiny_onnx, lines.append) == (param, weights, spec)
    assert len(lines) == 1 and lines[0].startswith("writing the model as ncnn files")
    backend = registry.load_backend(tiny_onnx, "ncnn-cpu", threads=1, say=lambda line: None)
    assert passes(compare(ref, backend.run(x)), "fp32")


def test_a_new_writer_version_removes_the_same_models_unused_copies_only(tiny_onnx, cache, monkeypatch, tmp_path):
    """Another install sharing the cache may still use an older copy: only one unused for a week goes."""
    import os
    import time

    from esrgan.runtime import ncnn_writer
    from tests.cpu_models import export_tiny_onnx

    param, _, _ = ncnn_writer.ncnn_files(tiny_onnx)
    other_model, _, _ = ncnn_writer.ncnn_files(export_tiny_onnx(tmp_path / "other.onnx", seed=1))
    digest = param.parent.name.rsplit("-", 1)[0]
    legacy = param.parent.with_name(digest)  # as written before folders carried the writer's version
    legacy.mkdir()
    (legacy / "model.bin").write_bytes(b"old")
    monkeypatch.setattr(ncnn_writer, "writer_version", lambda: "0123456789abcdef")
    newer, _, _ = ncnn_writer.ncnn_files(tiny_onnx)
    assert newer.parent != param.parent and newer.is_file()
    assert param.parent.is_dir() and legacy.is_dir()  # used just now: another install may be loading them
    week = time.time() - ncnn_writer.UNUSED_DAYS * 86400 - 60
    for path in (param.parent, param.parent / "model.json", legacy, other_model.parent, other_model.parent / "model.json"):
        os.utime(path, (week, week))
    assert ncnn_writer.ncnn_files(tiny_onnx)[0] == newer  # a cached hit removes them too
    assert not param.parent.exists() and not legacy.exists()
    assert other_model.is_file()  # another model's files stay
    assert (cache / "ncnn").is_dir() and sorted(p.name for p in (cache / "ncnn").iterdir()) == sorted(
        [newer.parent.name, other_model.parent.name])


def test_a_param_file_runs_as_given_with_its_own_blob_names_and_a_measured_scale(tiny_onnx, reference, cache, tmp_path):
    from esrgan.runtime.ncnn_writer import ncnn_files

    x, ref = reference
    param, weights, _ = ncnn_files(tiny_onnx)
    # the blob names realesrgan-ncnn-vulkan's models use, instead of the writer's
    text = param.read_text().replace(" in0", " data").replace(" out0", " output")
    (tmp_path / "x4.param").write_text(text)
    (tmp_path / "x4.bin").write_bytes(weights.read_bytes())
    lines: list[str] = []
    backend = registry.load_backend(tmp_path / "x4.param", "auto", threads=1, say=lines.append)
    assert backend.blobs == ("data", "output")
    assert backend.scale == 4  # no metadata: measured by the probe run
    if ncnn_backend.hardware_vulkan_device(0) is None:
        assert backend.info.name == "ncnn-cpu"
        assert lines == [  # ncnn's first run prepares the weights: 12 s of x4plus on 2 cores, announced
            "measuring x4.param's scale with one small run (ncnn prepares the model's weights first)",
            f"CPU backend: ncnn-cpu (an ncnn model, and no Vulkan GPU: {ncnn_backend.no_gpu_reason(0)})"]
    assert passes(compare(ref, backend.run(x)), backend.info.precision)


def test_vulkan_on_the_available_device_fp32_and_fp16(tiny_onnx, reference, cache):
    device = _software_vulkan()
    if device is None:
        pytest.skip("ncnn finds no Vulkan device (Linux: apt-get install mesa-vulkan-drivers libvulkan1)")
    x, ref = reference
    exact = registry.load_backend(tiny_onnx, "ncnn-vulkan", threads=1, precision="fp32")
    assert (exact.info.name, exact.info.device, exact.info.precision) == ("ncnn-vulkan", "vulkan:0", "fp32")
    par = compare(ref, exact.run(x))
    assert passes(par, "fp32") and par.psnr_db >= 100, par
    said: list[str] = []
    fast = registry.load_backend(tiny_onnx, "ncnn-vulkan", threads=1, say=said.append)
    assert fast.info.precision == "fp16"  # the default on Vulkan
    assert any("software Vulkan driver" in line for line in said) == device.software, said
    half = compare(ref, fast.run(x))
    assert half.psnr_db >= HALF_MIN_PSNR_DB, half
    assert half.max_abs_err > par.max_abs_err  # fp16 storage really is on
    exact.close()
    fast.close()


def test_auto_never_picks_a_software_vulkan_device(tiny_onnx, monkeypatch, cache):
    monkeypatch.setattr(ncnn_backend, "vulkan_devices", lambda: (VulkanDevice(0, "llvmpipe (LLVM 15)", 3),))
    backend = registry.load_backend(tiny_onnx, "auto", threads=1, say=lambda line: None)
    assert not backend.info.name.startswith("ncnn")


@pytest.mark.parametrize(("figure", "precision"), [(Parity(1e-3, 1e-4, 52.0, 0.0), "fp16"),
                                                  (Parity(0.9, 0.5, 12.0, 0.0), "fp32"),
                                                  (Parity(1.0, 1.0, 0.0, 0.25), "fp32")])
def test_auto_prefers_a_vulkan_gpu_and_falls_back_in_one_line(tiny_onnx, nearest_onnx, monkeypatch, cache,
                                                              figure, precision):
    from esrgan.runtime import vulkan_parity

    monkeypatch.setattr(ncnn_backend, "vulkan_devices", lambda: (VulkanDevice(0, "Radeon RX 7600", 0),))
    # the real device here may be a software one (or none): the measurement is the fixture's figure
    monkeypatch.setattr(vulkan_parity, "measure_fp16", lambda *a, **k: figure)
    built = []
    real_construct = registry._construct

    def spy(name, path, *args, **kw):
        built.append((name, kw.get("precision")))
        if name == "ncnn-vulkan":  # ... and the run is on the CPU
            kw.pop("precision", None)
            return real_construct("ncnn-cpu", path, *args, **kw)
        return real_construct(name, path, *args, **kw)

    monkeypatch.setattr(registry, "_construct", spy)
    lines: list[str] = []
    backend = registry.load_backend(tiny_onnx, "auto", threads=1, say=lines.append)
    assert built == [("ncnn-vulkan", "fp16"), ("ncnn-vulkan", "fp32")]  # both, to measure
    assert backend.info.name == "ncnn-cpu"
    said = [line for line in lines if line.startswith("GPU backend:")]
    assert len(said) == 1 and said[0].startswith(f"GPU backend: ncnn-vulkan {precision} on vulkan:0 Radeon RX 7600")
    assert ("below 45 dB, so fp32" in said[0]) == (precision == "fp32"), said
    assert ("non-finite" in said[0]) == bool(figure.nonfinite_fraction), said
    built.clear()
    lines.clear()
    registry.load_backend(tiny_onnx, "auto", threads=1, say=lines.append)  # a later start: the cached figure
    assert built == [("ncnn-vulkan", precision)]  # only the precision chosen is loaded
    assert [line for line in lines if line.startswith("GPU backend:")] == said
    built.clear()
    lines: list[str] = []
    backend = registry.load_backend(nearest_onnx, "auto", threads=1, say=lines.append)  # no esrgan.spec
    assert built[0][0] == "ncnn-vulkan" and not backend.info.name.startswith("ncnn")
    assert "ncnn-vulkan on vulkan:0 Radeon RX 7600 (discrete) cannot run nearest_x4.onnx" in lines[0]
    assert "\n" not in lines[0]


def test_named_backend_that_cannot_run_is_one_clear_error(tiny_onnx, nearest_onnx, monkeypatch, cache, tmp_path):
    param = tmp_path / "m.param"
    param.write_text("7767517\n")
    with pytest.raises(UsageError, match="ncnn model"):
        registry.load_backend(param, "onnxruntime-cpu")
    with pytest.raises(ModelError, match="m.bin"):
        registry.load_backend(param, "ncnn-cpu")
    with pytest.raises(ModelError, match="esrgan.spec"):
        registry.load_backend(nearest_onnx, "ncnn-cpu")
    with pytest.raises(UsageError, match="precision"):
        registry.load_backend(tiny_onnx, "ncnn-cpu", precision="int4")
    monkeypatch.setattr(ncnn_backend, "vulkan_devices", lambda: (VulkanDevice(0, "llvmpipe", 3),))
    with pytest.raises(UsageError, match="1 Vulkan device"):
        registry.load_backend(tiny_onnx, "ncnn-vulkan", device_id=3)
    monkeypatch.setattr(ncnn_backend, "vulkan_devices", lambda: ())
    with pytest.raises(DependencyError, match="no Vulkan device"):
        registry.load_backend(tiny_onnx, "ncnn-vulkan")
    monkeypatch.setitem(sys.modules, "ncnn", None)  # as if not installed
    with pytest.raises(DependencyError, match=re.escape(install_hint("ncnn"))):
        registry.load_backend(tiny_onnx, "ncnn-cpu")


def test_pixel_unshuffle_models_are_refused_by_the_writer(tmp_path, cache):
    from esrgan.models.spec import GeneratorSpec
    from tests.cpu_models import export_tiny_onnx

    spec = GeneratorSpec(scale=2, num_feat=8, num_block=1, num_grow_ch=4, pixel_unshuffle=True)
    model = export_tiny_onnx(tmp_path / "x2.onnx", spec)
    with pytest.raises(ModelError, match="pixel-unshuffle"):
        registry.load_backend(model, "ncnn-cpu")


def test_cli_named_ncnn_vulkan_without_a_device_exits_2_in_one_line(tiny_onnx, monkeypatch, cache, tmp_path):
    from PIL import Image

    from esrgan.runtime.cli import main

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in.png")
    monkeypatch.setattr(ncnn_backend, "vulkan_devices", lambda: ())
    result = CliRunner().invoke(main, [str(tmp_path / "in.png"), str(tmp_path / "out"), "--model", str(tiny_onnx),
                                       "--backend", "ncnn-vulkan"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no Vulkan device" in lines[0], result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_ncnn_backend_is_torch_free(tiny_onnx, tmp_path):
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from esrgan.runtime.backends.registry import load_backend\n"
        f"b = load_backend({str(tiny_onnx)!r}, 'ncnn-cpu', threads=1)\n"
        "y = b.run(np.zeros((1, 3, 8, 8), np.float32))\n"
        "assert y.shape == (1, 3, 32, 32), y.shape\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "ESRGAN_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_real_software_device_is_typed_software():
    device = _software_vulkan()
    if device is None:
        pytest.skip("ncnn finds no Vulkan device (Linux: apt-get install mesa-vulkan-drivers libvulkan1)")
    if not any(k in device.name.lower() for k in ("llvmpipe", "lavapipe", "swiftshader")):
        pytest.skip(f"the Vulkan device here is {device.describe()}, not a software one")
    assert device.software and ncnn_backend.hardware_vulkan_device(0) is None


def test_an_allocation_failure_is_out_of_memory_so_the_tiler_retries_smaller():
    class Extractor:
        def __init__(self, ret):
            self.ret = ret

        def input(self, name, mat):
            pass

        def extract(self, name):
            return self.ret, None

    backend = object.__new__(ncnn_backend.NcnnBackend)
    backend._ncnn = __import__("ncnn")
    backend.blobs = ("in0", "out0")
    backend.info = BackendInfo(name="ncnn-vulkan", precision="fp16", device="vulkan:0")
    x = np.zeros((1, 3, 8, 8), np.float32)
    for ret, error in ((ncnn_backend.NCNN_ALLOCATION_FAILED, OutOfMemoryError), (-1, BackendError)):
        backend.net = type("Net", (), {"create_extractor": lambda self, r=ret: Extractor(r)})()
        with pytest.raises(error) as caught:
            backend.run(x)
        assert (error is OutOfMemoryError) == isinstance(caught.value, OutOfMemoryError)


def test_vulkan_fp16_parity_is_measured_once_per_model_and_device(tiny_onnx, cache, monkeypatch):
    """On the device ncnn finds (lavapipe in CI): fp16 against fp32 on the photograph and the card,
    cached; a later start reads the figure back without running either."""
    from esrgan.runtime import vulkan_parity

    device = _software_vulkan()
    if device is None:
        pytest.skip("ncnn finds no Vulkan device (Linux: apt-get install mesa-vulkan-drivers libvulkan1)")
    lines: list[str] = []
    loads: list[str] = []

    def construct(precision):
        loads.append(precision)
        return registry.load_backend(tiny_onnx, "ncnn-vulkan", threads=1, precision=precision)

    args = (construct, [tiny_onnx], device.describe(), "test")
    backend, precision, why = vulkan_parity.vulkan_backend(*args, say=lines.append)
    assert precision == "fp16" and backend.info.precision == "fp16" and loads == ["fp16", "fp32"]
    assert why.startswith("measured fp16 parity"), why
    assert len(lines) == 1 and "once; cached" in lines[0]
    measured = float(why.split()[3])
    assert HALF_MIN_PSNR_DB <= measured < 200  # fp16 really ran: not bit-identical to fp32
    backend.close()
    monkeypatch.setattr(vulkan_parity, "measure_fp16", None)  # a second start must not measure
    again, *verdict = vulkan_parity.vulkan_backend(*args, say=lines.append)
    assert verdict == [precision, why] and loads == ["fp16", "fp32", "fp16"] and len(lines) == 1
    again.close()
    assert (vulkan_parity.parity_record([tiny_onnx], "vulkan:0 another GPU", "test")
            != vulkan_parity.parity_record([tiny_onnx], device.describe(), "test"))


def test_a_damaged_vulkan_figure_is_measured_again(tiny_onnx, cache, monkeypatch):
    """A cached fp16 figure that is no number is measured again and overwritten, not a traceback."""
    from esrgan.runtime import vulkan_parity

    class Loaded:
        def __init__(self, precision):
            self.precision = precision

        def close(self):
            pass

    record = vulkan_parity.parity_record([tiny_onnx], "vulkan:0 a GPU", "test")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"max_abs_err": 0.1, "mean_abs_err": 0.01, "psnr_db": "50", "nonfinite_fraction": 0}))
    measured = Parity(0.01, 0.001, 52.0, 0.0)
    monkeypatch.setattr(vulkan_parity, "measure_fp16", lambda fp16, fp32: measured)
    backend, precision, why = vulkan_parity.vulkan_backend(Loaded, [tiny_onnx], "vulkan:0 a GPU", "test")
    assert precision == backend.precision == "fp16" and "52.0 dB" in why
    assert Parity.from_dict(json.loads(record.read_text())) == measured


def test_auto_on_a_vulkan_gpu_with_an_unwritable_cache_falls_back_to_the_cpu(tiny_onnx, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "a-file"))
    monkeypatch.setattr(ncnn_backend, "vulkan_devices", lambda: (VulkanDevice(0, "Radeon RX 7600", 0),))
    lines: list[str] = []
    backend = registry.load_backend(tiny_onnx, "auto", threads=1, say=lines.append)
    assert not backend.info.name.startswith("ncnn"), lines
    assert any("cannot run" in line and "ESRGAN_CACHE_DIR" in line for line in lines), lines
    backend.close()


def test_the_reason_auto_gives_for_running_an_ncnn_model_on_the_cpu(monkeypatch):
    monkeypatch.setattr(ncnn_backend, "vulkan_devices", lambda: ())
    assert ncnn_backend.no_gpu_reason(0) == "ncnn finds no Vulkan device"
    monkeypatch.setattr(ncnn_backend, "vulkan_devices", lambda: (VulkanDevice(0, "llvmpipe (LLVM 15)", 3),))
    assert ncnn_backend.no_gpu_reason(0) == "vulkan:0 llvmpipe (LLVM 15) is a software driver, slower than the CPU"
    assert "--device-id 2 is not one of ncnn's 1 Vulkan device(s)" == ncnn_backend.no_gpu_reason(2)


def test_a_vulkan_figure_the_cache_cannot_keep_is_said_once_up_front(tiny_onnx, tmp_path, monkeypatch):
    from esrgan.runtime import vulkan_parity

    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "a-file"))
    monkeypatch.setattr(vulkan_parity, "measure_fp16", lambda fp16, fp32: Parity(1e-3, 1e-4, 52.0, 0.0))
    monkeypatch.setattr(vulkan_parity, "keep_record", lambda *a: pytest.fail("wrote into a cache it cannot write"))
    closed: list[str] = []

    class Stub:
        def __init__(self, precision):
            self.precision = precision

        def close(self):
            closed.append(self.precision)

    lines: list[str] = []
    backend, precision, _ = vulkan_parity.vulkan_backend(Stub, [tiny_onnx], "vulkan:0 Radeon", "test", say=lines.append)
    assert (backend.precision, precision, closed) == ("fp16", "fp16", ["fp32"])
    assert len(lines) == 1 and "not kept: cannot write into the esrgan cache" in lines[0], lines


def test_fp16_on_a_cpu_is_offered_only_where_ncnn_computes_in_it(tiny_onnx, reference, cache, monkeypatch, tmp_path):
    """On a CPU without ARM's half-precision arithmetic ncnn's fp16 options give FP32's output bit for
    bit: asked for fp16 there, one line (before anything is written), never a run labelled fp16."""
    import ncnn

    from esrgan.runtime.cli import main

    x, _ = reference
    monkeypatch.setattr(ncnn, "cpu_support_arm_asimdhp", lambda: 0, raising=False)
    with pytest.raises(UsageError, match="only on ARM CPUs"):
        ncnn_backend.NcnnBackend(tiny_onnx, threads=1, precision="fp16")
    assert not (cache / "ncnn").exists()
    (tmp_path / "in").mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    result = CliRunner().invoke(main, [str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(tiny_onnx),
                                       "--backend", "ncnn-cpu", "--precision", "fp16"])
    assert result.exit_code == 2 and "only on ARM CPUs" in result.output and len(result.output.splitlines()) == 1
    defaults = ncnn_backend.NcnnBackend(tiny_onnx, threads=1, precision=ncnn_backend.NCNN_DEFAULTS)
    assert defaults.info.precision == "fp32"
    fp32 = ncnn_backend.NcnnBackend(tiny_onnx, threads=1, precision="fp32").run(x)
    np.testing.assert_array_equal(defaults.run(x), fp32)

    monkeypatch.setattr(ncnn, "cpu_support_arm_asimdhp", lambda: 1)  # as on an ARMv8.2 CPU
    assert ncnn_backend.NcnnBackend(tiny_onnx, threads=1, precision="fp16").info.precision == "fp16"
    assert ncnn_backend.NcnnBackend(tiny_onnx, threads=1, precision=ncnn_backend.NCNN_DEFAULTS).info.precision == "fp16"
