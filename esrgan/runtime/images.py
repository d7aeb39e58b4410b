"""Reading and writing images as users have them: modes, bit depths, orientation, metadata.

The model only ever sees RGB float planes in [0, 1]; this module turns any supported file into such
planes (``read_image``) and the model's integer output back into the file's own layout
(``assemble`` + ``write_image``). Pillow does almost everything; it cannot hold 16-bit RGB, so
16-bit PNGs go through pypng and 16-bit TIFFs through tifffile (both small, numpy-only packages),
which keeps their full precision through the model.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import (
    BmpImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from esrgan.atomic import write_atomic
from esrgan.errors import ImageError, first_line
from esrgan.runtime import libtiff_errors

# tifffile logs each damaged tag it skips; with no handler anywhere Python would print those records
# raw on stderr. A NullHandler keeps them for applications that configure logging, and quiet otherwise.
logging.getLogger("tifffile").addHandler(logging.NullHandler())

DEFAULT_MAX_PIXELS = 50_000_000  # input pixels; x4 makes an 800 MP output
# Luma weights of ITU-R BT.601, the ones Pillow uses for RGB -> L: the grey output matches what
# Pillow would make of the RGB output.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
EXIF_ORIENTATION = 0x0112

# The one list of image file names: what is written, what is read, and how the two map.
# --format name -> Pillow format name.
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF", "bmp": "BMP"}
# Pillow format name -> the suffix its outputs get.
WRITE_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
# Input suffix -> the format ``--format same`` writes; any other readable input is written as PNG.
SAME_FORMAT = {**{f".{name}": fmt for name, fmt in FORMATS.items()}, ".jfif": "JPEG"}
# Suffixes read as images (everything else in a folder is ignored): the writable ones plus a few
# more that Pillow reads (written as PNG).
IMAGE_SUFFIXES = frozenset({*SAME_FORMAT, ".gif", ".tga", ".ppm", ".pgm"})
# Pillow format name -> its reader, for checking our own outputs (see is_intact).
_OPENERS = {"PNG": PngImagePlugin.PngImageFile, "JPEG": JpegImagePlugin.JpegImageFile,
            "WEBP": WebPImagePlugin.WebPImageFile, "TIFF": TiffImagePlugin.TiffImageFile,
            "BMP": BmpImagePlugin.BmpImageFile}
_NO_ALPHA = {"JPEG", "BMP"}
_SIXTEEN_BIT = {"PNG", "TIFF"}


@dataclass
class Decoded:
    """One input image, split into what the model runs on and what is carried around it."""

    rgb: np.ndarray  # H x W x 3 float32 in [0, 1]
    alpha: np.ndarray | None  # H x W float32 in [0, 1], None for opaque modes
    mode: str  # layout to write back: "RGB" | "RGBA" | "L" | "LA" | "CMYK"
    bits: int  # 8 or 16 per channel
    format: str  # Pillow's name of the source format ("PNG", "JPEG", ...)
    icc_profile: bytes | None = None
    exif: bytes | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.rgb.shape[0], self.rgb.shape[1]

    @property
    def dtype(self) -> type:
        return np.uint16 if self.bits == 16 else np.uint8

    @property
    def alpha_varies(self) -> bool:
        """A non-constant alpha is worth the model (sharp edges); a constant one is just resized."""
        return self.alpha is not None and float(self.alpha.min()) != float(self.alpha.max())

    def planes(self) -> list[np.ndarray]:
        """What the model runs on: the colour, and the alpha as grey RGB when it varies."""
        out = [self.rgb]
        if self.alpha_varies:
            assert self.alpha is not None
            out.append(np.repeat(self.alpha[..., None], 3, axis=2))
        return out


def _png_bit_depth(path: Path) -> int:
    """The bit depth in a PNG's IHDR (Pillow silently reduces 16-bit RGB PNGs to 8 bits)."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    return head[24] if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" else 8


_PILLOW_LIMIT = threading.Lock()


