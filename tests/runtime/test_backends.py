"""Backend registry, ONNX Runtime provider checks, out-of-memory retry and the engine's failure paths."""

from __future__ import annotations

import numpy as np
import pytest

from esrgan.errors import BackendError, DependencyError, ModelError, OutOfMemoryError, UsageError
from esrgan.hashing import file_sha256
from esrgan.runtime import tiling
from esrgan.runtime.backends import ort_backend, registry
from esrgan.runtime.backends.base import Backend, BackendInfo
from esrgan.runtime.engine import TileEngine
from esrgan.runtime.images import from_array
from tests.runtime.conftest import gradient


def test_model_kind_and_backend_names():
    assert registry.model_kind("a/b.ONNX") == "onnx"
    assert registry.model_kind("m.engine") == "engine"
    assert registry.model_kind("m.safetensors") == registry.model_kind("m.pth") == "checkpoint"
    with pytest.raises(ModelError, match="unknown model type"):
        registry.model_kind("m.txt")
    with pytest.raises(UsageError):
        registry.backend_class("cuda-magic")
    assert set(registry.CHOICES) >= {"auto", "tensorrt", "onnxruntime-trt", "onnxruntime-cuda", "onnxruntime-cpu", "torch"}


def test_fallback_warning_only_when_the_requested_provider_is_not_running():
    assert ort_backend.fallback_warning("onnxruntime-cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]) is None
    line = ort_backend.fallback_warning("onnxruntime-cuda", ["CPUExecutionProvider"])
    assert line and "CUDAExecutionProvider" in line and "CPUExecutionProvider" in line and "\n" not in line
    assert ort_backend.fallback_warning("onnxruntime-cpu", ["CPUExecutionProvider"]) is None
    assert ort_backend.is_out_of_memory("CUDA failure 2: out of memory ; GPU=0")
    assert not ort_backend.is_out_of_memory("Invalid input shape")


def test_gpu_backend_without_gpu_provider_is_one_clear_error(nearest_onnx):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA")
    with pytest.raises(DependencyError, match="CUDAExecutionProvider"):
        registry.load_backend(nearest_onnx, "onnxruntime-cuda")


def test_auto_on_cpu_loads_a_cpu_backend_and_engine_needs_tensorrt(nearest_onnx, tmp_path):
    backend = registry.load_backend(nearest_onnx, "auto", threads=1, say=lambda line: None)
    assert backend.info.device == "cpu" and backend.scale == 4
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not really")
    with pytest.raises(UsageError, match="tensorrt"):
        registry.load_backend(engine, "onnxruntime-cpu")
    with pytest.raises((DependencyError, ModelError, BackendError)):
        registry.load_backend(engine, "auto")  # no TensorRT here: refused, not a traceback


def test_auto_on_cpu_says_the_cpu_choice(nearest_onnx, monkeypatch):
    seen = {}

    def fake_choose(path, precision, threads=None, say=None):
        seen["precision"] = precision
        return "onnxruntime-cpu", {}, "CPU backend: onnxruntime-cpu fp32 (test)", path

    monkeypatch.setattr(registry, "choose_cpu", fake_choose)
    lines = []
    registry.load_backend(nearest_onnx, "auto", say=lines.append)
    assert seen == {"precision": "fp32"} and lines == ["CPU backend: onnxruntime-cpu fp32 (test)"]


def test_checkpoint_is_exported_once_and_cached(tmp_path, tiny_model_files, monkeypatch):
    from esrgan.cache import cache_dir
    from esrgan.runtime import model_source

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    calls = []

    def fake_export(path):
        calls.append(path)
        target = cache_dir() / "onnx" / f"{file_sha256(path)}.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tiny_model_files[1].read_bytes())
        target.with_name(f"{target.name}.sha256").write_text(file_sha256(target))  # as the real export records it
        return target

    b1 = registry.load_backend(tiny_model_files[0], "onnxruntime-cpu", export_checkpoint=fake_export)
    assert b1.scale == 4 and calls == [tiny_model_files[0]]
    # the real exporter finds the cached file without exporting (no export module needed)
    monkeypatch.setitem(__import__("sys").modules, "esrgan.export.pipeline", None)
    cached = model_source.checkpoint_to_onnx(tiny_model_files[0])
    assert cached.read_bytes() == tiny_model_files[1].read_bytes()


class FlakyBackend(Backend):
    """x2 nearest; raises out-of-memory for windows larger than ``limit`` px, or always fails."""

    def __init__(self, limit: int = 10**9, broken: bool = False) -> None:
        self.scale, self.in_channels, self.limit, self.broken = 2, 3, limit, broken
        self.info = BackendInfo("fake", "fp32", "cuda:0")
        self.shapes: list[tuple[int, ...]] = []

    def run(self, batch):
        self.shapes.append(batch.shape)
        if self.broken:
            raise BackendError("kernel exploded")
        if max(batch.shape[2:]) > self.limit:
            raise OutOfMemoryError("fake device ran out of memory")
        return batch.repeat(2, axis=2).repeat(2, axis=3)


def _engine(backend, tile, **kw):
    done, failed, said = [], [], []
    eng = TileEngine(backend, tile, 2, kw.pop("batch", 1), on_done=done.append,
                     on_fail=lambda w, m: failed.append(m), say=said.append, **kw)
    return eng, done, failed, said


def test_out_of_memory_halves_the_tile_retries_and_says_so_once():
    backend = FlakyBackend(limit=30)
    eng, done, failed, said = _engine(backend, 0)
    arr = gradient(40, 36)
    for key in range(2):
        eng.submit(key, from_array(arr))
    assert not failed and len(done) == 2 and eng.tile == 20
    assert len(said) == 1 and "halving" in said[0]
    np.testing.assert_array_equal(done[0].outputs[0], arr.repeat(2, 0).repeat(2, 1))


def test_out_of_memory_at_the_smallest_tile_and_model_errors_fail_the_image_only():
    eng, done, failed, _ = _engine(FlakyBackend(limit=4), 32)
    eng.submit(0, from_array(gradient(40, 40)))
    assert not done and "out of memory" in failed[0]
    eng, done, failed, _ = _engine(FlakyBackend(broken=True), 16, batch=4)
    eng.submit(0, from_array(gradient(8, 8)), more_coming=True)
    eng.submit(1, from_array(gradient(8, 8)))
    assert len(failed) == 2 and "kernel exploded" in failed[0]


class PixelBudgetBackend(FlakyBackend):
    """Out of memory when a batch holds more than ``pixels`` input pixels (tile and batch both count)."""

    def __init__(self, pixels):
        super().__init__()
        self.pixels = pixels

    def run(self, batch):
        self.shapes.append(batch.shape)
        if batch.shape[0] * batch.shape[2] * batch.shape[3] > self.pixels:
            raise OutOfMemoryError("fake device ran out of memory")
        return batch.repeat(2, axis=2).repeat(2, axis=3)


@pytest.mark.parametrize("tile", [64, 60, 48])
def test_out_of_memory_tries_the_smallest_tile_then_smaller_batches(tile):
    """60 -> 30 -> 16 (not 60 -> 30 -> give up), then the batch halves: what fits one 16 px window runs."""
    arr = gradient(50, 44)
    eng, done, failed, said = _engine(PixelBudgetBackend(pixels=450), tile, batch=4)  # one 20x20 window
    eng.submit(0, from_array(arr))
    assert not failed and len(done) == 1 and (eng.tile, eng.batch) == (16, 1), (failed, said)
    assert "halving" in said[0] and said[-1].endswith("batch lowered to 1")
    np.testing.assert_array_equal(done[0].outputs[0], arr.repeat(2, 0).repeat(2, 1))
    eng, done, failed, said = _engine(PixelBudgetBackend(pixels=100), tile, batch=4)
    eng.submit(0, from_array(arr))
    assert not done and failed == ["fake device ran out of memory (even with 16 px tiles, one at a time)"]


def test_tiles_of_small_images_share_batches():
    backend = FlakyBackend()
    eng, done, failed, _ = _engine(backend, 16, batch=4)
    for key in range(4):
        eng.submit(key, from_array(gradient(10, 10)), more_coming=key < 3)
    side = 10 + 2 * tiling.border_pad(2, 10, 10)  # each whole image, plus the border its size allows
    assert len(done) == 4 and backend.shapes == [(4, 3, side, side)]


def test_engine_profile_limits_tile_batch_and_small_images_are_padded_up():
    backend = FlakyBackend()
    backend.info = BackendInfo("tensorrt", "fp16", "cuda:0", max_input=(2, 40, 40), min_input=(1, 24, 24))
    eng, done, failed, said = _engine(backend, 0, batch=8)
    assert (eng.tile, eng.batch) == (36, 2) and "profile" in said[0]
    arr = gradient(10, 14)
    eng.submit(0, from_array(arr))
    assert not failed and min(backend.shapes[0][2:]) >= 24
    np.testing.assert_array_equal(done[0].outputs[0], arr.repeat(2, 0).repeat(2, 1))


def test_a_model_failure_fails_that_image_in_a_folder_run_and_the_run_goes_on(tmp_path, capsys):
    from esrgan.runtime.upscaler import Upscaler
    from tests.runtime.conftest import save

    class FailsOnWide(FlakyBackend):
        def run(self, batch):
            if batch.shape[3] > 20:
                raise BackendError("kernel exploded on a wide tile")
            return super().run(batch)

    save(tmp_path / "in" / "narrow.png", gradient(8, 8))
    save(tmp_path / "in" / "wide.png", gradient(8, 30))
    summary = Upscaler(backend=FailsOnWide(), tile=0, tile_pad=2, say=None).upscale_folder(
        tmp_path / "in", tmp_path / "out", progress=False)
    assert (summary.written, summary.failed, summary.exit_code) == (1, 1, 1)
    assert "wide.png: kernel exploded" in capsys.readouterr().err
    assert (tmp_path / "out" / "narrow.png").exists() and not (tmp_path / "out" / "wide.png").exists()


def test_auto_skips_gpu_providers_without_an_nvidia_gpu_and_survives_broken_ones(nearest_onnx, monkeypatch):
    tried = []
    real = registry._construct

    def spy(name, *args, **kw):
        tried.append(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(registry, "_construct", spy)
    monkeypatch.setattr(registry, "_gpu_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(registry, "choose_cpu", lambda path, precision, threads=None, say=None: ("onnxruntime-cpu", {}, None, path))
    monkeypatch.setattr(ort_backend, "nvidia_gpu_visible", lambda: False)
    assert registry.load_backend(nearest_onnx, "auto").info.name == "onnxruntime-cpu"
    assert tried == ["onnxruntime-cpu"]
    tried.clear()
    monkeypatch.setattr(ort_backend, "nvidia_gpu_visible", lambda: True)  # a GPU, but this ORT build has no CUDA
    assert registry.load_backend(nearest_onnx, "auto").info.name == "onnxruntime-cpu"
    assert tried == ["onnxruntime-cuda", "onnxruntime-cpu"]


def test_sixteen_bit_input_on_a_reduced_precision_backend_is_noted_once(tmp_path):
    import png

    from esrgan.runtime.upscaler import Upscaler

    backend = FlakyBackend()
    backend.info = BackendInfo("openvino", "bf16", "cpu")
    (tmp_path / "in").mkdir()
    for i in range(2):
        png.from_array(np.full((4, 12), 1000 * (i + 1), np.uint16), "RGB;16").save(str(tmp_path / "in" / f"{i}.png"))
    lines = []
    summary = Upscaler(backend=backend, tile=0, tile_pad=1, say=lines.append).upscale_folder(
        tmp_path / "in", tmp_path / "out", progress=False)
    assert summary.written == 2 and sum("16-bit inputs" in line for line in lines) == 1


def test_upscaler_remembers_a_tile_halved_by_out_of_memory():
    from esrgan.runtime.upscaler import Upscaler

    backend = FlakyBackend(limit=30)
    lines = []
    up = Upscaler(backend=backend, tile=0, tile_pad=2, say=lines.append)
    arr = gradient(40, 36)
    np.testing.assert_array_equal(up.upscale(arr), arr.repeat(2, 0).repeat(2, 1))
    assert up.tile == 20 and len(lines) == 1
    backend.shapes.clear()
    up.upscale(arr)
    assert max(s[2] for s in backend.shapes) <= 30 and len(lines) == 1  # no new out-of-memory, nothing said


def test_upscaler_remembers_a_batch_lowered_by_out_of_memory():
    from esrgan.runtime.upscaler import Upscaler

    backend, lines = PixelBudgetBackend(pixels=450), []
    up = Upscaler(backend=backend, tile=16, tile_pad=2, batch=4, say=lines.append)
    arr = gradient(50, 44)
    up.upscale(arr)
    assert (up.tile, up.batch) == (16, 1)
    said, backend.shapes[:] = len(lines), []
    up.upscale(arr)
    assert all(s[0] == 1 for s in backend.shapes) and len(lines) == said  # no new out-of-memory


def test_whole_image_runs_say_whole_images_not_0_px_tiles():
    eng, done, failed, said = _engine(PixelBudgetBackend(pixels=100), 0, batch=4)
    eng.submit(0, from_array(gradient(10, 12)), more_coming=True)
    eng.submit(1, from_array(gradient(10, 12)))
    assert not done and failed and all("whole images" in m and "0 px" not in m for m in failed + said), (failed, said)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_float_image_is_refused_as_the_images_fault(bad):
    """Not run, then reported as "the model produced NaN (broken weights?)"."""
    from esrgan.errors import ImageError

    arr = np.full((8, 8, 3), 0.5, np.float32)
    arr[3, 4, 1] = bad
    with pytest.raises(ImageError, match="image array holds NaN or infinite"):
        from_array(arr)
