import json

import pytest

from esrgan.bench.report import (
    REQUIRED_FIELDS,
    Result,
    environment_md,
    render_markdown,
    rewrite_markdown,
    to_json_data,
    validate,
    write_report,
)

ENV = {
    "cpu": {"model": "Test CPU", "vendor": "x", "logical_cores": 2, "physical_cores": 2, "mhz": 2000.0,
            "flags": ["avx2"]},
    "cpu_peak_gflops_fp32": 128.0, "cpu_peak_note": "n", "gpu": None, "platform": "p", "python": "3",
    "libraries": {"numpy": "2"}, "threads": {"per_library": 1}, "model": {"name": "m", "spec_text": "s"},
}


def _result(backend, **kw):
    base = dict(
        backend=backend, engine=backend, precision="fp32", device="cpu", tile=32, batch=1, latency_ms=10.0,
        latency_min_ms=9.0, latency_max_ms=11.0, spread=0.2, repeats=3, throughput_mpix_s=0.1, output_mpix_s=1.6,
        speedup_vs_torch=1.0, max_abs_err=0.0, mean_abs_err=0.0, psnr_vs_torch_db=float("inf"),
        nonfinite_fraction=0.0, parity_ok=True, parity_images=3, peak_mem_mb=100.0, run_mem_mb=1.0,
        gpu_mem_mb=None, gflops=1.0, peak_share=0.01,
    )
    base.update(kw)
    return Result(**base)


def _data():
    return {
        "environment": ENV, "config": {"tiles": [32], "batches": [1], "repeat": 3, "warmup": 1, "images": "x"},
        "results": [_result("torch-fp32", reference=True),
                    _result("ort-fp32", speedup_vs_torch=1.3, max_abs_err=2e-4, parity_ok=False, psnr_vs_torch_db=80.0)],
        "skipped": {"torch-cuda-fp16": "no CUDA GPU here"},
    }


def test_written_report_is_valid_json_with_every_field(tmp_path):
    write_report(_data(), tmp_path, "title", "some notes")
    doc = json.loads((tmp_path / "report.json").read_text())
    assert validate(doc) == []
    assert doc["schema_version"] == 1
    assert set(REQUIRED_FIELDS) <= set(doc["results"][0])
    assert doc["results"][0]["psnr_vs_torch_db"] == "inf"  # JSON has no infinity
    for name in ("report.md", "throughput.png", "speedup.png", "parity.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    rewrite_markdown(tmp_path, "NEW NOTES")
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# title") and "NEW NOTES" in md and "| ort-fp32 |" in md


def test_markdown_has_one_row_per_backend_and_marks_failures():
    md = render_markdown(to_json_data(_data()), "t")
    parity = md.split("## Parity")[1].split("## Speed")[0]
    assert parity.count("| torch-fp32 |") == 1 and parity.count("| ort-fp32 |") == 1
    assert "**FAIL**" in parity and "reference" in parity
    assert "1.30×" in md and "Test CPU" in md and "no CUDA GPU here" in md
    targets = md.split("## Targets")[1].split("## Parity")[0]
    assert "1.30×" in targets and "NOT met" in targets  # fast enough but parity failed
    assert "not measured in this run" in targets


@pytest.mark.parametrize("drop", ["results", "environment"])
def test_validate_reports_missing_parts(drop):
    doc = to_json_data(_data())
    del doc[drop]
    assert any(drop in p for p in validate(doc))


def test_validate_reports_missing_fields():
    doc = to_json_data(_data())
    del doc["results"][1]["latency_ms"]
    assert validate(doc) == ["results[1] lacks latency_ms"]


def test_environment_names_the_cpu_family_and_model_number():
    """"AMD EPYC" alone is Zen 2 to Zen 5; the family and model numbers say which (reports from before
    model_number was recorded still render)."""
    zen5 = {**ENV, "cpu": {**ENV["cpu"], "model": "AMD EPYC", "vendor": "AuthenticAMD", "family": 26, "model_number": 2}}
    assert "- CPU: AMD EPYC (AuthenticAMD, family 26, model 2), 2 logical" in environment_md(zen5)
    older = {**ENV, "cpu": {**ENV["cpu"], "family": 25}}
    assert "- CPU: Test CPU (x, family 25), 2 logical" in environment_md(older)
    assert "- CPU: Test CPU (x), 2 logical" in environment_md(ENV)
