"""--backend auto and a model's INT8 companion file: found only for its own model, run only when its
parity (measured here and recorded at export) passes 45 dB and it is the fastest path measured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from esrgan.metadata import PARITY, PRECISION, SOURCE_SHA256, int8_companion
from esrgan.parity import Parity
from esrgan.runtime.cpu_features import FP32_KEY, INT8_KEY, ONNXRUNTIME_CPU, OPENVINO, CpuFeatures
from tests.runtime.conftest import gradient, save

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime.quantization")

VNNI = CpuFeatures("test cpu", "x86_64", 2, frozenset({"avx2", "avx512f", "avx512_vnni"}))
BOTH = (OPENVINO, ONNXRUNTIME_CPU)
GOOD = Parity(1e-2, 1e-3, 50.0, 0.0)


def test_the_companion_name_is_the_one_export_writes():
    from esrgan.export.pipeline import FP32_NAME, INT8_NAME

    assert INT8_NAME == int8_companion(Path(FP32_NAME)).name == "model_int8.onnx"
    assert int8_companion(Path("pkg/models/default_x4.onnx")) == Path("pkg/models/default_x4_int8.onnx")


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_onnx):
    """model.onnx (FP32, with a source checkpoint hash) and its INT8 companion quantised by esrgan's exporter."""
    from esrgan.export.int8 import quantize_int8
    from esrgan.export.onnx_metadata import read_metadata, update_metadata

    root = tmp_path_factory.mktemp("int8pair")
    fp32 = shutil.copy(tiny_onnx, root / "model.onnx")
    update_metadata(fp32, {SOURCE_SHA256: json.dumps({"gan": "ab" * 32})})
    for i in range(2):
        save(root / "calib" / f"{i}.png", np.roll(gradient(40, 40), 7 * i, axis=1))
    int8 = quantize_int8(fp32, root / "calib", int8_companion(Path(fp32)), crop=16, max_crops=4, threads=1)
    # The tiny random model's own INT8 parity is far below 45 dB; the tests set the recorded figure.
    record = json.loads(read_metadata(int8)[PARITY])
    update_metadata(int8, {PARITY: json.dumps({**record, "psnr_db": 50.0})})
    return Path(fp32), int8


def _copy(pair, tmp_path):
    fp32, int8 = pair
    return Path(shutil.copy(fp32, tmp_path / fp32.name)), Path(shutil.copy(int8, tmp_path / int8.name))


def test_the_int8_file_is_taken_only_for_its_own_model(pair, tmp_path):
    from esrgan.export.onnx_metadata import update_metadata
    from esrgan.runtime.cpu_parity import int8_file_for

    fp32, int8 = _copy(pair, tmp_path)
    assert int8_file_for(fp32) == int8
    update_metadata(int8, {SOURCE_SHA256: json.dumps({"gan": "cd" * 32})})  # quantised from another model
    assert int8_file_for(fp32) is None
    update_metadata(int8, {SOURCE_SHA256: json.dumps({"gan": "ab" * 32}), PRECISION: "fp32"})  # not INT8
    assert int8_file_for(fp32) is None
    int8.unlink()
    assert int8_file_for(fp32) is None


def _select(fp32, tmp_path, monkeypatch, parity, seconds, features=VNNI):
    import esrgan.runtime.cpu_parity as cp

    calls = []

    def fake(*args, **kwargs):
        calls.append(kwargs.get("int8_path"))
        return cp.PathFigures(dict(parity), dict(seconds))

    monkeypatch.setattr(cp, "measure_cpu_paths", fake)
    lines: list[str] = []
    choice = cp.select_cpu_backend(fp32, "fp32", BOTH, features=features, cache_dir=tmp_path / "cache",
                                   say=lines.append)
    return choice, calls, lines


