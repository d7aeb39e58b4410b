"""esrgan-run end to end: folders, modes, bad inputs, reruns, shards, collisions, exit codes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from esrgan.runtime.cli import main
from tests.conftest import photo
from tests.runtime.conftest import gradient, loaded, save

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def run(*args: str):
    """The CLI in-process; ONNX Runtime CPU unless a test picks the backend (auto may choose BF16)."""
    extra = [] if "--backend" in args or "--model" not in args else ["--backend", "onnxruntime-cpu", "--threads", "1"]
    return CliRunner().invoke(main, [*map(str, args), *extra], catch_exceptions=False)


def up4(arr: np.ndarray) -> np.ndarray:
    return arr.repeat(4, axis=0).repeat(4, axis=1)


def test_mixed_folder_tree_is_mirrored_and_modes_kept(tmp_path, nearest_onnx):
    src, out = tmp_path / "in", tmp_path / "out"
    rgb = gradient()
    save(src / "rgb.png", rgb)
    save(src / "sub" / "deep" / "grey.png", gradient(channels=1))
    rgba = gradient(channels=4)
    save(src / "sub" / "rgba.png", rgba)
    save(src / "photo.jpg", photo("chelsea")[:24, :32], quality=95)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(src / "pal.gif")
    Image.fromarray(rgb).convert("CMYK").save(src / "cmyk.jpg")
    (src / "notes.txt").write_text("not an image")
    r = run(src, out, "--model", nearest_onnx, "--tile", "16", "--tile-pad", "4", "--batch", "3")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.asarray(loaded(out / "rgb.png")), up4(rgb))
    grey = loaded(out / "sub" / "deep" / "grey.png")
    assert grey.mode == "L" and grey.size == (112, 80)
    assert np.abs(np.asarray(grey).astype(int) - up4(gradient(channels=1))).max() <= 1
    got = np.asarray(loaded(out / "sub" / "rgba.png"))
    np.testing.assert_array_equal(got, up4(rgba))  # varying alpha went through the model
    assert loaded(out / "photo.jpg").size == (128, 96)
    assert loaded(out / "pal.png").mode == "RGB"  # palette decoded, gif written as png
    assert loaded(out / "cmyk.jpg").mode == "CMYK"
    assert not (out / "notes.txt").exists() and not (out / "notes.png").exists()
    assert "6 written, 0 skipped, 0 failed" in r.output


def test_sixteen_bit_png_and_tiff_stay_sixteen_bit(tmp_path, nearest_onnx):
    import png
    import tifffile

    rng = np.random.default_rng(1)
    a = rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    src = tmp_path / "in"
    src.mkdir()
    png.from_array(a.reshape(9, 33), "RGB;16").save(str(src / "deep.png"))
    tifffile.imwrite(src / "deep.tif", a, photometric="rgb")
    grey = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x010F] = "Cam16"
    Image.fromarray(grey).save(src / "grey16.png", icc_profile=b"icc16", exif=exif.tobytes())
    assert run(src, tmp_path / "out", "--model", nearest_onnx, "--tile", "0").exit_code == 0
    w, h, rows, info = png.Reader(bytes=(tmp_path / "out" / "deep.png").read_bytes()).asDirect()
    assert info["bitdepth"] == 16
    np.testing.assert_array_equal(np.vstack(list(rows)).reshape(h, w, 3), up4(a))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "deep.tif"), up4(a))
    w, h, rows, info = png.Reader(bytes=(tmp_path / "out" / "grey16.png").read_bytes()).asDirect()
    assert info["bitdepth"] == 16 and info["planes"] == 1
    assert np.abs(np.vstack(list(rows)).astype(int) - up4(grey)).max() <= 1
    carried = loaded(tmp_path / "out" / "grey16.png")
    assert carried.info.get("icc_profile") == b"icc16" and carried.getexif().get(0x010F) == "Cam16"


def test_photographs_through_a_tiny_model_tiled_equals_whole(tmp_path, tiny_onnx):
    src = tmp_path / "in"
    save(src / "astronaut.png", photo("astronaut")[60:108, 180:236])
    save(src / "rocket.jpg", photo("rocket")[200:236, 300:340], quality=95)
    assert run(src, tmp_path / "tiled", "--model", tiny_onnx, "--tile", "16", "--batch", "4").exit_code == 0
    assert run(src, tmp_path / "whole", "--model", tiny_onnx, "--tile", "0").exit_code == 0
    for name in ("astronaut.png", "rocket.jpg"):
        a = np.asarray(loaded(tmp_path / "tiled" / name)).astype(float)
        b = np.asarray(loaded(tmp_path / "whole" / name)).astype(float)
        assert a.shape[:2] == (b.shape[0], b.shape[1]) and a.shape[0] in (192, 144)
        if name.endswith(".png"):
            assert 10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)) >= 50


def test_constant_alpha_exif_orientation_icc_and_exif_carried(tmp_path, nearest_onnx):
    src = tmp_path / "in"
    rgba = gradient(8, 12, channels=4)
    rgba[..., 3] = 200
    save(src / "flat.png", rgba)
    img = Image.fromarray(gradient(8, 12))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    exif[0x010F] = "TestCam"
    icc = b"fake-icc-profile-bytes"
    img.save(src / "rot.jpg", exif=exif.tobytes(), icc_profile=icc, quality=95)
    assert run(src, tmp_path / "out", "--model", nearest_onnx).exit_code == 0
    flat = np.asarray(loaded(tmp_path / "out" / "flat.png"))
    assert (flat[..., 3] == 200).all() and flat.shape == (32, 48, 4)
    rot = loaded(tmp_path / "out" / "rot.jpg")
    assert rot.size == (32, 48)  # upright: the 12x8 image turned
    assert rot.info.get("icc_profile") == icc
    assert rot.getexif().get(0x010F) == "TestCam" and rot.getexif().get(0x0112, 1) == 1


def test_tiff_inputs_lend_their_metadata_not_their_layout_and_tiff_outputs_are_compressed(tmp_path, nearest_onnx):
    """Pillow's EXIF of a TIFF file holds its size, strips and compression: false in an x4 PNG or JPEG."""
    src = tmp_path / "in"
    src.mkdir()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    Image.fromarray(gradient(8, 12)).save(src / "a.tif", compression="tiff_deflate", exif=exif)
    assert run(src, tmp_path / "png", "--model", nearest_onnx, "--format", "png").exit_code == 0
    carried = loaded(tmp_path / "png" / "a.png").getexif()
    assert carried.get(0x010F) == "TestCam" and not {256, 257, 259, 273, 279} & set(carried)
    assert run(src, tmp_path / "tif", "--model", nearest_onnx).exit_code == 0
    with Image.open(tmp_path / "tif" / "a.tif") as out:
        assert out.size == (48, 32) and out.info["compression"] == "tiff_adobe_deflate"
        assert out.getexif().get(0x010F) == "TestCam"
    # a camera JPEG's Exif section: libtiff cannot write it into a compressed TIFF (the image is still
    # written, with a note); a TIFF's Photoshop block (80 kB) is not EXIF and does not stop a JPEG
    exif.get_ifd(0x8769)[0x9003] = "2020:01:01 00:00:00"
    Image.fromarray(gradient(8, 12)).save(src / "cam.jpg", exif=exif)
    Image.fromarray(gradient(8, 12)).save(src / "ps.tiff", tiffinfo={34377: b"x" * 80000, 0x010F: "TestCam"})
    r = run(src, tmp_path / "all_tif", "--model", nearest_onnx, "--format", "tif")
    assert r.exit_code == 0 and "3 written" in r.output and "Exif and GPS sections not carried" in r.output, r.output
    r = run(src, tmp_path / "all_jpg", "--model", nearest_onnx, "--format", "jpg")
    assert r.exit_code == 0 and "3 written" in r.output, r.output
    assert loaded(tmp_path / "all_jpg" / "cam.jpg").getexif().get_ifd(0x8769)[0x9003] == "2020:01:01 00:00:00"
    assert loaded(tmp_path / "all_jpg" / "ps.jpg").getexif().get(0x010F) == "TestCam"


