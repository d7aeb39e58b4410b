"""esrgan-bench end to end on a tiny model (exports once into a temporary cache)."""

import json

from click.testing import CliRunner

from esrgan.bench.cli import main
from esrgan.bench.report import validate


def test_quick_on_tiny_model_writes_a_valid_report(tmp_path, monkeypatch, bench_cache):
    monkeypatch.setenv("ESRGAN_BENCH_CACHE", str(bench_cache))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["--preset", "tiny", "--quick", "--tiles", "12", "--exporter", "torchscript", "-o", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "report.json").read_text())
    assert validate(doc) == []
    by_backend = {r["backend"]: r for r in doc["results"]}
    assert set(by_backend) == {"torch-fp32", "ort-fp32"}
    ort = by_backend["ort-fp32"]
    assert ort["parity_ok"] is True and ort["max_abs_err"] <= 1e-4 and ort["tile"] == 12
    assert ort["speedup_vs_torch"] > 0 and ort["parity_images"] == 3
    assert doc["environment"]["model"]["spec"]["num_feat"] == 8
    assert "ort-fp32" in (out / "report.md").read_text()
    tiling, e2e = doc["tiling"], doc["end_to_end"]
    assert tiling["tile"] == 32 and (tiling["psnr_db"] == "inf" or tiling["psnr_db"] > 50)
    assert e2e["windows"] == 4 and 0 < e2e["pipeline_share_of_raw"] < 10
    assert e2e["pixels_run_ratio"] > 1.1 and 1.0 <= e2e["default_pixels_run_ratio"] <= 1.1  # 2 x 2 tiles vs whole
    assert e2e["raw_mpix_s"] > 0 and e2e["pipeline_mpix_s"] > 0
    # every preparation step and check is a line stamped with the elapsed time
    steps = [line for line in res.stderr.splitlines() if line.startswith("[")]
    for text in ("preparing the model", "ONNX", "tiny_x4", "model ready", "tiled against whole-image",
                 "folder pipeline"):
        assert any(text in line for line in steps), (text, res.stderr)


def test_usage_errors_are_one_line(tmp_path):
    res = CliRunner().invoke(main, ["--preset", "tiny", "--tiles", "0", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "--tiles" in res.output
    res = CliRunner().invoke(main, ["--preset", "tiny", "--backends", "nope", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "unknown backend" in res.output
    res = CliRunner().invoke(main, ["--preset", "tiny"])
    assert res.exit_code == 2 and "-o OUTDIR" in res.output
    (tmp_path / "a-file").write_text("")
    res = CliRunner().invoke(main, ["--preset", "tiny", "-o", str(tmp_path / "a-file" / "report")])
    assert res.exit_code == 2 and "is a file, not a folder" in res.output and "Traceback" not in res.output


def test_list_shows_rows():
    res = CliRunner().invoke(main, ["--list"])
    assert res.exit_code == 0 and "ort-fp32" in res.output and "torch-fp32" in res.output