def _open(src: Path, max_pixels: int) -> Image.Image:
    """``Image.open`` under --max-pixels rather than Pillow's own bomb limit, which refuses past twice
    89 MP when the file is opened (before --max-pixels can speak) and cannot be set per call: the
    module's limit is swapped for the open alone, under a lock, as decoding threads open files at once."""
    with _PILLOW_LIMIT:
        before = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels or None  # 0: no limit, as --max-pixels 0 asks
        try:
            return Image.open(src)
        finally:
            Image.MAX_IMAGE_PIXELS = before


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    """Decode ``path`` into model planes; raise ``ImageError`` (file + reason) for anything unusable."""
    src = Path(path)
    with libtiff_errors.collected() as libtiff:
        return _read(src, max_pixels, libtiff)


def _read(src: Path, max_pixels: int, libtiff: list[str]) -> Decoded:
    try:
        if src.stat().st_size == 0:
            raise ImageError(f"{src}: empty file")
        with warnings.catch_warnings():
            # We enforce our own --max-pixels below; Pillow's warning would only be noise. So are its
            # warnings about damaged metadata it skips (two raw lines each): the pixels still decode, or
            # the file fails in one line.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
            with _open(src, max_pixels) as img:
                w, h = img.size
                if max_pixels and w * h > max_pixels:
                    raise ImageError(f"{src}: {w}x{h} = {w * h} pixels is more than --max-pixels {max_pixels}")
                frames = getattr(img, "n_frames", 1)
                if frames > 1:
                    raise ImageError(f"{src}: animated image ({frames} frames) is not supported")
                if img.format == "PNG" and _png_bit_depth(src) == 16:
                    return _read_png16(src, img)
                if img.format == "TIFF" and _tiff_is_16(src):
                    return _read_tiff16(src, img)
                return _from_pillow(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses past twice its limit (--max-pixels here) when it opens the file, before the
        # size check above: said as that check says it.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        if found and max_pixels and int(found[1]) > max_pixels:
            raise ImageError(f"{src}: {found[1]} pixels is more than --max-pixels {max_pixels}") from exc
        raise ImageError(f"{src}: {first_line(exc)}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{src}: not an image Pillow can read") from exc
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
            # The file system refused (permission denied, a folder, gone meanwhile): not a decoding fault.
            if isinstance(exc, FileNotFoundError) and os.path.islink(src):
                raise ImageError(f"{src}: cannot read (a link to {os.readlink(src)}, which is missing)") from exc
            raise ImageError(f"{src}: cannot read ({exc.strerror.lower()})") from exc
        # Damaged files make decoders raise almost anything (pypng ChunkError, zlib.error, TypeError
        # from a fuzzed TIFF header...): whatever it is, it is this one file's failure. What libtiff
        # found, if it decoded the file, says more than Pillow's "decoder error -2".
        detail = f"{reason(exc)}; libtiff: {libtiff[-1]}" if libtiff else reason(exc)
        raise ImageError(f"{src}: cannot decode ({detail})") from exc


def reason(exc: BaseException) -> str:
    """One line for a failure; the exception's type too unless it is the usual OSError."""
    name = type(exc).__name__
    line = first_line(exc) if str(exc).strip() else ""
    if not line:
        return name
    return line if type(exc) is OSError or line.startswith(name) else f"{name}: {line}"


def is_intact(path: str | os.PathLike[str], fmt: str) -> bool:
    """True when ``path`` exists, is a ``fmt`` file (Pillow's name) and decodes to its end.

    A rerun keeps such an output. ``verify()`` alone reads no JPEG, WebP or BMP pixel data, so those
    are decoded: JPEG at 1/8 scale (every byte is still read, for 1/64 of the memory). PNG's
    ``verify()`` checks every chunk's checksum up to the end marker, which is enough. The plugin
    classes are used directly: ``Image.open``'s decompression-bomb limit is meant for inputs, and
    outputs are scale^2 times larger.
    """
    target = Path(path)
    try:
        if target.stat().st_size == 0:
            return False
        with libtiff_errors.collected(), _OPENERS[fmt](target) as img:  # a damaged output is rewritten, not reported
            if fmt == "PNG":
                img.verify()
                return True
            if fmt == "JPEG":
                img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
        return True
    except Exception:
        # Pillow reads neither 16-bit grey + alpha TIFFs nor huge TIFFs past its bomb limit.
        return fmt == "TIFF" and _tiff_intact(target)


def _tiff_intact(path: Path) -> bool:
    """Whether tifffile decodes a first page: a file cut before its directory (Pillow writes it last)
    has none, and ``tifffile.imread`` returns nothing for it rather than raising."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return len(tif.pages) > 0 and tif.pages[0].asarray().size > 0
    except Exception:
        return False


# TIFF tags that are not the picture's EXIF: how the input's pixel data is laid out (size, strips,
# tiles, compression, samples; the ICC profile is carried on its own), and applications' private blocks
# (XMP, IPTC, Photoshop's image resources and layers, up to megabytes: a JPEG's EXIF holds 64 kB).
# Pillow's getexif() of a TIFF file returns them all; in an output of another size and format they are
# false or too large.
_NOT_EXIF_TAGS = frozenset({254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 317,
                            320, 322, 323, 324, 325, 338, 339, 340, 341, 530, 531, 532, 32997, 32998, 34675,
                            700, 33723, 34377, 37724})
_SUB_IFDS = (0x8769, 0x8825)  # the Exif and GPS sections
_JPEG_EXIF_BYTES = 65533  # one APP1 segment


def _metadata(img: Image.Image) -> tuple[bytes | None, bytes | None]:
    """ICC profile and EXIF with the orientation reset: call it after the pixels are turned upright (it
    sets the orientation of ``img``'s EXIF to upright)."""
    icc = img.info.get("icc_profile") or None
    exif = img.getexif()
    for tag in _NOT_EXIF_TAGS & set(exif):
        del exif[tag]
    if not exif and not any(exif.get_ifd(ifd) for ifd in _SUB_IFDS):
        return icc, None
    if EXIF_ORIENTATION in exif:
        exif[EXIF_ORIENTATION] = 1
    return icc, exif.tobytes()


def _from_pillow(img: Image.Image) -> Decoded:
    fmt = img.format or "PNG"
    upright = ImageOps.exif_transpose(img)
    icc, exif = _metadata(img)  # the file's own: a turned copy of a TIFF file has no EXIF
    img = upright
    mode = img.mode
    bits = 8
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode in ("1",):
        img = img.convert("L")
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        arr16 = np.asarray(img, dtype=np.uint16 if mode.startswith("I;16") else np.int32)
        grey = np.clip(arr16, 0, 65535).astype(np.float32) / 65535.0
        return Decoded(np.repeat(grey[..., None], 3, axis=2), None, "L", 16, fmt, icc, exif)
    elif mode == "CMYK":
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        return Decoded(rgb, None, "CMYK", 8, fmt, icc, exif)
    elif mode == "F":
        raise ImageError(f"{getattr(img, 'filename', '')}: floating-point images are not supported")
    elif mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "A" in mode else "RGB")
    mode = img.mode
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if mode == "L":
        return Decoded(np.repeat(arr[..., None], 3, axis=2), None, "L", bits, fmt, icc, exif)
    if mode == "LA":
        return Decoded(np.repeat(arr[..., :1], 3, axis=2), arr[..., 1].copy(), "LA", bits, fmt, icc, exif)
    if mode == "RGBA":
        return Decoded(np.ascontiguousarray(arr[..., :3]), arr[..., 3].copy(), "RGBA", bits, fmt, icc, exif)
    return Decoded(arr, None, "RGB", bits, fmt, icc, exif)


def _split16(arr: np.ndarray, fmt: str, icc: bytes | None, exif: bytes | None) -> Decoded:
    """HxWxC uint16 (C = 1..4) -> Decoded, 16 bits kept."""
    f = arr.astype(np.float32) / 65535.0
    channels = f.shape[2]
    if channels == 1:
        return Decoded(np.repeat(f, 3, axis=2), None, "L", 16, fmt, icc, exif)
    if channels == 2:
        return Decoded(np.repeat(f[..., :1], 3, axis=2), f[..., 1].copy(), "LA", 16, fmt, icc, exif)
    rgb = np.ascontiguousarray(f[..., :3])
    return Decoded(rgb, f[..., 3].copy() if channels == 4 else None, "RGBA" if channels == 4 else "RGB", 16,
                   fmt, icc, exif)


def _read_png16(src: Path, img: Image.Image) -> Decoded:
    import png

    with open(src, "rb") as fh:  # pypng's own open (filename=) is closed only when collected
        width, height, rows, info = png.Reader(file=fh).asDirect()
        arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, info["planes"])
    _check_shape(src, arr, img)
    arr = _orient(arr, img)  # PNG's eXIf chunk can rotate too
    icc, exif = _metadata(img)
    return _split16(arr, "PNG", icc, exif)