def test_a_format_note_is_said_once_and_names_the_first_image(tmp_path, nearest_onnx):
    src = tmp_path / "in"
    for name in ("a.png", "b.png", "c.png"):
        save(src / name, gradient(channels=4))
    r = run(src, tmp_path / "out", "--model", nearest_onnx, "--format", "jpg")
    assert r.exit_code == 0 and "3 written" in r.output, r.output
    notes = [line for line in r.output.splitlines() if "alpha dropped" in line]
    assert notes == ["note: JPEG has no alpha channel: alpha dropped (a.png; not repeated for later images)"], r.output


def test_bad_inputs_are_reported_skipped_and_exit_1(tmp_path, nearest_onnx):
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "good.png", gradient())
    (src / "empty.png").write_bytes(b"")
    (src / "text.jpg").write_text("hello")
    buf = io.BytesIO()
    Image.fromarray(photo("astronaut")[:40, :40]).save(buf, "PNG")
    (src / "truncated.png").write_bytes(buf.getvalue()[:400])
    save(src / "huge.png", np.zeros((60, 60, 3), np.uint8))
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 255)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    r = run(src, out, "--model", nearest_onnx, "--max-pixels", "3000")
    assert r.exit_code == 1
    for name, reason in [("empty.png", "empty"), ("text.jpg", "not an image"), ("truncated.png", "decode"),
                         ("huge.png", "max-pixels"), ("anim.gif", "animated")]:
        line = next(line for line in r.output.splitlines() if name in line)
        assert reason in line and line.startswith("error:")
    assert (out / "good.png").exists() and "1 written, 0 skipped, 5 failed" in r.output
    assert "Traceback" not in r.output


