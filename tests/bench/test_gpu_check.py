"""benchmarks.gpu_check: arguments, skips with reasons, and its CPU dry run end to end (tiny model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import gpu_check
from esrgan.bench.report import validate
from esrgan.bench.rows import Row, all_rows
from esrgan.errors import install_hint

ROOT = Path(__file__).resolve().parents[2]
GPU_ROWS = sorted(k for k, r in all_rows().items() if r.device == "cuda")
# What a lent GPU machine may lack: everything but torch, numpy, onnx and onnxruntime.
NOT_ON_GPU_MACHINE = ("PIL", "skimage", "click", "tqdm", "safetensors", "matplotlib", "onnxscript",
                      "onnxconverter_common", "openvino", "scipy", "yaml", "png", "tifffile", "ncnn", "tensorrt",
                      "torchvision")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


no_gpu = pytest.mark.skipif("_cuda()", reason="checks what happens on a machine without a CUDA GPU")


def _parse(*argv: str):
    return gpu_check.build_parser().parse_args(list(argv))


def test_gpu_run_settings_and_rows():
    config, preset = gpu_check.resolve(_parse("-o", "out"))
    assert preset == "paper"
    assert config.tiles == gpu_check.GPU_SETTINGS["tiles"] and config.batches == gpu_check.GPU_SETTINGS["batches"]
    assert sorted(config.backends) == GPU_ROWS and "torch-cuda-compile" in GPU_ROWS and "trt-fp16" in GPU_ROWS


def test_dry_run_adds_cpu_rows_and_flags_win():
    config, preset = gpu_check.resolve(_parse("-o", "out", "--dry-run", "--tiles", "12,24", "--repeat", "3"))
    assert preset == "tiny" and config.tiles == (12, 24) and config.repeat == 3
    assert config.batches == gpu_check.DRY_RUN_SETTINGS["batches"]
    assert set(config.backends) == {*gpu_check.DRY_RUN_CPU_ROWS, *GPU_ROWS}
    args = _parse("-o", "out", "--backends", "torch-cuda-fp32,trt-fp16", "--exporter", "dynamo", "--no-train")
    config, _ = gpu_check.resolve(args)
    assert config.backends == ("torch-cuda-fp32", "trt-fp16") and config.exporter == "dynamo" and args.no_train
    assert not _parse("-o", "out").no_train


@pytest.mark.parametrize("argv", [[], ["-o", "x", "--tiles", "0"], ["-o", "x", "--batch", "a"],
                                  ["-o", "x", "--exporter", "nope"]])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(*argv)
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err


def test_unknown_row_and_bad_repeat_end_in_one_line(tmp_path, capsys):
    assert gpu_check.main(["-o", str(tmp_path), "--dry-run", "--backends", "nope"]) == 2
    assert gpu_check.main(["-o", str(tmp_path), "--dry-run", "--repeat", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unknown backend 'nope'" in err[0] and "--repeat" in err[1]
    assert not (tmp_path / "report.json").exists()


def test_images_folder_is_checked_before_any_work(tmp_path, capsys):
    assert gpu_check.main(["-o", str(tmp_path / "out"), "--dry-run", "--images", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--images" in err[0] and "not a folder" in err[0]
    assert not (tmp_path / "out").exists()


def test_an_output_that_cannot_take_the_report_is_said_before_any_work(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    for out in (tmp_path / "a-file", tmp_path / "a-file" / "below"):
        assert gpu_check.main(["-o", str(out), "--dry-run", "--no-train"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("is a file, not a folder" in line for line in err), err


@no_gpu
def test_gpu_run_without_a_gpu_says_so_in_one_line(tmp_path, capsys):
    assert gpu_check.main(["-o", str(tmp_path / "out")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "no CUDA GPU" in err[0] and "--dry-run" in err[0]
    assert not (tmp_path / "out").exists()


def test_export_blockers(monkeypatch):
    import esrgan.export.engine as engine

    def row(key: str, device: str, artifact: str) -> Row:
        return Row(key, "fp16", device, lambda m, o: None, artifact)  # type: ignore[arg-type,return-value]

    rows = [row("ort-gpu", "cuda", "fp16"), row("engine", "cuda", "engine"), row("ort-cpu", "cpu", "fp32"),
            row("torch-gpu", "cuda", "")]
    monkeypatch.setattr(engine, "tensorrt_unavailable", lambda: "TensorRT is missing")
    monkeypatch.setattr(gpu_check, "ort_providers", lambda: ["CPUExecutionProvider"])
    blocked = gpu_check.export_blockers(rows)
    assert set(blocked) == {"ort-gpu", "engine"}
    assert "onnxruntime-gpu" in blocked["ort-gpu"] and "CPUExecutionProvider" in blocked["ort-gpu"]
    assert blocked["engine"] == "TensorRT is missing"
    monkeypatch.setattr(engine, "tensorrt_unavailable", lambda: None)
    monkeypatch.setattr(gpu_check, "ort_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert gpu_check.export_blockers(rows) == {}


def test_synthetic_scenes_are_deterministic_varied_images():
    scenes = gpu_check.synthetic_scenes(3, side=64)
    assert all(s.shape == (64, 64, 3) and s.dtype == np.uint8 for s in scenes)
    assert all(np.array_equal(a, b) for a, b in zip(scenes, gpu_check.synthetic_scenes(3, side=64), strict=True))
    assert not np.array_equal(scenes[0], scenes[1])
    for s in scenes:  # full range, sharp edges somewhere, but mostly smooth (not noise)
        steps = np.abs(np.diff(s.astype(int), axis=1))
        assert s.max() - s.min() > 150 and steps.max() > 100 and np.median(steps) < 20


def test_report_without_plots():
    from esrgan.bench import report
    from esrgan.bench.env import collect_environment

    config = {"tiles": [16], "batches": [1], "repeat": 1, "warmup": 1, "images": "i"}
    data = {"environment": collect_environment(1), "config": config, "results": [], "skipped": {"x": "why"}}

    md = report.render_markdown(report.to_json_data({"title": "t", **data}), "t", plots=False)
    assert "## Plots" not in md and "`x`: why" in md
    assert "## Plots" in report.render_markdown(report.to_json_data({"title": "t", **data}), "t")


def _check_dry_run_report(out: Path) -> dict:
    doc = json.loads((out / "report.json").read_text())
    assert validate(doc) == []
    by_row = {r["backend"]: r for r in doc["results"]}
    ref = by_row["torch-fp32"]
    assert ref["reference"] and ref["tile"] == gpu_check.DRY_RUN_SETTINGS["tiles"][0] and ref["throughput_mpix_s"] > 0
    assert doc["gpu_check"]["mode"] == "dry-run" and doc["gpu_check"]["cuda"] is None
    assert doc["environment"]["model"]["spec"]["num_feat"] == 8  # the tiny preset
    md = (out / "report.md").read_text()
    for key in GPU_ROWS:  # every GPU row is listed, as skipped, with a reason
        assert doc["skipped"].get(key, "").strip(), key
        assert f"- `{key}`: " in md
        assert key not in by_row
    assert "python -m benchmarks.gpu_check" in md and "GPU: none visible" in md
    return doc


@no_gpu
def test_dry_run_writes_a_valid_report(tmp_path, monkeypatch, bench_cache, capsys):
    monkeypatch.setenv("ESRGAN_BENCH_CACHE", str(bench_cache))
    out = tmp_path / "out"
    assert gpu_check.main(["-o", str(out), "--dry-run", "--exporter", "torchscript"]) == 0
    doc = _check_dry_run_report(out)
    ort = {r["backend"]: r for r in doc["results"]}["ort-fp32"]
    assert ort["parity_ok"] is True and ort["speedup_vs_torch"] > 0
    assert doc["config"]["images"] == "scikit-image photographs" and doc["gpu_check"]["plots"] is True
    assert (out / "throughput.png").is_file() and "## Plots" in (out / "report.md").read_text()
    training = doc["gpu_check"]["training"]
    assert training["device"] == "cpu" and [r["mode"] for r in training["rows"]] == ["fp32"]
    assert training["rows"][0]["iters_per_s"] > 0 and training["rows"][0]["batch"] == gpu_check.DRY_RUN_TRAIN["batch"]
    assert "Training-step throughput on cpu" in (out / "report.md").read_text()
    printed = capsys.readouterr().out
    assert "ort-fp32" in printed and "torch-cuda-fp32      skipped:" in printed and "report.md" in printed


@no_gpu
def test_dry_run_needs_only_torch_numpy_onnx_and_onnxruntime(tmp_path):
    """What a lent GPU machine has: the flow still reports; rows that need more say why they were skipped."""
    out = tmp_path / "out"
    block = "; ".join(f"sys.modules[{m!r}] = None" for m in NOT_ON_GPU_MACHINE)
    code = (f"import runpy, sys; {block}; sys.argv = ['gpu_check', '-o', {str(out)!r}, '--dry-run']; "
            "runpy.run_module('benchmarks.gpu_check', run_name='__main__')")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ESRGAN_BENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = _check_dry_run_report(out)
    # the FP32 file is exported with torch and onnx alone; the FP16 one needs the export extra
    by_row = {r["backend"]: r for r in doc["results"]}
    assert sorted(by_row) == ["ort-fp32", "torch-fp32"] and by_row["ort-fp32"]["parity_ok"] is True
    fp16 = doc["skipped"]["ort-cuda-fp16"]
    assert ("the ONNX export failed here" in fp16 and install_hint("export") in fp16) or "no GPU provider" in fp16
    assert doc["config"]["images"].startswith("synthetic") and doc["gpu_check"]["plots"] is False
    assert install_hint("train") in doc["gpu_check"]["training"]["skipped"]
    md = (out / "report.md").read_text()
    assert "## Plots" not in md and "matplotlib is not installed" in md and not list(out.glob("*.png"))
