"""A seeded corpus of damaged files of every supported format through one esrgan-run.

Whatever the damage, each input must end either written (and decodable at 4x its size) or named
in exactly one error line; the summary's counts and the exit code must agree with that; no
traceback, no temp file left. The corpus is small images, so the whole run takes seconds.
"""

from __future__ import annotations

import io
import random
import re
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from esrgan.runtime import images, paths
from esrgan.runtime.manifest import MANIFEST_NAME
from tests.runtime.conftest import gradient
from tests.runtime.test_run_cli import run

SEED = 0
MUTANTS_PER_FILE = 6  # besides the intact original
RUNNING_DOC = Path(__file__).resolve().parents[2] / "docs" / "running.md"


def _pillow(arr: np.ndarray, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **params)
    return buf.getvalue()


def _png16(arr: np.ndarray) -> bytes:
    import png

    h, w, c = arr.shape
    buf = io.BytesIO()
    png.from_array(arr.reshape(h, w * c), {1: "L;16", 3: "RGB;16", 4: "RGBA;16"}[c]).write(buf)
    return buf.getvalue()


def _tiff(arr: np.ndarray, **params) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **params)
    return buf.getvalue()


def originals() -> dict[str, bytes]:
    """One small valid file per format and layout the runtime reads."""
    rgb, rgba, grey = gradient(12, 16), gradient(12, 16, channels=4), gradient(12, 16, channels=1)
    deep = (rgb.astype(np.uint16) * 257) ^ 0x5A5A
    exif = Image.Exif()
    exif[0x0112] = 6
    gif = io.BytesIO()
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(gif, "GIF")
    return {
        "rgb.png": _pillow(rgb, "PNG"),
        "rgba.png": _pillow(rgba, "PNG"),
        "grey.png": _pillow(grey, "PNG"),
        "deep.png": _png16(deep),
        "deepgrey.png": _pillow(deep[..., 0], "PNG"),
        "photo.jpg": _pillow(rgb, "JPEG", quality=90),
        "turned.jpg": _pillow(rgb, "JPEG", quality=90, exif=exif.tobytes()),
        "flat.tif": _pillow(rgb, "TIFF", compression="tiff_deflate"),
        "deep.tif": _tiff(deep, photometric="rgb", compression="zlib"),
        "planar.tif": _tiff(np.ascontiguousarray(np.moveaxis(deep, 2, 0)), photometric="rgb", planarconfig="separate"),
        "lossy.webp": _pillow(rgba, "WEBP", quality=80),
        "plain.bmp": _pillow(rgb, "BMP"),
        "palette.gif": gif.getvalue(),
    }


def _png_chunk_damage(data: bytes, rng: random.Random) -> bytes:
    """Garble the compressed pixels but keep every CRC right, so only the decoder can notice."""
    out, pos = bytearray(data[:8]), 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], bytearray(data[pos + 8:pos + 8 + length])
        if kind == b"IDAT" and body:
            for _ in range(3):
                body[rng.randrange(len(body))] = rng.randrange(256)
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + bytes(body)))
        pos += 12 + length
    return bytes(out)