def test_auto_runs_the_int8_file_when_faithful_and_faster(pair, tmp_path, monkeypatch):
    fp32, int8 = _copy(pair, tmp_path)
    choice, calls, lines = _select(fp32, tmp_path, monkeypatch, {INT8_KEY: GOOD}, {FP32_KEY: 1.0, INT8_KEY: 0.6})
    assert calls == [int8] and "INT8" in lines[0] and "once; cached in" in lines[0]  # measured once, said once
    assert len(lines) == 2 and lines[1].lstrip().startswith("[") and lines[1].endswith("measured")  # with its time
    assert (choice.backend, choice.precision, choice.model) == (OPENVINO, "int8", str(int8))
    assert "model_int8.onnx" in choice.describe() and "1.67x" in choice.describe()
    again, calls, lines = _select(fp32, tmp_path, monkeypatch, {}, {})  # the cached figures are read back
    assert again == choice and calls == [] and lines == []


def test_auto_keeps_fp32_when_int8_is_slower_here(pair, tmp_path, monkeypatch):
    fp32, _ = _copy(pair, tmp_path)
    choice, _, _ = _select(fp32, tmp_path, monkeypatch, {INT8_KEY: GOOD}, {FP32_KEY: 1.0, INT8_KEY: 1.2})
    assert (choice.precision, choice.model) == ("fp32", None)
    assert "int8 0.83x" in choice.reason


def test_the_lower_of_measured_and_recorded_parity_decides(pair, tmp_path, monkeypatch):
    from esrgan.export.onnx_metadata import read_metadata, update_metadata

    fp32, int8 = _copy(pair, tmp_path)
    record = json.loads(read_metadata(int8)[PARITY])
    update_metadata(int8, {PARITY: json.dumps({**record, "psnr_db": 41.0})})  # held out: below 45 dB
    choice, _, _ = _select(fp32, tmp_path, monkeypatch, {INT8_KEY: GOOD}, {FP32_KEY: 1.0, INT8_KEY: 0.5})
    assert choice.precision == "fp32"
    update_metadata(int8, {PARITY: ""})  # no record at all: never unasked
    choice, _, _ = _select(fp32, tmp_path, monkeypatch, {INT8_KEY: GOOD}, {FP32_KEY: 1.0, INT8_KEY: 0.5})
    assert choice.precision == "fp32"


def test_real_measurement_times_every_path_and_compares_int8(pair, tmp_path):
    from esrgan.runtime.cpu_parity import measure_cpu_paths

    fp32, int8 = pair
    figures = measure_cpu_paths(fp32, bf16=False, int8_path=int8, cache_dir=tmp_path, threads=1)
    assert set(figures.parity) == {INT8_KEY} and set(figures.seconds) == {FP32_KEY, INT8_KEY}
    assert all(s > 0 for s in figures.seconds.values())
    parity = figures.parity[INT8_KEY]
    assert parity.nonfinite_fraction == 0 and 0.0 < parity.psnr_db < 100.0  # INT8 really ran: not identical


def test_parity_is_the_worse_of_the_photograph_and_the_synthetic_card(pair, tmp_path):
    """INT8 calibrated on photographs clips graphics: the card must count, and the worse figure decides."""
    from esrgan.runtime.cpu_parity import load_parity_tile, measure_cpu_paths, synthetic_card

    fp32, int8 = pair

    def psnr(**kw):
        return measure_cpu_paths(fp32, bf16=False, int8_path=int8, cache_dir=tmp_path, threads=1,
                                 **kw).parity[INT8_KEY].psnr_db

    photo, card = psnr(images=[load_parity_tile()]), psnr(images=[synthetic_card()])
    assert photo != pytest.approx(card, abs=0.5)  # two different figures, so the test can tell them apart
    assert psnr() == pytest.approx(min(photo, card), abs=0.01)


def test_the_synthetic_card_has_the_hard_edges_and_flat_extremes_of_graphics():
    from esrgan.runtime.cpu_parity import synthetic_card

    card = synthetic_card(64)
    assert card.shape == (1, 3, 64, 64) and card.dtype == np.float32
    assert set(np.unique(card)) == {0.0, 1.0}  # flat black, white and saturated colours only
    colours = {tuple(px) for px in card[0].reshape(3, -1).T}
    assert len(colours) == 8  # black, white and the six saturated hues
    assert np.array_equal(card, synthetic_card(64))  # made, not random


