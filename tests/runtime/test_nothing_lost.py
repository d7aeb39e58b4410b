"""esrgan-run under hostile inputs: every file is written or named in one line, and nothing is lost.

Each test attacks one door (decoders, encoders, TIFF layouts, globs, name clashes, unreadable
folders, concurrent runs, damaged outputs, power loss) and checks the class of fault, not one file.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from esrgan import atomic
from esrgan.runtime import images, paths
from esrgan.runtime.manifest import MANIFEST_NAME
from tests.runtime.conftest import gradient, loaded, save
from tests.runtime.test_run_cli import run, up4


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def png16(path: Path, arr: np.ndarray) -> Path:
    import png

    h, w, c = arr.shape
    png.from_array(arr.reshape(h, w * c), {1: "L;16", 3: "RGB;16", 4: "RGBA;16"}[c]).save(str(path))
    return path


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        out.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def png_bytes(chunks: list[tuple[bytes, bytes]], good_crc: bool = True) -> bytes:
    parts = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) ^ (0 if good_crc or kind != b"IDAT" else 1)
        parts.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc))
    return b"".join(parts)


def damaged_png16(folder: Path) -> dict[str, bytes]:
    """16-bit PNGs whose header Pillow accepts but whose pixels make pypng or zlib raise."""
    rng = np.random.default_rng(3)
    good = png16(folder / "model16.png", rng.integers(0, 65536, (12, 10, 3), dtype=np.uint16)).read_bytes()
    (folder / "model16.png").unlink()
    chunks = png_chunks(good)
    idat = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    garbage = [*chunks[:idat], (b"IDAT", b"\x78\x9c" + bytes(range(7, 200))), *chunks[idat + 1:]]
    short = [*chunks[:idat], (b"IDAT", chunks[idat][1][: len(chunks[idat][1]) // 2]), *chunks[idat + 1:]]
    return {
        "crc16.png": png_bytes(chunks, good_crc=False),  # pypng ChunkError
        "zlib16.png": png_bytes(garbage),  # zlib.error
        "short16.png": png_bytes(short),  # pypng FormatError (too little pixel data)
    }


def test_any_decoder_failure_is_one_images_failure(tmp_path, nearest_onnx):
    src, out = tmp_path / "in", tmp_path / "out"
    for name, data in damaged_png16(tmp_path).items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    names = ["a.png", "z.png", "zz.tif"]
    for name in names:
        save(src / name, gradient(6, 5))
    for attempt in range(2):  # a rerun gets past the same files too
        r = run(src, out, "--model", nearest_onnx)
        assert r.exit_code == 1 and "Traceback" not in r.output
        lines = error_lines(r.output)
        assert len(lines) == 3 and all(any(bad in line for line in lines) for bad in ("crc16", "zlib16", "short16"))
        assert all(loaded(out / name).size == (20, 24) for name in names)
        assert re.search(f"{3 * (1 - attempt)} written, {3 * attempt} skipped( [(].*[)])?, 3 failed", r.output)


@pytest.mark.parametrize("exc", [TypeError("Missing dimensions"), KeyError(273), RuntimeError("decoder bug"),
                                 MemoryError()])
def test_whatever_a_decoder_raises_names_the_file(tmp_path, nearest_onnx, monkeypatch, exc):
    src = tmp_path / "in"
    save(src / "a.png", gradient(5, 5))
    save(src / "b.tif", gradient(5, 5))
    save(src / "c.png", gradient(5, 5))
    real = images._from_pillow

    def flaky(img):
        if img.format == "TIFF":
            raise exc
        return real(img)

    monkeypatch.setattr(images, "_from_pillow", flaky)
    r = run(src, tmp_path / "out", "--model", nearest_onnx)
    assert r.exit_code == 1 and "Traceback" not in r.output
    (line,) = error_lines(r.output)
    assert "b.tif" in line and "cannot decode" in line and type(exc).__name__ in line
    assert "2 written, 0 skipped, 1 failed" in r.output


def test_whatever_an_encoder_raises_names_the_file(tmp_path, nearest_onnx, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("a.png", "b.bmp", "c.png"):
        save(src / name, gradient(5, 5))
    real = images._write_pillow

    def flaky(path, arr, mode, decoded, fmt, quality):
        if fmt == "BMP":
            raise ValueError("encoder bug")
        return real(path, arr, mode, decoded, fmt, quality)

    monkeypatch.setattr(images, "_write_pillow", flaky)
    r = run(src, out, "--model", nearest_onnx)
    assert r.exit_code == 1 and "Traceback" not in r.output
    (line,) = error_lines(r.output)
    assert "b.bmp" in line and "ValueError: encoder bug" in line
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "a.png", "c.png"]  # no temp file left behind


@pytest.mark.parametrize("width", [4, 3, 40])
def test_planar_sixteen_bit_tiff_keeps_its_shape(tmp_path, nearest_onnx, width):
    import tifffile

    rng = np.random.default_rng(width)
    a = rng.integers(0, 65536, (16, width, 3), dtype=np.uint16)
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "planar.tif", np.ascontiguousarray(np.moveaxis(a, 2, 0)), photometric="rgb",
                     planarconfig="separate")
    tifffile.imwrite(src / "contig.tif", a, photometric="rgb")
    r = run(src, tmp_path / "out", "--model", nearest_onnx, "--tile", "0")
    assert r.exit_code == 0, r.output
    for name in ("planar.tif", "contig.tif"):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / name), up4(a))


def test_sixteen_bit_data_that_disagrees_with_its_header_is_refused(tmp_path, nearest_onnx, monkeypatch):
    import tifffile

    a = np.zeros((16, 4, 3), np.uint16)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "x.tif", a, photometric="rgb")
    # a reader that misreads the layout: 16 rows of 3 px with 4 samples instead of 16 x 4 px RGB
    monkeypatch.setattr(tifffile.TiffPageSeries, "axes", property(lambda self: "YSX"), raising=False)
    r = run(tmp_path / "in", tmp_path / "out", "--model", nearest_onnx)
    assert r.exit_code == 1 and "header says 4x16" in r.output
    assert not (tmp_path / "out" / "x.tif").exists()


def test_a_recursive_glob_never_reads_its_outputs(tmp_path, nearest_onnx, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save(Path("gl") / "a.png", gradient(4, 4))
    save(Path("gl") / "sub" / "b.png", gradient(4, 4))
    Path("gl/linked").mkdir()
    Path("link").symlink_to(Path("gl/linked").resolve())  # the same folder, spelt outside the pattern's root
    for spec, out in [("gl/**/*.png", "gl/out"), ("gl/**", "gl/out"), ("gl/**/*.png", "gl/sub/out"),
                      (f"{tmp_path}/gl/**/*.png", "gl/out"), ("gl/**/*.png", str(tmp_path / "gl" / "out")),
                      ("gl/**/*.png", "link")]:
        r = run(spec, out, "--model", nearest_onnx)
        assert r.exit_code == 2 and "also matches the output" in r.output, (spec, out, r.output)
        assert not list(Path(out).rglob("*.png"))
    from esrgan.errors import UsageError
    from esrgan.runtime.upscaler import Upscaler

    with pytest.raises(UsageError, match="also matches the output"):
        Upscaler(nearest_onnx, say=None).upscale_folder("gl/**/*.png", "gl/out", progress=False)
    # A pattern that cannot reach the output folder runs, and its reruns find nothing new.
    for _ in range(2):
        r = run("gl/*.png", "gl/out", "--model", nearest_onnx)
        assert r.exit_code == 0 and "0 failed" in r.output
    assert sorted(p.relative_to("gl/out").as_posix() for p in Path("gl/out").rglob("*")) == [MANIFEST_NAME, "a.png"]
    r = run("gl/**/*.png", "elsewhere", "--model", nearest_onnx)
    assert r.exit_code == 0 and sorted(p.as_posix() for p in Path("elsewhere").rglob("*.png")) == [
        "elsewhere/a.png", "elsewhere/out/a.png", "elsewhere/sub/b.png"]


def test_glob_matches_like_the_standard_library(tmp_path, monkeypatch):
    import glob

    monkeypatch.chdir(tmp_path)
    for name in ["a.png", "b.jpg", ".hid.png", "s/c.png", "s/t/d.png", ".h/e.png", "s/.h/f.png", "x1/g.png"]:
        save(Path("r") / name, gradient(2, 2))
    for spec in ["r/*.png", "r/**/*.png", "r/**", "r/*/*.png", "r/s/**/*.png", "r/[ax]*/*.png", "r/**/.h/*.png",
                 "r/?.png", "r/**/t/*"]:
        expected = sorted(Path(p) for p in glob.glob(spec, recursive=True)
                          if Path(p).is_file() and not Path(p).name.startswith("."))
        assert paths.find_inputs(spec).files == expected, spec


def test_every_input_gets_its_own_output(tmp_path, nearest_onnx):
    src, out = tmp_path / "in", tmp_path / "out"
    colours = {"a.png": 10, "a.jpg": 60, "a.JPG": 110, "a_jpg.png": 160, "A.bmp": 210}
    for name, value in colours.items():
        save(src / name, np.full((4, 4, 3), value, np.uint8))
    r = run(src, out, "--model", nearest_onnx, "--format", "png")
    assert r.exit_code == 0 and "5 written, 0 skipped, 0 failed" in r.output
    written = sorted(p for p in out.iterdir() if p.name != MANIFEST_NAME)
    assert len(written) == 5 and len({p.name.casefold() for p in written}) == 5
    # each output holds its own input: a.jpg and a.JPG no longer overwrite one another
    got = sorted(int(np.asarray(loaded(p))[0, 0, 0]) for p in written)
    assert all(abs(g - v) <= 3 for g, v in zip(got, sorted(colours.values()), strict=True))
    assert "0 written, 5 skipped" in run(src, out, "--model", nearest_onnx, "--format", "png").output


def test_names_are_the_same_in_every_shard(tmp_path):
    files = [Path("in") / n for n in ("a.png", "a.jpg", "a.JPG", "b.png")]
    whole, _ = paths.plan_jobs(Path("in"), files, Path("out"), "png", None, suffix="")
    shards = [paths.plan_jobs(Path("in"), files, Path("out"), "png", (i, 3), suffix="")[0] for i in range(3)]
    assert sorted((j.src, j.dst) for s in shards for j in s) == sorted((j.src, j.dst) for j in whole)
    undecodable = os.fsdecode(b"caf\xe9.png")  # not UTF-8: still one stable shard, no exception
    assert sum(paths.in_shard(undecodable, (i, 3)) for i in range(3)) == 1


def _refuse_scandir(monkeypatch, blocked: Path) -> None:
    real = os.scandir

    def scandir(path="."):
        if Path(path).resolve() == blocked.resolve():
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.mark.parametrize("spec", ["folder", "glob"])
def test_an_unreadable_subfolder_is_reported(tmp_path, nearest_onnx, monkeypatch, spec):
    src = tmp_path / "in"
    save(src / "a.png", gradient(4, 4))
    save(src / "locked" / "b.png", gradient(4, 4))
    _refuse_scandir(monkeypatch, src / "locked")
    r = run(src if spec == "folder" else f"{src}/**/*.png", tmp_path / "out", "--model", nearest_onnx)
    assert r.exit_code == 1 and "Traceback" not in r.output
    (line,) = error_lines(r.output)
    assert "locked" in line and "Permission denied" in line
    assert "1 written, 0 skipped, 0 failed, 1 folder unreadable" in r.output


def test_an_unreadable_input_folder_is_reported(tmp_path, nearest_onnx, monkeypatch):
    save(tmp_path / "in" / "a.png", gradient(4, 4))
    _refuse_scandir(monkeypatch, tmp_path / "in")
    r = run(tmp_path / "in", tmp_path / "out", "--model", nearest_onnx)
    assert r.exit_code == 1 and len(error_lines(r.output)) == 1 and "1 folder unreadable" in r.output


def test_a_second_run_leaves_a_live_runs_temp_files_alone(tmp_path, nearest_onnx):
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("a.png", "b.png"):
        save(src / name, gradient(4, 4))
    (out / ".b.png.dead0000.tmp").parent.mkdir(parents=True)
    (out / ".b.png.dead0000.tmp").write_bytes(b"left by a killed run")
    with atomic.write_atomic(out / "a.png") as live:  # another run, still writing a.png
        live.write_bytes(b"half")
        r = run(src, out, "--model", nearest_onnx, "--overwrite")
        assert r.exit_code == 0 and live.exists()
        assert not (out / ".b.png.dead0000.tmp").exists()
        Image.fromarray(gradient(8, 8)).save(live, format="PNG")
    assert loaded(out / "a.png").size == (8, 8)  # the live run's rename still succeeded
    assert not list(out.glob(".*.tmp"))


def test_temp_names_map_back_to_their_output():
    assert atomic.temp_target(".a.b.png.x1y2z3.tmp") == "a.b.png"
    assert atomic.temp_target("a.png") is None and atomic.temp_target(".x.tmp") is None


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp", "bmp", "tif"])
def test_a_truncated_output_of_any_format_is_redone(tmp_path, nearest_onnx, fmt):
    src, out = tmp_path / "in", tmp_path / "out"
    rng = np.random.default_rng(0)
    for name in ("keep", "cut"):
        save(src / f"{name}.png", rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    assert run(src, out, "--model", nearest_onnx, "--format", fmt).exit_code == 0
    data = (out / f"cut.{fmt}").read_bytes()
    (out / f"cut.{fmt}").write_bytes(data[: len(data) * 3 // 4])
    r = run(src, out, "--model", nearest_onnx, "--format", fmt)
    assert r.exit_code == 0 and "1 written, 1 skipped" in r.output
    assert images.is_intact(out / f"cut.{fmt}", images.FORMATS[fmt]) and loaded(out / f"cut.{fmt}").size == (96, 96)


def test_outputs_past_pillows_bomb_limit_and_wrong_formats(tmp_path, nearest_onnx, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("a.png", "b.jpg", "c.bmp", "d.tif"):
        save(src / name, gradient(8, 8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # inputs (64 px) pass, outputs (1024 px) do not
    assert run(src, out, "--model", nearest_onnx).exit_code == 0
    assert "0 written, 4 skipped" in run(src, out, "--model", nearest_onnx).output
    save(out / "a.png", gradient(32, 32), format="JPEG")  # complete, but not what a.png must be
    assert "1 written, 3 skipped" in run(src, out, "--model", nearest_onnx).output


def test_sixteen_bit_outputs_count_as_complete(tmp_path, nearest_onnx):
    src, out = tmp_path / "in", tmp_path / "out"
    rng = np.random.default_rng(1)
    src.mkdir()
    png16(src / "rgb16.png", rng.integers(0, 65536, (5, 6, 3), dtype=np.uint16))
    png16(src / "rgba16.png", rng.integers(0, 65536, (5, 6, 4), dtype=np.uint16))
    for fmt in ("png", "tif"):
        assert run(src, out, "--model", nearest_onnx, "--format", fmt).exit_code == 0
        assert "0 written, 2 skipped" in run(src, out, "--model", nearest_onnx, "--format", fmt).output


def test_writes_are_synced_before_and_after_the_rename(tmp_path, monkeypatch):
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append("fsync-folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(a, b):
        calls.append("rename")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic.write_bytes_atomic(tmp_path / "x.bin", b"data")
    assert calls == ["fsync-file", "rename", "fsync-folder"]
    assert (tmp_path / "x.bin").read_bytes() == b"data"


def test_a_linked_subfolder_is_named_not_silently_skipped(tmp_path, nearest_onnx):
    """Links to folders are not followed (a link back up would loop); each one is named in a line."""
    src, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    save(src / "a.png", gradient(4, 4))
    save(elsewhere / "b.png", gradient(4, 4))
    (src / "ext").symlink_to(elsewhere, target_is_directory=True)
    (src / "loop").symlink_to(src, target_is_directory=True)
    (tmp_path / "out").mkdir()
    (src / "results").symlink_to(tmp_path / "out", target_is_directory=True)  # a shortcut to the outputs
    r = run(src, tmp_path / "out", "--model", nearest_onnx)
    assert r.exit_code == 0 and "1 written" in r.output
    assert f"{src / 'ext'}: a link to a folder, not followed (give it as an input" in r.output, r.output
    assert f"{src / 'loop'}: a link back into the input folder, not followed" in r.output, r.output
    assert f"{src / 'results'}: a link into the output folder, not followed" in r.output, r.output


@pytest.mark.parametrize("spec", ["folder", "glob"])
def test_linked_files_into_the_outputs_are_not_read_and_dangling_ones_fail(tmp_path, nearest_onnx, spec):
    """A link to an output would be upscaled again (x4 of an x4); a link to nothing must not vanish."""
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "a.png", gradient(4, 4))
    (src / "up").symlink_to(tmp_path, target_is_directory=True)
    assert run(src, out, "--model", nearest_onnx).exit_code == 0
    (src / "again.png").symlink_to(out / "a.png")
    (src / "gone.png").symlink_to(tmp_path / "nowhere.png")
    r = run(src if spec == "folder" else f"{src}/*.png", out, "--model", nearest_onnx, "--overwrite")
    assert r.exit_code == 1 and "1 written, 0 skipped, 1 failed" in r.output, r.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.png"]
    assert f"{src / 'again.png'}: a link into the output folder, not read as an input" in r.output
    assert error_lines(r.output) == [f"error: {src / 'gone.png'}: cannot read (a link to {tmp_path / 'nowhere.png'}, "
                                     "which is missing)"]
    if spec == "folder":
        assert f"{src / 'up'}: a link to a folder that holds the input folder, not followed" in r.output


@pytest.mark.parametrize("where", ["under a file", "read-only", "read-only, existing"])
def test_an_output_folder_that_cannot_be_written_stops_before_any_model_work(tmp_path, nearest_onnx, monkeypatch, where):
    save(tmp_path / "in" / "a.png", gradient(4, 4))
    if where == "under a file":
        (tmp_path / "afile").write_text("")
        out = tmp_path / "afile" / "sub"
    else:
        out = tmp_path / "ro" / "deeper"
        (tmp_path / "ro").mkdir()
        if where.endswith("existing"):
            out.mkdir()
        import tempfile

        real = tempfile.TemporaryFile

        def refuse(*args, dir=None, **kwargs):
            if dir is not None and Path(dir).resolve().is_relative_to((tmp_path / "ro").resolve()):
                raise OSError(30, "Read-only file system")
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    from esrgan.runtime import upscaler

    loads = upscaler.Upscaler.__init__
    monkeypatch.setattr(upscaler.Upscaler, "__init__", lambda *a, **k: pytest.fail("loaded a model"))
    r = run(tmp_path / "in", out, "--model", nearest_onnx)
    assert r.exit_code == 2 and len(error_lines(r.output)) == 1, r.output
    assert str(out) in error_lines(r.output)[0]
    if where.endswith("existing"):  # still unwritable, a rerun over complete outputs only skips them
        assert "cannot write in it (Read-only file system); 1 of 1 outputs" in error_lines(r.output)[0]
        save(out / "a.png", gradient(16, 16))
        r = run(tmp_path / "in", out, "--model", nearest_onnx, "--overwrite")  # every output written again
        assert r.exit_code == 2 and "1 of 1 outputs" in error_lines(r.output)[0], r.output
        monkeypatch.setattr(upscaler.Upscaler, "__init__", loads)
        r = run(tmp_path / "in", out, "--model", nearest_onnx, "--threads", "1")
        assert r.exit_code == 0 and "0 written, 1 skipped" in r.output, r.output
    else:
        assert not (tmp_path / "ro" / "deeper").exists()  # the probe leaves nothing behind


@pytest.mark.parametrize("content", [None, "notes.txt"])
def test_a_folder_without_images_is_one_line_exit_2(tmp_path, nearest_onnx, content):
    (tmp_path / "in").mkdir()
    if content:
        (tmp_path / "in" / content).write_text("not an image")
    r = run(tmp_path / "in", tmp_path / "out", "--model", nearest_onnx)
    assert r.exit_code == 2 and error_lines(r.output) == [f"error: no image in {tmp_path / 'in'} (looked for "
                                                            + error_lines(r.output)[0].split("(looked for ")[1]]
    assert not (tmp_path / "out").exists()


def test_the_output_folder_probe_creates_nothing_and_takes_dotdot(tmp_path, monkeypatch):
    """Shards started together make the same folder at once: the probe must not make (or remove) it."""
    from esrgan.runtime.paths import check_writable_folder

    check_writable_folder(tmp_path / "a" / "b", [])
    assert not (tmp_path / "a").exists()
    monkeypatch.chdir(tmp_path)
    check_writable_folder(Path("nx/../ny"), [])  # through a folder that does not exist
    assert not (tmp_path / "nx").exists() and not (tmp_path / "ny").exists()


def test_what_lies_in_the_output_folder_is_set_aside_only_when_reached_through_a_link(tmp_path, nearest_onnx):
    """An input folder inside the output folder is read; a link to an output that does not exist yet is
    set aside all the same; a link loop is an input that fails in one line, not a traceback."""
    proj = tmp_path / "proj"
    save(proj / "originals" / "a.png", gradient(4, 4))
    r = run(proj / "originals", proj, "--model", nearest_onnx)
    assert r.exit_code == 0 and "1 written" in r.output and (proj / "a.png").is_file(), r.output
    (tmp_path / "projlink").symlink_to(proj, target_is_directory=True)  # the same folders, spelt through a link
    for spelling in ((proj / "originals", tmp_path / "projlink"), (tmp_path / "projlink" / "originals", proj)):
        r = run(*spelling, "--model", nearest_onnx, "--overwrite")
        assert r.exit_code == 0 and "1 written" in r.output and "not read as an input" not in r.output, r.output
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "a.png", gradient(4, 4))
    (src / "z.png").symlink_to(out / "a.png")  # out/ is made by this run
    (src / "loop1.png").symlink_to(src / "loop2.png")
    (src / "loop2.png").symlink_to(src / "loop1.png")
    r = run(src, out, "--model", nearest_onnx)
    assert r.exit_code == 1 and "1 written, 0 skipped, 2 failed" in r.output, r.output
    assert f"{src / 'z.png'}: a link into the output folder, not read as an input" in r.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.png"]
    assert [line.split(": cannot read")[0] for line in error_lines(r.output)] == [
        f"error: {src / 'loop1.png'}", f"error: {src / 'loop2.png'}"]
    (src / "res").symlink_to(out, target_is_directory=True)  # a glob follows linked folders
    r = run(f"{src}/*/*.png", tmp_path / "out2", "--model", nearest_onnx)
    assert f"{src / 'res' / 'a.png'}: a link into the output folder" not in r.output  # out2 is another folder
    r = run(f"{src}/*/*.png", out, "--model", nearest_onnx)
    assert f"{src / 'res' / 'a.png'}: a link into the output folder, not read as an input" in r.output, r.output


def test_max_pixels_governs_pillows_own_bomb_limit(tmp_path, monkeypatch):
    """Pillow refuses past twice its limit when it opens a file, in its own words, and its limit (89 MP)
    could not be raised by --max-pixels: it follows --max-pixels now, for the open alone."""
    from PIL import Image

    save(tmp_path / "big.png", gradient(40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # stands for Pillow's 89 MP
    assert images.read_image(tmp_path / "big.png", max_pixels=10_000).rgb.shape[:2] == (40, 40)
    assert images.read_image(tmp_path / "big.png", max_pixels=0).rgb.shape[:2] == (40, 40)
    with pytest.raises(images.ImageError) as err:  # 1600 > 2 x 500: refused by Pillow at open
        images.read_image(tmp_path / "big.png", max_pixels=500)
    assert str(err.value) == f"{tmp_path / 'big.png'}: 1600 pixels is more than --max-pixels 500"
    assert Image.MAX_IMAGE_PIXELS == 100  # the module's limit is put back