def mutate(data: bytes, rng: random.Random, kind: int, is_png: bool) -> bytes:
    b = bytearray(data)
    if kind == 0:  # a few flipped bits anywhere
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncated
        del b[rng.randrange(1, len(b)):]
    elif kind == 2:  # damaged header and metadata
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(min(len(b), 96))] = rng.randrange(256)
    elif kind == 3:  # a block of garbage in the pixel data (PNG: behind valid checksums)
        if is_png:
            return _png_chunk_damage(data, rng)
        start = rng.randrange(len(b) // 2, len(b))
        b[start:start + 24] = bytes(rng.randrange(256) for _ in range(24))
    elif kind == 4:  # bytes inserted
        at = rng.randrange(len(b))
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    else:  # a zeroed stretch
        start = rng.randrange(len(b))
        b[start:start + rng.randint(4, 64)] = bytes(min(len(b) - start, 64))
    return bytes(b)


def write_corpus(folder: Path) -> list[Path]:
    rng = random.Random(SEED)
    folder.mkdir(parents=True)
    written = []
    for name, data in originals().items():
        stem, suffix = name.rsplit(".", 1)
        variants = [data] + [mutate(data, rng, k % 6, suffix == "png") for k in range(MUTANTS_PER_FILE)]
        for i, variant in enumerate(variants):
            path = folder / f"{stem}_{i}.{suffix}"
            path.write_bytes(variant)
            written.append(path)
    return written


def test_every_damaged_file_is_written_or_reported(tmp_path, nearest_onnx):
    src, out = tmp_path / "in", tmp_path / "out"
    inputs = write_corpus(src)
    r = run(src, out, "--model", nearest_onnx, "--max-pixels", "4096", "--tile", "0", "-q")
    assert "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    counts = re.search(r"(\d+) written, (\d+) skipped, (\d+) failed", r.output)
    assert counts, r.output
    written, skipped, failed = map(int, counts.groups())
    assert skipped == 0 and written + failed == len(inputs) and failed == len(errors)
    assert r.exit_code == (1 if errors else 0)
    expected_outputs = set()
    for src_file in inputs:
        named = [line for line in errors if line.startswith(f"error: {src_file}: ")]
        dst = out / (src_file.stem + paths.output_suffix(src_file, "same"))
        if named:
            assert len(named) == 1 and not dst.exists(), src_file
            continue
        expected_outputs.add(dst)
        assert images.is_intact(dst, images.FORMATS[dst.suffix[1:]]), dst
        with Image.open(src_file) as before, Image.open(dst) as after:
            w, h = before.size
            assert after.size in ((4 * w, 4 * h), (4 * h, 4 * w)), src_file
    # nothing else (but the folder's record of settings), no temp file
    assert set(out.iterdir()) == expected_outputs | {out / MANIFEST_NAME}
    # The originals all pass, and the damage is real: a good share of the mutants is refused.
    assert all(out.joinpath(p.stem + paths.output_suffix(p, "same")).exists() for p in inputs if p.stem.endswith("_0"))
    assert failed >= len(inputs) // 4


def test_docs_state_the_corpus_size():
    count = len(originals()) * (1 + MUTANTS_PER_FILE)
    assert f"{count} damaged and intact files" in RUNNING_DOC.read_text()


def test_a_file_the_system_refuses_is_reported_as_unreadable(tmp_path, monkeypatch):
    """Root reads any file, so the refusal is made where the image is opened."""
    import pytest

    from esrgan.errors import ImageError

    path = tmp_path / "a.png"
    Image.fromarray(gradient(8, 8)).save(path)

    def refuse(fp, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(fp))

    monkeypatch.setattr(images.Image, "open", refuse)
    with pytest.raises(ImageError) as err:
        images.read_image(path)
    assert str(err.value) == f"{path}: cannot read (permission denied)"


def _damaged_deflate_tiff(path: Path) -> None:
    """A deflate-compressed TIFF (decoded by Pillow through libtiff) whose compressed strip is garbled.

    Noise, so that the strip (after the 8-byte header) spans the garbled bytes.
    """
    noise = np.random.default_rng(SEED).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, compression="tiff_adobe_deflate")
    data = bytearray(path.read_bytes())
    for i in range(200, 400):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def test_libtiff_says_its_reason_in_the_files_one_line_not_on_stderr(tmp_path, capfd, monkeypatch):
    """libtiff prints to the process's stderr (through any progress bar) unless a handler keeps it."""
    import pytest

    from esrgan.errors import ImageError

    monkeypatch.delenv("ESRGAN_DEBUG", raising=False)
    path = tmp_path / "bad.tif"
    _damaged_deflate_tiff(path)
    capfd.readouterr()
    with pytest.raises(ImageError) as err:
        images.read_image(path)
    assert str(err.value).startswith(f"{path}: cannot decode (")
    assert "libtiff: ZIPDecode: " in str(err.value)
    assert capfd.readouterr().err == ""
    # an intact compressed TIFF still decodes, and says nothing
    good = tmp_path / "good.tif"
    Image.fromarray(gradient(40, 50)).save(good, compression="tiff_adobe_deflate")
    assert images.read_image(good).size == (40, 50)  # height, width
    assert capfd.readouterr().err == ""


def test_with_debug_libtiff_prints_as_it_would(tmp_path, capfd, monkeypatch):
    import pytest

    from esrgan.errors import ImageError

    monkeypatch.setenv("ESRGAN_DEBUG", "1")
    path = tmp_path / "bad.tif"
    _damaged_deflate_tiff(path)
    capfd.readouterr()
    with pytest.raises(ImageError):
        images.read_image(path)
    assert "ZIPDecode" in capfd.readouterr().err


def test_libtiffs_internal_file_name_stays_out_of_the_line(tmp_path, monkeypatch):
    """Some libtiff messages name the file, which for Pillow is its own "tempfile.tif", not the user's."""
    import pytest

    from esrgan.errors import ImageError

    monkeypatch.delenv("ESRGAN_DEBUG", raising=False)
    path = tmp_path / "x.tif"
    noise = np.random.default_rng(SEED).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, compression="tiff_lzw")
    data = bytearray(path.read_bytes())
    data[30:120] = b"\xff" * 90
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as err:
        images.read_image(path)
    assert "tempfile" not in str(err.value) and "libtiff: " in str(err.value), str(err.value)
