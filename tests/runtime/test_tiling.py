"""Tile layout, stitching and batching; tiled vs whole-image output on a tiny real model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from esrgan.runtime import tiling


@pytest.mark.parametrize("length,tile", [(100, 48), (48, 48), (47, 48), (97, 16), (1, 16), (130, 64), (64, 0)])
def test_axis_spans_cover_every_pixel_once_with_equal_tiles(length, tile):
    spans = tiling.axis_spans(length, tile)
    written = np.zeros(length, int)
    for s in spans:
        written[s.keep_start : s.keep_end] += 1
        assert s.start <= s.keep_start < s.keep_end <= s.start + s.size  # keeps only its own core
        assert 0 <= s.start and s.start + s.size <= length
    assert (written == 1).all()
    assert len({s.size for s in spans}) == 1  # edge tiles shifted inward, not shrunk
    if len(spans) == 1:
        assert spans[0].size == length
    else:  # the fewest cores of at most ``tile`` px, as equal as they can be
        assert len(spans) == -(-length // tile) and spans[0].size == -(-length // len(spans)) <= tile


@pytest.mark.parametrize("length,tile,pad,border,multiple", [
    (100, 16, 8, 0, 1), (100, 16, 8, 4, 1), (300, 64, 32, 8, 1), (97, 30, 12, 3, 4), (301, 64, 32, 8, 2),
    (200, 32, 32, 40, 1),
])
def test_windows_reach_into_their_neighbours_and_stay_in_the_padded_image(length, tile, pad, border, multiple):
    spans = tiling.axis_spans(length, tile, multiple, pad, border)
    padded = length + (-length) % multiple + 2 * border
    written = np.zeros(length, int)
    assert len(spans) > 1 and len({s.size for s in spans}) == 1  # tiled, every window the same shape
    for s in spans:
        written[s.keep_start : s.keep_end] += 1
        assert 0 <= s.start and s.start + s.size <= padded and s.start % multiple == 0
        before = s.keep_start + border - s.start  # context on each side of what it writes, in window px
        after = s.start + s.size - (s.keep_end + border)
        # Full context from real neighbours; less only where the padded image itself ends.
        assert before >= min(pad, s.keep_start + border) and after >= min(pad, padded - s.keep_end - border)
    assert (written == 1).all()


@pytest.mark.parametrize("h,w,tile", [(96, 96, 256), (128, 150, 0), (70, 200, 64), (300, 40, 512), (1400, 1400, 2048)])
def test_an_axis_that_fits_one_window_runs_whole_with_only_the_border(h, w, tile):
    pad = tiling.DEFAULT_TILE_PAD
    border = tiling.border_pad(pad, h, w)
    grid = tiling.tile_grid(h, w, tile, pad)
    assert border <= pad and (h + 2 * border) * (w + 2 * border) <= tiling.MAX_PADDED_SHARE * h * w
    for t in grid:
        for length, span in ((h, t.y), (w, t.x)):
            if tile == 0 or length + 2 * border <= tile + 2 * pad:
                assert span.size == length + 2 * border and span.start == 0


def test_border_pad_is_the_measured_one_within_the_padded_share(monkeypatch):
    assert tiling.border_pad(0) == 0 and tiling.border_pad(1000) == tiling.BORDER_PAD
    monkeypatch.setattr(tiling, "BORDER_PAD", 32)  # the cap matters for any border larger than none
    assert tiling.border_pad(32, 96, 96) == 2  # 100 x 100 = 1.085x; 104 x 104 would be 1.17x
    assert tiling.border_pad(1000, 4000, 4000) == 32
    for h, w in [(1, 1), (5, 300), (96, 96), (128, 150), (1080, 1920)]:
        b = tiling.border_pad(32, h, w)
        assert (h + 2 * b) * (w + 2 * b) <= tiling.MAX_PADDED_SHARE * h * w
        assert (h + 2 * b + 2) * (w + 2 * b + 2) > tiling.MAX_PADDED_SHARE * h * w or b == 32


def test_pad_image_reflects_even_beyond_the_image_size():
    img = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    padded = tiling.pad_image(img, 4)
    assert padded.shape == (10, 11, 1)
    assert padded[4, 4, 0] == img[0, 0, 0] and padded[4, 3, 0] == img[0, 1, 0]  # mirror without edge repeat


def _upsample(batch: np.ndarray, scale: int = 2) -> np.ndarray:
    return batch.repeat(scale, axis=2).repeat(scale, axis=3)


@pytest.mark.parametrize("h,w,tile,pad,batch", [(37, 53, 16, 5, 3), (10, 7, 32, 4, 1), (33, 33, 0, 6, 2)])
def test_run_tiled_with_a_local_model_is_exact(h, w, tile, pad, batch):
    rng = np.random.default_rng(0)
    img = rng.random((h, w, 3), dtype=np.float32)
    out = tiling.run_tiled(_upsample, img, 2, tile, pad, batch=batch, dtype=np.uint16)
    expected = tiling.to_integer(img.repeat(2, 0).repeat(2, 1), np.uint16)
    np.testing.assert_array_equal(out, expected)


def test_batcher_groups_by_shape_and_across_images():
    b = tiling.TileBatcher(3)
    t = tiling.tile_grid(10, 10, 0, 0)[0]
    jobs = [tiling.TileJob(k, t, np.zeros((3, s, s), np.float32)) for k, s in
            [("a", 8), ("b", 8), ("c", 4), ("d", 8), ("e", 4)]]
    full = [b.add(j) for j in jobs]
    assert [j.key for j in full[3]] == ["a", "b", "d"] and full[:3] == [None] * 3
    rest = list(b.flush())
    assert [[j.key for j in g] for g in rest] == [["c", "e"]]
    assert len(b) == 0
    with pytest.raises(ValueError):
        tiling.TileBatcher(0)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def test_default_pad_matches_whole_image_on_a_tiny_model(tiny_onnx):
    from esrgan.runtime.backends.ort_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(tiny_onnx, threads=1)
    from tests.conftest import photo

    img = photo("coffee")[100:228, 200:320].astype(np.float32) / 255.0
    assert len(tiling.tile_grid(128, 120, 16, tiling.DEFAULT_TILE_PAD)) > 1  # windows smaller than the image: tiled
    whole = tiling.run_tiled(backend.run, img, 4, 0, tiling.DEFAULT_TILE_PAD)
    tiled = tiling.run_tiled(backend.run, img, 4, 16, tiling.DEFAULT_TILE_PAD, batch=4)
    no_pad = tiling.run_tiled(backend.run, img, 4, 16, 0, batch=4)
    assert _psnr(whole, tiled) >= 50.0
    assert _psnr(whole, no_pad) < 45.0  # the check can fail: without context the seams show


def test_auto_tile_uses_engine_profile_then_memory():
    from esrgan.runtime.backends.base import BackendInfo
    from esrgan.runtime.engine import auto_tile

    info = BackendInfo("tensorrt", "fp16", "cuda:0", max_input=(4, 320, 256))
    assert auto_tile(info, 24, 1000.0) == 256 - 48
    cpu = BackendInfo("onnxruntime-cpu", "fp32", "cpu")
    small = auto_tile(cpu, 24, 1000.0, budget=100 * 100 * 1000)
    big = auto_tile(cpu, 24, 1000.0, budget=400 * 400 * 1000)
    assert small % 8 == 0 and big % 8 == 0 and small < big <= 1024


def test_tile_auto_runs_an_image_within_the_memory_budget_whole(monkeypatch):
    from esrgan.bench.extras import CountingBackend
    from esrgan.runtime import engine
    from esrgan.runtime.images import from_array

    per_pixel = engine.bytes_per_input_pixel(None, 4)
    monkeypatch.setattr(engine, "memory_budget", lambda info: int(per_pixel * 100 * 100))
    backend, done = CountingBackend(), []
    eng = engine.TileEngine(backend, "auto", 32, on_done=done.append, on_fail=lambda w, m: None)
    assert eng.tile == 32  # the square tile the budget allows, (100 - 2 * 32) rounded down to 8
    border = tiling.border_pad(32, 40, 160)
    rng = np.random.default_rng(0)
    long_ = rng.integers(0, 256, (40, 160, 3), dtype=np.uint8)  # wider than the tile, within the budget: whole
    eng.submit("long", from_array(long_))
    assert backend.pixels == (40 + 2 * border) * (160 + 2 * border)
    big = rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)  # beyond the budget: tiled
    eng.submit("big", from_array(big))
    # 4 x 4 tiles of at most 32 px, made equal: 30 px cores (120 / 4), each with 32 px of context a side
    assert backend.pixels - (40 + 2 * border) * (160 + 2 * border) == 16 * (30 + 64) ** 2
    expected = long_.repeat(4, 0).repeat(4, 1)
    np.testing.assert_array_equal(done[0].outputs[0], expected)
    np.testing.assert_array_equal(done[1].outputs[0], big.repeat(4, 0).repeat(4, 1))


@pytest.mark.parametrize("sizes", [[(96, 96)], [(128, 150), (256, 300)], [(480, 640)], [(200, 1400)]])
def test_default_run_makes_the_model_run_little_more_than_the_image(sizes, monkeypatch):
    """``esrgan-run``'s defaults on a CPU: pixels run <= 1.1x the image's own, for images within the budget."""
    from esrgan.bench.extras import pixels_run_ratio
    from esrgan.runtime import engine

    monkeypatch.setattr(engine, "memory_budget", lambda info: engine.CPU_BUDGET_BYTES)  # not this machine's free memory
    per_pixel = engine.bytes_per_input_pixel(None, 4)
    assert all((h + 64) * (w + 64) * per_pixel <= engine.CPU_BUDGET_BYTES for h, w in sizes)  # within the budget
    assert 1.0 <= pixels_run_ratio(sizes) <= 1.1


def test_the_pixels_run_figure_is_the_benchmarked_models_own(monkeypatch):
    """esrgan-bench reports it for the model it measured: a 32-feature model fits a 700 px image whole
    in the budget where the paper-size one is tiled."""
    from esrgan.bench.extras import pixels_run_ratio
    from esrgan.models.spec import GeneratorSpec
    from esrgan.runtime import engine

    monkeypatch.setattr(engine, "memory_budget", lambda info: engine.CPU_BUDGET_BYTES)
    paper = GeneratorSpec(scale=4, num_feat=64, num_block=23, num_grow_ch=32)
    small = GeneratorSpec(scale=4, num_feat=32, num_block=4, num_grow_ch=16)
    assert pixels_run_ratio([(700, 700)], spec=paper) == pytest.approx(pixels_run_ratio([(700, 700)]))
    assert pixels_run_ratio([(700, 700)], spec=paper) > 1.3
    assert pixels_run_ratio([(700, 700)], spec=small) == 1.0


def test_auto_tile_on_a_gpu_uses_free_memory(monkeypatch):
    from esrgan.runtime import engine
    from esrgan.runtime.backends.base import BackendInfo

    assert engine.parse_nvidia_smi_free("81000\n  4000 \n", 1) == 4000 << 20
    assert engine.parse_nvidia_smi_free("N/A", 0) is None and engine.parse_nvidia_smi_free("", 0) is None
    gpu = BackendInfo("onnxruntime-cuda", "fp32", "cuda:1")
    monkeypatch.setattr(engine, "gpu_free_bytes", lambda device: {1: 64 << 20}.get(device))
    small = engine.auto_tile(gpu, 24, 1000.0)
    monkeypatch.setattr(engine, "gpu_free_bytes", lambda device: 512 << 20)
    assert small < engine.auto_tile(gpu, 24, 1000.0)


def test_a_vulkan_gpu_budget_is_its_own_heap_budget_never_nvidia_smis(monkeypatch):
    """nvidia-smi numbers CUDA devices: vulkan:0 may be an integrated GPU beside an NVIDIA card."""
    from esrgan.runtime import engine
    from esrgan.runtime.backends.base import BackendInfo

    monkeypatch.setattr(engine, "gpu_free_bytes", lambda device: pytest.fail("asked nvidia-smi for a Vulkan device"))
    assert engine.memory_budget(BackendInfo("ncnn-vulkan", "fp16", "vulkan:0", free_memory=1 << 30)) == 1 << 29
    assert engine.memory_budget(BackendInfo("ncnn-vulkan", "fp16", "vulkan:1")) == engine.GPU_BUDGET_BYTES


def test_the_cpu_budget_counts_reclaimable_memory_and_a_container_limit(tmp_path, monkeypatch):
    """MemAvailable, not MemFree (the page cache of a machine up for days is reclaimable), capped by a
    cgroup v2 limit; a batch of windows shares the budget."""
    from esrgan.runtime import engine

    (tmp_path / "meminfo").write_text("MemTotal: 32000000 kB\nMemFree: 1000000 kB\nMemAvailable: 20000000 kB\n")
    assert engine._meminfo_available(str(tmp_path / "meminfo")) == 20000000 << 10
    assert engine._meminfo_available(str(tmp_path / "missing")) is None
    # cgroup v2: this process in /job/step; the job's limit is the tighter one, and page cache that the
    # kernel can drop (inactive_file) is not counted as used
    root, step = tmp_path / "cg", tmp_path / "cg" / "job" / "step"
    step.mkdir(parents=True)
    (tmp_path / "self").write_text("0::/job/step\n")
    (root / "memory.max").write_text("max\n")
    assert engine._cgroup_room(str(root), str(tmp_path / "self")) is None
    (step / "memory.max").write_text(f"{8 << 30}\n")
    (step / "memory.current").write_text(f"{7 << 30}\n")
    (step / "memory.stat").write_text(f"anon {1 << 30}\ninactive_file {4 << 30}\n")
    assert engine._cgroup_room(str(root), str(tmp_path / "self")) == 5 << 30
    (root / "job" / "memory.max").write_text(f"{6 << 30}\n")
    (root / "job" / "memory.current").write_text(f"{4 << 30}\n")
    assert engine._cgroup_room(str(root), str(tmp_path / "self")) == 2 << 30
    # cgroup v1's memory controller, "no limit" written as a huge number
    v1 = tmp_path / "v1" / "memory" / "box"
    v1.mkdir(parents=True)
    (tmp_path / "self1").write_text("9:pids:/box\n4:memory:/box\n")
    (v1 / "memory.limit_in_bytes").write_text(f"{9223372036854771712}\n")
    assert engine._cgroup_room(str(tmp_path / "v1"), str(tmp_path / "self1")) is None
    (v1 / "memory.limit_in_bytes").write_text(f"{4 << 30}\n")
    (v1 / "memory.usage_in_bytes").write_text(f"{3 << 30}\n")
    (v1 / "memory.stat").write_text(f"cache {2 << 30}\ntotal_inactive_file {2 << 30}\n")
    assert engine._cgroup_room(str(tmp_path / "v1"), str(tmp_path / "self1")) == 3 << 30
    # a cgroup outside this namespace's root ("/.." paths, cgroup_namespaces(7)) has no files here: no
    # limit from it, and no endless walk up from a folder above the hierarchy
    (tmp_path / "self2").write_text("0::/../sibling\n4:memory:/../x\n")
    assert engine._cgroup_room(str(root), str(tmp_path / "self2")) is None
    monkeypatch.setattr(engine, "_meminfo_available", lambda: 20 << 30)
    monkeypatch.setattr(engine, "_cgroup_room", lambda: 5 << 30)
    assert engine._available_memory() == 5 << 30
    from esrgan.bench.extras import CountingBackend

    monkeypatch.setattr(engine, "memory_budget", lambda info: int(engine.bytes_per_input_pixel(None, 4) * 200 * 200))
    alone, four = (engine.TileEngine(CountingBackend(), "auto", 16, batch, on_done=print, on_fail=print)
                   for batch in (1, 4))
    assert (alone.tile, alone.whole_pixels) == (168, 200 * 200)
    assert (four.tile, four.whole_pixels) == (64, 100 * 100)  # a quarter of the budget each


@pytest.mark.parametrize("length,tile,multiple", [(97, 32, 2), (97, 30, 4), (64, 32, 4), (13, 8, 4), (5, 16, 2)])
def test_aligned_spans_start_on_the_size_multiple_and_cover_once(length, tile, multiple):
    spans = tiling.axis_spans(length, tile, multiple)
    written = np.zeros(length, int)
    for s in spans:
        written[s.keep_start : s.keep_end] += 1
        assert s.start % multiple == 0 and s.size % multiple == 0
        assert s.start <= s.keep_start < s.keep_end <= s.start + s.size
        assert s.start + s.size < length + multiple  # at most multiple - 1 px into the extra padding
    assert (written == 1).all() and len({s.size for s in spans}) == 1
    padded = tiling.pad_image(np.zeros((length, length, 1), np.float32), 3, multiple)
    assert padded.shape[0] == length + (-length) % multiple + 6


@pytest.fixture(scope="module")
def unshuffle_x2_backend(tmp_path_factory):
    """A tiny Real-ESRGAN-layout x2 RRDBNet (pixel-unshuffle by 2) on the torch backend."""
    import torch

    from esrgan.models.build import build_generator
    from esrgan.models.checkpoints import save_generator
    from esrgan.models.spec import GeneratorSpec
    from esrgan.runtime.backends.torch_backend import TorchBackend

    torch.manual_seed(0)
    model = build_generator(GeneratorSpec(scale=2, num_feat=8, num_block=1, num_grow_ch=4, pixel_unshuffle=True))
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 4:
                torch.nn.init.kaiming_normal_(p, a=0.2)
    path = save_generator(model.eval(), tmp_path_factory.mktemp("x2") / "x2.safetensors")
    backend = TorchBackend(path, threads=1)
    assert backend.size_multiple == 2
    return backend


def test_tiles_of_a_pixel_unshuffle_model_match_the_whole_image(unshuffle_x2_backend):
    from esrgan.runtime.upscaler import Upscaler

    backend = unshuffle_x2_backend
    rng = np.random.default_rng(1)
    img = (rng.random((64, 97, 3)) * 255).astype(np.uint8)  # odd width: the last tile starts at an odd column
    whole = Upscaler(backend=backend, tile=0, tile_pad=64, say=None).upscale(img)
    tiled = Upscaler(backend=backend, tile=32, tile_pad=64, say=None).upscale(img)
    assert whole.shape == tiled.shape == (128, 194, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
    # The check can fail: windows at odd offsets (no alignment) group other pixel pairs.
    f = img.astype(np.float32) / 255.0
    unaligned = tiling.run_tiled(backend.run, f, 2, 32, 64, multiple=1)
    assert np.abs(whole.astype(int) - unaligned.astype(int)).max() >= 4


@pytest.mark.parametrize("h,w,tile,most", [(1080, 1920, 600, 1.27), (700, 700, 600, 1.40), (2160, 3840, 600, 1.25)])
def test_images_beyond_one_window_run_equal_tiles_not_a_remainder(h, w, tile, most):
    """A fixed tile leaves a remainder tile whose window mostly repeats its neighbour's (1080p in
    600 px tiles with a 32 px pad ran 1.70x its pixels, 700 x 700 ran 3.6x); equal tiles do not."""
    assert tiling.pixels_run(h, w, tile, tiling.DEFAULT_TILE_PAD, 1, 0) <= most * h * w


def test_auto_tiles_leave_room_for_each_engines_own_workspace(monkeypatch):
    """ONNX Runtime and ncnn take more than the activations (tile_memory.md): their whole-image limit is
    the budget over the estimate times their factor; OpenVINO's is the estimate's."""
    from esrgan.bench.extras import CountingBackend
    from esrgan.runtime import engine
    from esrgan.runtime.backends.base import MEMORY_FACTORS, BackendInfo

    per_pixel = engine.bytes_per_input_pixel(None, 4)
    monkeypatch.setattr(engine, "memory_budget", lambda info: int(per_pixel * 400 * 400))
    whole = {}
    for name in ("openvino", "onnxruntime-cpu", "ncnn-cpu"):
        backend = CountingBackend()
        backend.info = BackendInfo(name, "fp32", "cpu")
        whole[name] = engine.TileEngine(backend, "auto", 16, 1, on_done=print, on_fail=print).whole_pixels
    assert whole["openvino"] == 400 * 400
    for name in ("onnxruntime-cpu", "ncnn-cpu"):
        assert MEMORY_FACTORS[name] > 1 and abs(whole[name] * MEMORY_FACTORS[name] - 400 * 400) <= MEMORY_FACTORS[name]
