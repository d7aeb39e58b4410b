"""Which files to read and where each output goes: inputs, mirrored tree, collisions, shards, reruns.

Everything here is decided before any pixel is decoded, so that a rerun or another shard makes
exactly the same decisions.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from esrgan.atomic import TMP_SUFFIX, is_temp_file
from esrgan.errors import UsageError
from esrgan.runtime.images import FORMATS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".jfif", ".tga", ".ppm", ".pgm"}
_SAME = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg", ".jfif": ".jpg", ".webp": ".webp",
         ".tif": ".tif", ".tiff": ".tif", ".bmp": ".bmp"}
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Job:
    """One input file and the output it becomes."""

    src: Path
    dst: Path
    format: str  # Pillow format name to write

    @property
    def name(self) -> str:
        return str(self.src)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> (I, N) with 0 <= I < N (0-based, like Slurm/Kubernetes array indices)."""
    if not text:
        return None
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text!r}: need 0 <= I < N")
    return i, n


def in_shard(relative: str, shard: tuple[int, int] | None) -> bool:
    """Stable: a file's shard depends only on its relative path, not on which other files exist."""
    if shard is None:
        return True
    digest = hashlib.sha1(relative.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0]


def find_inputs(spec: str) -> tuple[Path, list[Path]]:
    """(root the output tree mirrors, sorted input files) for a folder, a file or a glob."""
    if any(c in spec for c in _GLOB_CHARS) and not Path(spec).exists():
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        prefix = spec[: min(spec.index(c) for c in _GLOB_CHARS if c in spec)]
        root = Path(prefix) if prefix.endswith(os.sep) else Path(prefix).parent
        files = [f for f in files if _is_candidate(f)]
        if not files:
            raise UsageError(f"no image matches {spec!r}")
        return root, files
    path = Path(spec)
    if path.is_file():
        return path.parent, [path]
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file() and _is_candidate(f))
        return path, files
    raise UsageError(f"{spec}: no such file or folder")


def _is_candidate(path: Path) -> bool:
    """Image-like names only; hidden files and our own temp files are never inputs."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and not is_temp_file(path)


def output_suffix(src: Path, requested: str) -> str:
    if requested != "same":
        fmt = FORMATS.get(requested.lower())
        if fmt is None:
            raise UsageError(f"--format {requested!r}: expected same, png, jpg, webp, tif or bmp")
        return "." + {"JPEG": "jpg", "TIFF": "tif"}.get(fmt, fmt.lower())
    return _SAME.get(src.suffix.lower(), ".png")


def output_stem(stem: str, suffix: str) -> str:
    """An output's name without extension: ``NAME_SUFFIX`` as Real-ESRGAN's --suffix, or ``NAME``."""
    return f"{stem}_{suffix}" if suffix else stem


def check_name_suffix(suffix: str) -> None:
    """A --suffix is part of a file name: no folder separators, nothing that is not a name."""
    if any(sep in suffix for sep in ("/", "\\", os.sep)) or suffix.strip() != suffix or suffix in (".", ".."):
        raise UsageError(f"--suffix {suffix!r}: use letters, digits, - or _ (it is appended to each output's name)")


def check_folders(root: Path, out_dir: Path, recursive_input: bool) -> None:
    """Refuse layouts where outputs would overwrite or be re-read as inputs."""
    r, o = root.resolve(), out_dir.resolve()
    if r == o:
        raise UsageError(f"the output folder {out_dir} is the input folder: choose another output folder")
    if recursive_input and r in o.parents:
        raise UsageError(
            f"the output folder {out_dir} is inside the input folder {root}: outputs would be read as inputs "
            "on the next run; choose an output folder outside it"
        )


def plan_jobs(
    root: Path, files: list[Path], out_dir: Path, fmt: str, shard: tuple[int, int] | None, *, suffix: str,
) -> tuple[list[Job], list[str]]:
    """Jobs (mirrored tree, format) for this shard, and one note per disambiguated name collision.

    ``fmt``, ``shard`` and ``suffix`` have no defaults here: esrgan-run's are ``RunOptions.format``,
    ``.shard`` and ``.suffix``.
    """
    check_name_suffix(suffix)
    jobs: list[Job] = []
    notes: list[str] = []
    taken: dict[Path, Path] = {}

    def rel_of(src: Path) -> Path:
        return src.relative_to(root) if src.is_relative_to(root) else Path(src.name)

    # Of colliding names, the file already in the output format keeps its name (a.png stays a.png).
    ordered = sorted(files, key=lambda f: (rel_of(f).with_suffix("").as_posix(), f.suffix.lower() != output_suffix(f, fmt)))
    for src in ordered:
        rel = rel_of(src)
        ext = output_suffix(src, fmt)
        first = out_dir / rel.with_name(output_stem(rel.stem, suffix) + ext)
        dst = first
        if dst in taken:
            # a.png and a.jpg both becoming a.png: keep the source suffix in the second name.
            stem = output_stem(f"{rel.stem}{src.suffix.lower().replace('.', '_')}", suffix)
            dst = out_dir / rel.with_name(stem + ext)
            notes.append(f"{src} and {taken[first]} both map to {first}: writing {src.name} as {dst.name}")
        taken[dst] = src
        if in_shard(rel.as_posix(), shard):
            jobs.append(Job(src, dst, FORMATS[ext.lstrip(".")]))
    return jobs, notes


def is_complete(path: Path) -> bool:
    """An existing output a rerun may keep: non-empty and its image data intact."""
    try:
        if path.stat().st_size == 0:
            return False
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:
        return False


def remove_stale_temps(dst: Path) -> None:
    """Delete temp files a killed run left for ``dst`` (``.name.XXXX.tmp``)."""
    if dst.parent.is_dir():
        for stale in dst.parent.glob(f".{glob.escape(dst.name)}.*{TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