def _tiff_is_16(src: Path) -> bool:
    import tifffile

    with tifffile.TiffFile(src) as tif:
        return tif.pages[0].dtype == np.uint16


def _read_tiff16(src: Path, img: Image.Image) -> Decoded:
    """Height x width x samples by the file's own axes (planar files store samples first)."""
    import tifffile

    with tifffile.TiffFile(src) as tif:
        series = tif.series[0]
        arr, axes = series.asarray(), series.axes
    shape = arr.shape
    for i in reversed(range(arr.ndim)):
        if axes[i] not in "YXS":
            if arr.shape[i] != 1:
                raise ImageError(f"{src}: 16-bit TIFF with axes {series.axes} {shape} is not supported")
            arr, axes = arr.squeeze(i), axes[:i] + axes[i + 1:]
    if "S" not in axes:
        arr, axes = arr[..., None], axes + "S"
    if sorted(axes) != sorted("YXS"):
        raise ImageError(f"{src}: 16-bit TIFF with axes {series.axes} {shape} is not supported")
    arr = arr.transpose([axes.index(a) for a in "YXS"])
    if arr.shape[2] > 4:
        raise ImageError(f"{src}: 16-bit TIFF with {arr.shape[2]} samples per pixel is not supported")
    _check_shape(src, arr, img)
    arr = _orient(arr, img)
    icc, exif = _metadata(img)
    return _split16(arr, "TIFF", icc, exif)