def test_load_backend_auto_runs_the_chosen_int8_file(pair, tmp_path, monkeypatch):
    import esrgan.runtime.cpu_parity as cp
    from esrgan.runtime.backends import registry

    fp32, int8 = _copy(pair, tmp_path)
    monkeypatch.setattr(cp, "measure_cpu_paths",
                        lambda *a, **k: cp.PathFigures({INT8_KEY: GOOD}, {FP32_KEY: 1.0, INT8_KEY: 0.5}))
    monkeypatch.setattr(cp, "probe_cpu_features", lambda: VNNI)
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    lines: list[str] = []
    backend = registry.load_backend(fp32, "auto", say=lines.append, threads=1)
    try:
        assert any("openvino int8" in line and "model_int8.onnx" in line for line in lines), lines
        assert backend.run(np.zeros((1, 3, 16, 16), np.float32)).shape == (1, 3, 64, 64)
    finally:
        backend.close()


def test_a_measured_int8_file_below_the_bar_is_named_in_the_line():
    from esrgan.runtime.cpu_features import choose_cpu_backend

    clipped = Parity(0.9, 0.05, 17.6, 0.0)
    choice = choose_cpu_backend(VNNI, BOTH, "fp32", {INT8_KEY: clipped}, measured_seconds={FP32_KEY: 1.0, INT8_KEY: 0.5})
    assert choice.precision == "fp32"
    assert choice.describe().endswith("the INT8 file's parity 17.6 dB is below 45 dB, so it is not used)")
    faithful = choose_cpu_backend(VNNI, BOTH, "fp32", {INT8_KEY: GOOD}, measured_seconds={FP32_KEY: 1.0, INT8_KEY: 0.5})
    assert faithful.precision == "int8" and "not used" not in faithful.describe()


def test_an_int8_file_without_recorded_parity_is_not_used_and_the_line_says_why(pair, tmp_path, monkeypatch):
    """The photograph may have calibrated the file: without the held-out figure export records, the
    measured one alone does not admit it."""
    import esrgan.runtime.cpu_parity as cp
    from esrgan.export.onnx_metadata import update_metadata

    fp32, int8 = _copy(pair, tmp_path)
    update_metadata(int8, {PARITY: "not json"})
    monkeypatch.setattr(cp, "measure_cpu_paths",
                        lambda *a, **k: cp.PathFigures({INT8_KEY: GOOD}, {FP32_KEY: 1.0, INT8_KEY: 0.5}))
    choice = cp.select_cpu_backend(fp32, "fp32", BOTH, features=VNNI, cache_dir=tmp_path / "cache")
    assert choice.precision == "fp32"
    assert choice.describe().endswith("model_int8.onnx records no held-out parity, so it is not used)")
    assert "0.0 dB" not in choice.describe()


def test_figures_a_cache_cannot_keep_are_said_so_before_measuring(pair, tmp_path, monkeypatch):
    """Not "once; cached in" and then, seconds later, that nothing could be written: said once, first."""
    import esrgan.runtime.cpu_parity as cp

    fp32, _ = _copy(pair, tmp_path)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(cp, "measure_cpu_paths",
                        lambda *a, **k: cp.PathFigures({INT8_KEY: GOOD}, {FP32_KEY: 1.0, INT8_KEY: 0.6}))
    lines: list[str] = []
    choice = cp.select_cpu_backend(fp32, "fp32", BOTH, features=VNNI, cache_dir=tmp_path / "a-file", say=lines.append)
    assert choice.precision == "int8"  # the figures serve this run
    assert "not kept: cannot write into the esrgan cache" in lines[0] and "ESRGAN_CACHE_DIR" in lines[0], lines
    assert sum("cannot write" in line for line in lines) == 1, lines