def test_rerun_skips_complete_outputs_and_overwrite_redoes(tmp_path, nearest_onnx):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        save(src / f"{i}.png", gradient(6 + i, 7))
    assert run(src, out, "--model", nearest_onnx).exit_code == 0
    (out / "1.png").write_bytes((out / "1.png").read_bytes()[:50])  # a damaged output is redone
    (out / ".2.png.abc123.tmp").write_bytes(b"partial")  # left by a killed run
    r = run(src, out, "--model", nearest_onnx)
    assert "1 written, 2 skipped" in r.output and not (out / ".2.png.abc123.tmp").exists()
    assert loaded(out / "1.png").size == (28, 28)
    assert "3 written, 0 skipped" in run(src, out, "--model", nearest_onnx, "--overwrite").output


def test_shards_split_inputs_stably_and_completely(tmp_path, nearest_onnx):
    src = tmp_path / "in"
    for i in range(12):
        save(src / f"img{i:02d}.png", gradient(4, 4))
    outs = []
    for i in range(3):
        out = tmp_path / f"out{i}"
        assert run(src, out, "--model", nearest_onnx, "--shard", f"{i}/3", "-q").exit_code == 0
        outs.append({p.name for p in out.glob("*.png")})
    assert sum(map(len, outs)) == 12 and set().union(*outs) == {f"img{i:02d}.png" for i in range(12)}
    assert all(outs)  # each shard got a share
    save(src / "new.png", gradient(4, 4))  # adding a file moves no other file between shards
    from esrgan.runtime.paths import in_shard

    assert all(in_shard(name, (i, 3)) for i, names in enumerate(outs) for name in names)
    assert run(src, tmp_path / "x", "--model", nearest_onnx, "--shard", "3/3").exit_code == 2