def _check_shape(src: Path, arr: np.ndarray, img: Image.Image) -> None:
    """The 16-bit readers must agree with the header Pillow read: never upscale a misread layout."""
    if arr.shape[:2] != (img.height, img.width):
        raise ImageError(f"{src}: pixel data is {arr.shape[1]}x{arr.shape[0]} but the header says "
                         f"{img.width}x{img.height}")


def _orient(arr: np.ndarray, img: Image.Image) -> np.ndarray:
    """Apply the EXIF orientation to a numpy image (the 16-bit paths bypass Pillow's pixels)."""
    orientation = img.getexif().get(EXIF_ORIENTATION, 1)
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
           7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1], 8: lambda a: a.transpose(1, 0, 2)[::-1]}
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


# ---- from model output back to the file's layout -----------------------------------------------

def resize_alpha(alpha: np.ndarray, size: tuple[int, int], dtype: type) -> np.ndarray:
    """Bicubic upscaling of a (constant) alpha plane to (height, width), as integers."""
    h, w = size
    maxval = float(np.iinfo(dtype).max)
    if float(alpha.min()) == float(alpha.max()):
        return np.full((h, w), round(float(alpha.flat[0]) * maxval), dtype=dtype)
    up = np.asarray(Image.fromarray(alpha.astype(np.float32)).resize((w, h), Image.Resampling.BICUBIC))
    return np.clip(up * maxval + 0.5, 0, maxval).astype(dtype)


def assemble(decoded: Decoded, rgb_out: np.ndarray, alpha_out: np.ndarray | None) -> np.ndarray:
    """Model outputs (integer HxWx3, alpha HxW or HxWx3) -> the final HxWxC array in the input's layout."""
    dtype = rgb_out.dtype
    if alpha_out is not None and alpha_out.ndim == 3:
        # The alpha went through the model as grey RGB: average the three (nearly equal) channels.
        alpha_out = alpha_out.mean(axis=2, dtype=np.float32).round().astype(dtype)
    if decoded.mode in ("L", "LA"):
        grey = np.tensordot(rgb_out, LUMA, axes=([2], [0]))
        grey = np.clip(grey.round(), 0, np.iinfo(dtype).max).astype(dtype)[..., None]
        if decoded.mode == "L":
            return grey
        assert alpha_out is not None
        return np.concatenate([grey, alpha_out[..., None]], axis=2)
    if decoded.mode == "RGBA":
        assert alpha_out is not None
        return np.concatenate([rgb_out, alpha_out[..., None]], axis=2)
    return rgb_out


