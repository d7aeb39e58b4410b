"""Parity is computed from the timed runs themselves, and a wrong backend is marked as failing."""

import math

import pytest

from esrgan.bench import rows as rowmod
from esrgan.bench.inputs import skimage_photo
from esrgan.bench.runner import BenchConfig, Loaded, measure_case


def _row(key, precision="fp32", reference=False):
    return rowmod.Row(key, precision, "cpu", lambda m, o: None, reference=reference)


def _measure(stub_model, backends, repeat=2):
    loaded = [Loaded(row, b) for row, b in backends]
    images = [skimage_photo("astronaut"), skimage_photo("coffee")]
    config = BenchConfig(tiles=(8,), repeat=repeat)
    results, failed = measure_case(loaded, stub_model, 8, 2, config, images, peak=100.0)
    return {r.backend: r for r in results}, failed


def test_exact_copy_passes_and_perturbed_backend_fails(stub_model, nearest):
    res, failed = _measure(stub_model, [
        (_row("ref", reference=True), nearest()),
        (_row("same"), nearest()),
        (_row("off"), nearest(offset=1e-3)),  # 10x the FP32 threshold
        (_row("half-ok", "fp16"), nearest(offset=1e-3)),  # 60 dB: fine for FP16
        (_row("half-bad", "fp16"), nearest(offset=0.01)),  # 40 dB: below 45 dB
    ])
    assert not failed
    assert res["ref"].parity_ok and res["ref"].max_abs_err == 0 and math.isinf(res["ref"].psnr_vs_torch_db)
    assert res["same"].parity_ok and res["same"].max_abs_err == 0
    assert res["off"].parity_ok is False
    assert res["off"].max_abs_err == pytest.approx(1e-3, rel=1e-3)
    assert res["off"].mean_abs_err == pytest.approx(1e-3, rel=1e-3)
    assert res["off"].psnr_vs_torch_db == pytest.approx(60.0, abs=0.01)  # MSE 1e-6
    assert res["half-ok"].parity_ok is True
    assert res["half-bad"].parity_ok is False and res["half-bad"].psnr_vs_torch_db == pytest.approx(40.0, abs=0.01)


def test_nonfinite_outputs_fail_whatever_the_rest(stub_model, nearest):
    class NaNBackend(nearest):
        def run(self, batch):
            out = super().run(batch)
            out[0, 0, 0, 0] = float("nan")
            return out

    res, _ = _measure(stub_model, [(_row("ref", reference=True), nearest()), (_row("nan", "fp16"), NaNBackend())])
    assert res["nan"].parity_ok is False and res["nan"].nonfinite_fraction > 0


def test_speed_figures_follow_from_the_timings(stub_model, nearest):
    ref, other = nearest(), nearest()
    res, _ = _measure(stub_model, [(_row("ref", reference=True), ref), (_row("other"), other)], repeat=3)
    r = res["other"]
    assert r.tile == 8 and r.batch == 2 and r.repeats == 3 and r.parity_images == 2
    assert r.throughput_mpix_s == pytest.approx(2 * 8 * 8 / (r.latency_ms / 1e3) / 1e6)
    assert r.output_mpix_s == pytest.approx(16 * r.throughput_mpix_s)
    assert r.speedup_vs_torch == pytest.approx(res["ref"].latency_ms / r.latency_ms)
    assert r.gflops == pytest.approx(2 * stub_model.spec.macs_per_pixel() * 128 / (r.latency_ms / 1e3) / 1e9)
    assert r.peak_share == pytest.approx(r.gflops / 100.0)
    assert ref.calls == other.calls == 1 + 3 + 1  # first call (warm-up), timed, memory pass


def test_a_backend_failing_on_a_size_is_dropped_with_its_reason(stub_model, nearest):
    from esrgan.errors import BackendError

    class Broken(nearest):
        def run(self, batch):
            raise BackendError("engine profile max 4x4")

    res, failed = _measure(stub_model, [(_row("ref", reference=True), nearest()), (_row("broken"), Broken())])
    assert "broken" not in res and "engine profile" in failed["broken"]


def test_select_adds_the_reference_and_rejects_unknown_rows():
    chosen = rowmod.select(["ort-fp32"])
    assert [r.key for r in chosen] == ["torch-fp32", "ort-fp32"]
    with pytest.raises(Exception, match="unknown backend"):
        rowmod.select(["nope"])
    everything = rowmod.select(None)
    assert everything[0].key == "torch-fp32" and {"torch-cuda-fp16", "ort-fp16"} <= {r.key for r in everything}
    assert rowmod.needed_artifacts(chosen) == {"fp32"}


def test_gpu_rows_skip_with_a_reason_here(stub_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this test is about machines without a GPU")
    with pytest.raises(rowmod.Unavailable, match="no CUDA GPU"):
        rowmod.all_rows()["torch-cuda-fp16"].factory(stub_model, rowmod.RowOptions())


def test_registered_plugin_rows_are_selectable(nearest):
    row = rowmod.register(rowmod.Row("test-nearest", "fp32", "cpu", lambda m, o: nearest()))
    try:
        assert "test-nearest" in rowmod.all_rows()
        assert rowmod.select(["test-nearest"])[-1] is row
    finally:
        rowmod._ROWS.pop("test-nearest")