def test_folder_layout_errors_and_collisions(tmp_path, nearest_onnx):
    src = tmp_path / "in"
    save(src / "a.png", gradient(4, 4))
    save(src / "a.jpg", gradient(4, 4))
    r = run(src, src, "--model", nearest_onnx)
    assert r.exit_code == 2 and "is the input folder" in r.output
    r = run(src, src / "out", "--model", nearest_onnx)
    assert r.exit_code == 2 and "inside the input folder" in r.output
    r = run(src, tmp_path / "out", "--model", nearest_onnx, "--format", "png")
    assert r.exit_code == 0 and "both map to" in r.output
    assert sorted(p.name for p in (tmp_path / "out").glob("[!.]*")) == ["a.png", "a_jpg.png"]


def test_single_file_glob_format_quality_and_outscale(tmp_path, nearest_onnx):
    src = tmp_path / "in"
    save(src / "x.png", gradient(10, 12))
    save(src / "y.png", gradient(10, 12))
    save(src / "z.bmp", gradient(10, 12))
    r = run(src / "x.png", tmp_path / "o1", "--model", nearest_onnx, "--format", "webp", "--quality", "80")
    assert r.exit_code == 0 and loaded(tmp_path / "o1" / "x.webp").format == "WEBP"
    r = run(str(src / "*.png"), tmp_path / "o2", "--model", nearest_onnx, "--outscale", "3.5", "--format", "jpg")
    assert r.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "o2").glob("[!.]*")) == ["x.jpg", "y.jpg"]
    assert loaded(tmp_path / "o2" / "x.jpg").size == (42, 35)
    # OUTPUT with an image suffix is that file; with a trailing separator, a folder of that name
    assert run(src / "x.png", tmp_path / "one.png", "--model", nearest_onnx).exit_code == 0
    assert (tmp_path / "one.png").is_file()
    assert run(src / "x.png", f"{tmp_path / 'two.png'}/", "--model", nearest_onnx).exit_code == 0
    assert (tmp_path / "two.png" / "x.png").is_file()


def test_real_esrgan_short_flags_mean_the_long_ones(tmp_path, nearest_onnx):
    save(tmp_path / "in" / "x.png", gradient(10, 12))
    common = ["--backend", "onnxruntime-cpu", "--threads", "1"]
    long = run(tmp_path / "in", tmp_path / "long", "--model", nearest_onnx, "--outscale", "3.5", "--tile", "16",
               "--device-id", "0", "--format", "jpg", *common)
    short = run(tmp_path / "in", tmp_path / "short", "-n", nearest_onnx, "-s", "3.5", "-t", "16", "-g", "0",
                "-f", "jpg", *common)
    assert long.exit_code == 0 and short.exit_code == 0, short.output
    assert sorted(p.name for p in (tmp_path / "short").glob("[!.]*")) == ["x.jpg"]
    a, b = (np.asarray(loaded(tmp_path / d / "x.jpg")) for d in ("long", "short"))
    assert a.shape == (35, 42, 3) and np.array_equal(a, b)
    bad = run(tmp_path / "in", tmp_path / "o", "-n", nearest_onnx, "-t", "7", *common)
    assert bad.exit_code == 2 and "--tile 7" in bad.output  # -t is --tile, with its checks