def resize_output(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """High-quality (Lanczos) resize of the model's output to (height, width), any channel count/depth.

    Channels are resized separately as float32 ("F" mode), the one Pillow mode that keeps 16-bit
    values and supports every filter.
    """
    h, w = size
    if arr.shape[:2] == (h, w):
        return arr
    maxval = float(np.iinfo(arr.dtype).max)
    out = np.empty((h, w, arr.shape[2]), dtype=arr.dtype)
    for c in range(arr.shape[2]):
        plane = Image.fromarray(arr[..., c].astype(np.float32)).resize((w, h), Image.Resampling.LANCZOS)
        out[..., c] = np.clip(np.asarray(plane) + 0.5, 0, maxval).astype(arr.dtype)
    return out


def write_image(
    path: str | os.PathLike[str], arr: np.ndarray, decoded: Decoded, fmt: str, quality: int
) -> list[str]:
    """Write ``arr`` (the input's layout) atomically as ``fmt``; return notes on what the format lost.

    ``quality`` has no default here: esrgan-run's is ``RunOptions.quality``.
    """
    notes: list[str] = []
    mode = decoded.mode
    if fmt in _NO_ALPHA and mode in ("RGBA", "LA"):
        arr = arr[..., :-1]
        mode = mode[:-1]
        notes.append(f"{fmt} has no alpha channel: alpha dropped")
    if arr.dtype == np.uint16 and fmt not in _SIXTEEN_BIT:
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
        notes.append(f"{fmt} holds 8 bits per channel: reduced from 16")
    with write_atomic(path) as tmp:
        if arr.dtype == np.uint16 and fmt == "PNG":
            _write_png16(tmp, arr, decoded.icc_profile, decoded.exif)
        elif arr.dtype == np.uint16:
            import tifffile

            if decoded.exif:
                notes.append("16-bit TIFF output: EXIF not carried (ICC profile is)")
            tifffile.imwrite(tmp, arr if arr.shape[2] > 1 else arr[..., 0], compression="zlib",
                             photometric="rgb" if arr.shape[2] >= 3 else "minisblack",
                             extrasamples=("unassalpha",) if arr.shape[2] in (2, 4) else None,
                             iccprofile=decoded.icc_profile)
        else:
            exif, lost = _exif_for(fmt, decoded.exif)
            notes += lost
            _write_pillow(tmp, arr, mode, replace(decoded, exif=exif), fmt, quality)
    return notes


def _exif_for(fmt: str, exif: bytes | None) -> tuple[bytes | None, list[str]]:
    """The EXIF a ``fmt`` file can take, and a note on what it cannot. Compressed TIFFs are written by
    libtiff, which refuses the Exif and GPS sections' pointers (Pillow: "Error setting from
    dictionary"); a JPEG's EXIF must fit one 64 kB segment."""
    if not exif:
        return exif, []
    if fmt == "TIFF":
        parsed = Image.Exif()
        parsed.load(exif)
        if any(tag in parsed for tag in _SUB_IFDS):
            for tag in _SUB_IFDS:
                parsed.pop(tag, None)
            return parsed.tobytes() if len(parsed) else None, ["TIFF output: EXIF's Exif and GPS sections not carried"]
    if fmt == "JPEG" and len(exif) > _JPEG_EXIF_BYTES:
        return None, [f"JPEG output: EXIF of {len(exif)} bytes not carried (a JPEG holds {_JPEG_EXIF_BYTES})"]
    return exif, []


# zlib level of PNG outputs: 1, OpenCV's default and so what Real-ESRGAN's cv2.imwrite writes. Measured
# on a 1200x1024 photograph (a x4 output of 300x256) with Pillow: level 6 took 0.33 s and 1225 kB, level 1
# 0.076 s and 1402 kB; an encode runs beside the next image's model on the same cores.
PNG_ZLIB_LEVEL = 1


def _write_png16(path: Path, arr: np.ndarray, icc: bytes | None, exif: bytes | None) -> None:
    """pypng writes the pixels; the ICC (iCCP) and EXIF (eXIf) chunks are added after IHDR."""
    import io
    import zlib

    import png

    h, w, c = arr.shape
    mode = {1: "L;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[c]
    buf = io.BytesIO()
    png.from_array(arr.reshape(h, w * c), mode, info={"compression": PNG_ZLIB_LEVEL}).write(buf)
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    extra = []
    if icc:
        extra.append((b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    if exif:
        extra.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))
    with open(path, "wb") as fh:
        png.write_chunks(fh, chunks[:1] + extra + chunks[1:])


def _write_pillow(path: Path, arr: np.ndarray, mode: str, decoded: Decoded, fmt: str, quality: int) -> None:
    img = Image.fromarray(np.ascontiguousarray(arr[..., 0]) if arr.shape[2] == 1 else arr)  # L/LA/RGB/RGBA inferred
    icc = decoded.icc_profile
    if mode == "CMYK":
        if fmt in ("JPEG", "TIFF"):
            img = img.convert("CMYK")
        else:
            icc = None  # a CMYK profile does not describe the RGB we write
    params: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    if fmt == "JPEG":
        params["subsampling"] = 0 if quality >= 90 else 2  # keep the detail the model made
    if icc and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        params["icc_profile"] = icc
    if decoded.exif and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        params["exif"] = decoded.exif
    if fmt == "PNG":
        params["compress_level"] = PNG_ZLIB_LEVEL
    if fmt == "TIFF":
        params["compression"] = "tiff_deflate"  # lossless, as the 16-bit TIFF path (zlib); Pillow's default stores raw
    img.save(path, format=fmt, **params)


# ---- in-memory images (the Python API) ------------------------------------------------------------

def from_array(arr: np.ndarray) -> Decoded:
    """HxW / HxWxC (C = 1..4) uint8, uint16 or float in [0, 1] -> Decoded (float becomes 16-bit)."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or not 1 <= arr.shape[2] <= 4:
        raise ImageError(f"expected an HxW or HxWxC (C = 1..4) array, got shape {arr.shape}")
    if not arr.shape[0] or not arr.shape[1]:
        raise ImageError(f"an empty image (shape {arr.shape}): nothing to upscale")
    if arr.dtype == np.uint8:
        f, bits = arr.astype(np.float32) / 255.0, 8
    elif arr.dtype == np.uint16:
        f, bits = arr.astype(np.float32) / 65535.0, 16
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():  # else the model's non-finite output would be blamed on its weights
            raise ImageError("the image array holds NaN or infinite values")
        f, bits = np.clip(arr, 0.0, 1.0).astype(np.float32), 16
    else:
        raise ImageError(f"unsupported array dtype {arr.dtype}; expected uint8, uint16 or float in [0, 1]")
    c = f.shape[2]
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
    rgb = np.repeat(f[..., :1], 3, axis=2) if c <= 2 else np.ascontiguousarray(f[..., :3])
    alpha = f[..., -1].copy() if c in (2, 4) else None
    return Decoded(rgb, alpha, mode, bits, "PNG")


def from_pil(img: Image.Image) -> Decoded:
    """A Pillow image (any mode this module reads) -> Decoded, EXIF orientation applied."""
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        raise ImageError(f"animated image ({frames} frames) is not supported")
    return _from_pillow(img)


def to_pil(arr: np.ndarray, decoded: Decoded) -> Image.Image:
    """The assembled output as a Pillow image in the input's mode (16-bit grey as I;16)."""
    if arr.dtype == np.uint16:
        if arr.shape[2] == 1:
            return Image.fromarray(np.ascontiguousarray(arr[..., 0]))  # Pillow infers I;16
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)  # Pillow has no 16-bit RGB
    img = Image.fromarray(np.ascontiguousarray(arr[..., 0]) if arr.shape[2] == 1 else arr)  # L/LA/RGB/RGBA inferred
    if decoded.mode == "CMYK":
        img = img.convert("CMYK")
    if decoded.icc_profile:
        img.info["icc_profile"] = decoded.icc_profile
    return img