def test_suffix_is_appended_to_every_output_name(tmp_path, nearest_onnx):
    save(tmp_path / "in" / "a.png", gradient(6, 6))
    save(tmp_path / "in" / "a.jpg", gradient(6, 6))  # collides with a.png once both are written as png
    save(tmp_path / "in" / "sub" / "b.png", gradient(6, 6))
    r = run(tmp_path / "in", tmp_path / "o", "--model", nearest_onnx, "--suffix", "x4", "--format", "png")
    assert r.exit_code == 0, r.output
    names = sorted(p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*.png"))
    assert names == ["a_jpg_x4.png", "a_x4.png", "sub/b_x4.png"]
    rerun = run(tmp_path / "in", tmp_path / "o", "--model", nearest_onnx, "--suffix", "x4", "--format", "png")
    assert "0 written, 3 skipped" in rerun.output  # a rerun finds the suffixed outputs
    for bad in ("a/b", "..", " x"):
        r = run(tmp_path / "in", tmp_path / "o2", "--model", nearest_onnx, "--suffix", bad)
        assert r.exit_code == 2 and "--suffix" in r.output and not (tmp_path / "o2").exists(), bad


def test_usage_and_model_errors_exit_2_in_one_line(tmp_path, nearest_onnx):
    save(tmp_path / "in" / "a.png", gradient(4, 4))
    for args, text in [((tmp_path / "nope", tmp_path / "o", "--model", nearest_onnx), "no such file"),
                       ((tmp_path / "in", tmp_path / "o", "--model", tmp_path / "m.onnx"), "no such model"),
                       ((tmp_path / "in", tmp_path / "o", "--model", nearest_onnx, "--tile", "7"), "--tile"),
                       ((tmp_path / "in", tmp_path / "o", "--model", nearest_onnx, "--backend", "torch"), "torch")]:
        r = run(*args)
        assert r.exit_code == 2 and text in r.output and "Traceback" not in r.output
        assert len([line for line in r.output.splitlines() if line.startswith("error:")]) == 1


def test_a_cache_that_cannot_be_written_is_one_line_or_no_matter(tmp_path, tiny_model_files, monkeypatch):
    """ESRGAN_CACHE_DIR naming a file (like a read-only home): runs that only read the cache's speed-ups
    still run; those that need a cached file (ncnn's files, a checkpoint's export) stop in one line."""
    import importlib.util

    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "not-a-folder"))
    save(tmp_path / "in" / "a.png", gradient(8, 8))
    needs = [("auto", 0), ("onnxruntime-cpu", 0)]
    if importlib.util.find_spec("openvino"):
        needs.append(("openvino", 0))  # compiled without its compiled-model cache
    if importlib.util.find_spec("ncnn"):
        needs.append(("ncnn-cpu", 2))  # ncnn loads files: they must be written first
    for backend, code in needs:
        r = run(tmp_path / "in", tmp_path / f"o-{backend}", "--model", tiny_model_files[1], "--backend", backend)
        assert r.exit_code == code and "Traceback" not in r.output, (backend, r.output)
        if code:
            errors = [line for line in r.output.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and "ESRGAN_CACHE_DIR" in errors[0] and "not-a-folder" in errors[0], r.output
    r = run(tmp_path / "in", tmp_path / "o-ckpt", "--model", tiny_model_files[0])
    assert r.exit_code == 2 and "Traceback" not in r.output and "ESRGAN_CACHE_DIR" in r.output, r.output
    assert "importing PyTorch" not in r.output  # said before seconds of export, not after


def test_default_model_is_used_and_announced(tmp_path, nearest_onnx, monkeypatch):
    import shutil

    from esrgan.runtime import default_model
    from tests.runtime.conftest import write_default_sidecar

    shipped = tmp_path / "models"
    shipped.mkdir()
    monkeypatch.setattr(default_model, "MODEL_DIR", shipped)
    save(tmp_path / "in" / "a.png", gradient(4, 4))
    r = run(tmp_path / "in", tmp_path / "o")
    assert r.exit_code == 2 and "default model is missing" in r.output
    shutil.copy(nearest_onnx, shipped / "default_x4.onnx")
    write_default_sidecar(shipped, gain=0.83)
    r = run(tmp_path / "in", tmp_path / "o")
    assert r.exit_code == 0 and "default x4 RRDBNet, 2 blocks of 32 features" in r.output and "+0.83 dB" in r.output
    assert sum("built-in default" in line for line in r.output.splitlines()) == 1


def test_checkpoint_refused_with_export_command_when_export_is_missing(tmp_path, tiny_model_files, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # the export extra is not installed
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    save(tmp_path / "in" / "a.png", gradient(4, 4))
    r = run(tmp_path / "in", tmp_path / "o", "--model", tiny_model_files[0])
    assert r.exit_code == 2 and "esrgan-export" in r.output and "pip install" in r.output


def test_checkpoint_is_exported_on_the_fly_and_cached(tmp_path, tiny_model_files, monkeypatch):
    import functools

    import esrgan.export.pipeline as export_pipeline

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    # the real export and verification, with the faster TorchScript exporter (dynamo takes ~40 s here)
    fast = functools.partial(export_pipeline.export_artifacts, exporter="torchscript")
    monkeypatch.setattr(export_pipeline, "export_artifacts", fast)
    save(tmp_path / "in" / "a.png", photo("camera")[:12, :12])
    r = run(tmp_path / "in", tmp_path / "o", "--model", tiny_model_files[0])
    assert r.exit_code == 0, r.output
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and loaded(tmp_path / "o" / "a.png").size == (48, 48)
    # the one-time export says what it does, stamps its steps, and where the cached file went
    lines = r.output.splitlines()
    assert any("exporting it to ONNX" in line for line in lines), r.output
    assert any(line.lstrip().startswith("[") and "verifying model.onnx" in line for line in lines), r.output
    assert any(f"cached as {cached[0]}" in line for line in lines), r.output
    quiet = run(tmp_path / "in", tmp_path / "oq", "--model", tiny_model_files[0], "--quiet")
    assert quiet.exit_code == 0 and "exporting" not in quiet.output  # cached: nothing to announce
    same_as_onnx = run(tmp_path / "in", tmp_path / "o2", "--model", tiny_model_files[1])
    assert same_as_onnx.exit_code == 0
    a = np.asarray(loaded(tmp_path / "o" / "a.png")).astype(int)
    assert np.abs(a - np.asarray(loaded(tmp_path / "o2" / "a.png")).astype(int)).max() <= 1
    monkeypatch.setattr(export_pipeline, "export_artifacts", None)  # a second run must not export again
    assert run(tmp_path / "in", tmp_path / "o3", "--model", tiny_model_files[0]).exit_code == 0


def test_checkpoint_runs_with_the_torch_backend(tmp_path, tiny_model_files):
    save(tmp_path / "in" / "a.png", gradient(6, 6))
    r = run(tmp_path / "in", tmp_path / "o", "--model", tiny_model_files[0], "--backend", "torch")
    assert r.exit_code == 0, r.output
    assert loaded(tmp_path / "o" / "a.png").size == (24, 24)


def _subprocess(args: list[str], **kw):
    return subprocess.run([sys.executable, *args], env=ENV, capture_output=True, text=True, timeout=120, **kw)


def test_runtime_and_esrgan_run_never_import_torch(tmp_path, nearest_onnx):
    save(tmp_path / "in" / "a.png", gradient(6, 6))
    code = (
        "import sys, esrgan.runtime, esrgan.runtime.upscaler, esrgan.runtime.cli\n"
        "assert 'torch' not in sys.modules\n"
        "from esrgan.runtime.cli import main\n"
        f"sys.argv = ['esrgan-run', {str(tmp_path / 'in')!r}, {str(tmp_path / 'o')!r}, '--model', {str(nearest_onnx)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nprint('NO_TORCH')\n"
    )
    r = _subprocess(["-c", code])
    assert "NO_TORCH" in r.stdout, r.stderr
    assert (tmp_path / "o" / "a.png").exists()


def test_killed_run_leaves_no_partial_output(tmp_path, nearest_onnx):
    src, out = tmp_path / "in", tmp_path / "out"
    big = np.tile(gradient(64, 64), (5, 5, 1))  # slow enough to be killed mid-write
    for i in range(3):
        save(src / f"{i}.png", big)
    proc = subprocess.Popen([sys.executable, "-m", "esrgan.runtime.cli", str(src), str(out), "--model",
                             str(nearest_onnx), "--tile", "0", "-q"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob(".*.tmp")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for f in out.glob("*.png"):  # whatever is there under a final name is complete
        assert loaded(f).size == (320 * 4, 320 * 4)
        with Image.open(f) as img:
            img.verify()
    r = run(src, out, "--model", nearest_onnx, "--tile", "0", "-q")
    assert r.exit_code == 0 and not list(out.glob(".*.tmp"))
    assert len(list(out.glob("*.png"))) == 3


def test_sigterm_stops_cleanly_without_temp_files(tmp_path, nearest_onnx):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(4):
        save(src / f"{i}.png", np.tile(gradient(64, 64), (5, 5, 1)))
    proc = subprocess.Popen([sys.executable, "-m", "esrgan.runtime.cli", str(src), str(out), "--model",
                             str(nearest_onnx), "--backend", "onnxruntime-cpu", "--tile", "0", "-q"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob(".*.tmp")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.splitlines()[-1] == "interrupted: every output written is complete; the same command again finishes the rest (it skips them)"
    assert not list(out.glob(".*.tmp"))
    for f in out.glob("*.png"):
        with Image.open(f) as img:
            img.verify()


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_python_api_arrays_and_pil_images(nearest_onnx, mode):
    from esrgan.runtime.upscaler import Upscaler

    up = Upscaler(nearest_onnx, tile=8, tile_pad=2, batch=2, say=None)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    arr = gradient(9, 13, channels=channels if channels != 2 else 4)[..., :channels] if channels != 1 else gradient(9, 13, 1)
    out = up.upscale(arr)
    assert out.shape[:2] == (36, 52) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - up4(arr).astype(int)).max() <= 1
    img = up.upscale(Image.fromarray(arr))
    assert img.mode == mode and img.size == (52, 36)
    f = up.upscale(arr.astype(np.float32) / 255.0, outscale=2)
    assert f.dtype == np.float32 and f.shape[:2] == (18, 26)


def test_python_api_says_what_it_takes(nearest_onnx, tmp_path):
    from esrgan.errors import ImageError, UsageError
    from esrgan.runtime.upscaler import Upscaler

    up = Upscaler(nearest_onnx, say=None)
    with pytest.raises(UsageError, match="takes an image .* not a path"):
        up.upscale(str(tmp_path / "a.png"))
    with pytest.raises(UsageError, match="not a path"):
        up.upscale(tmp_path / "a.png")
    with pytest.raises(ImageError, match="an empty image"):
        up.upscale(np.zeros((0, 5, 3), np.uint8))


def test_python_api_keeps_pillow_modes(nearest_onnx):
    from esrgan.runtime.upscaler import Upscaler

    up = Upscaler(nearest_onnx, backend="onnxruntime-cpu", tile=16, say=None)
    grey16 = (np.arange(120).reshape(10, 12) * 500).astype(np.uint16)
    out = up.upscale(Image.fromarray(grey16))
    assert out.mode == "I;16" and np.array_equal(np.asarray(out), up4(grey16))
    rgb = Image.fromarray(gradient(10, 12))
    assert up.upscale(rgb.convert("CMYK")).mode == "CMYK"
    assert up.upscale(rgb.convert("P")).mode == "RGB"
    assert up.upscale(rgb.convert("1")).size == (48, 40)


def _zlib_level_flags(path: Path) -> int:
    """FLEVEL of a PNG's zlib stream (its first IDAT's second byte, top two bits): 0 = fastest."""
    data = path.read_bytes()
    return data[data.index(b"IDAT") + 5] >> 6


def test_png_outputs_use_the_fast_zlib_level_as_opencv_does(tmp_path, nearest_onnx):
    src = tmp_path / "in"
    save(src / "rgb.png", gradient())
    deep = gradient().astype(np.uint16) * 257
    import png

    png.from_array(deep.reshape(deep.shape[0], -1), "RGB;16").save(str(src / "deep.png"))
    r = run(src, tmp_path / "out", "--model", nearest_onnx)
    assert r.exit_code == 0 and "2 written" in r.output, r.output
    assert _zlib_level_flags(tmp_path / "out" / "rgb.png") == 0
    assert _zlib_level_flags(tmp_path / "out" / "deep.png") == 0
    ihdr = (tmp_path / "out" / "deep.png").read_bytes().index(b"IHDR")
    assert (tmp_path / "out" / "deep.png").read_bytes()[ihdr + 12] == 16  # still 16 bits per channel
