"""Which files to read and where each output goes: inputs, mirrored tree, collisions, shards, reruns.

Everything here is decided before any pixel is decoded, so that a rerun or another shard makes
exactly the same decisions.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from esrgan.atomic import is_temp_file, remove_if_stale, temp_target
from esrgan.errors import UsageError
from esrgan.runtime.images import FORMATS, IMAGE_SUFFIXES, SAME_FORMAT, WRITE_SUFFIXES

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


@dataclass
class Inputs:
    """What INPUT (a folder, a file or a glob) names: the files, and the folders that could not be listed."""

    root: Path  # the folder the output tree mirrors
    files: list[Path]
    unreadable: list[str] = field(default_factory=list)  # one line per folder that could not be listed
    pattern: tuple[str, ...] | None = None  # a glob's components below ``root``
    links: list[Path] = field(default_factory=list)  # links to folders met and not followed


@dataclass
class Plan:
    """Jobs for this shard, one note per disambiguated name clash, and the unreadable folders."""

    jobs: list[Job]
    notes: list[str]
    unreadable: list[str]
    folder: Path | None = None  # the output folder; None when OUTPUT is one image file


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
    # surrogateescape: a file name that is not valid UTF-8 still has one stable shard.
    digest = hashlib.sha1(relative.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0]


def find_inputs(spec: str) -> Inputs:
    """The inputs of a folder (recursive), a file or a glob (``**`` for any depth), sorted.

    Folders are listed here rather than by ``glob``/``rglob``, which skip a folder they cannot read
    without a word: such a folder is reported instead, and the run ends with exit code 1.
    """
    unreadable: list[str] = []

    @functools.cache  # a "**" pattern visits a folder more than once: list (and report) it once
    def entries(folder: Path) -> list[os.DirEntry[str]]:
        return _entries(folder, unreadable)

    if any(c in spec for c in _GLOB_CHARS) and not Path(spec).exists():
        parts = Path(spec).parts
        first = next(i for i, part in enumerate(parts) if _has_magic(part))
        root = Path(*parts[:first]) if first else Path(".")
        pattern = parts[first:] + (("*",) if parts[-1] == "**" else ())
        files = sorted({f for f in _glob(root, pattern, entries) if _is_candidate(f)})
        if not files and not unreadable:
            raise UsageError(f"no image matches {spec!r}")
        return Inputs(root, files, unreadable, pattern)
    path = Path(spec)
    if path.is_file():
        return Inputs(path.parent, [path])
    if path.is_dir():
        links: list[Path] = []
        files = sorted(f for f in _walk(path, entries, links) if _is_candidate(f))
        if not files and not unreadable:
            not_followed = f"; links to folders are not followed: {', '.join(map(str, links))}" if links else ""
            raise UsageError(f"no image in {spec} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}){not_followed}")
        return Inputs(path, files, unreadable, links=sorted(links))
    raise UsageError(f"{spec}: no such file or folder")


def _is_candidate(path: Path) -> bool:
    """Image-like names only; hidden files and our own temp files are never inputs."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and not is_temp_file(path)


def _has_magic(part: str) -> bool:
    return any(c in part for c in _GLOB_CHARS)


def _entries(folder: Path, unreadable: list[str]) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        unreadable.append(f"{folder}: cannot list this folder ({exc.strerror or exc}): its images were not read")
        return []


def _is_dir(entry: os.DirEntry[str], follow: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _is_dangling(entry: os.DirEntry[str]) -> bool:
    """A link whose target is missing: kept among the files, so that its read fails and is counted,
    instead of an input vanishing from the run without a word."""
    try:
        return entry.is_symlink() and not os.path.exists(entry.path)
    except OSError:
        return False


def _walk(top: Path, entries: Callable[[Path], list[os.DirEntry[str]]], links: list[Path]) -> Iterator[Path]:
    """Every file below ``top``. Links to folders are not followed (as ``rglob``: a link back up would
    loop, one into the output folder would read outputs): they go into ``links``, to be named."""
    stack = [top]
    while stack:
        for entry in entries(stack.pop()):
            if _is_dir(entry, follow=False):
                stack.append(Path(entry.path))
            elif _is_file(entry) or _is_dangling(entry):
                yield Path(entry.path)
            elif _is_dir(entry, follow=True):
                links.append(Path(entry.path))


def _name_matches(pattern: str, name: str) -> bool:
    """One path component, as ``glob`` matches it: wildcards skip hidden names unless spelt with a dot."""
    if not _has_magic(pattern):
        return name == pattern
    return (not name.startswith(".") or pattern.startswith(".")) and fnmatch.fnmatchcase(name, pattern)


def _glob(folder: Path, pattern: tuple[str, ...], entries: Callable[[Path], list[os.DirEntry[str]]]) -> Iterator[Path]:
    """Files below ``folder`` matching ``pattern`` (components; ``**`` = zero or more folders)."""
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        yield from _glob(folder, rest, entries)
        for entry in entries(folder):
            if not entry.name.startswith(".") and _is_dir(entry, follow=False):
                yield from _glob(Path(entry.path), pattern, entries)
        return
    if not _has_magic(head):
        target = folder / head
        if rest and target.is_dir():
            yield from _glob(target, rest, entries)
        elif not rest and target.is_file():
            yield target
        return
    for entry in entries(folder):
        if _name_matches(head, entry.name):
            if rest and _is_dir(entry, follow=True):
                yield from _glob(Path(entry.path), rest, entries)
            elif not rest and (_is_file(entry) or _is_dangling(entry)):
                yield Path(entry.path)


def _glob_matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Whether a path (components below the glob's root) is one the glob would match."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return _glob_matches(pattern[1:], parts) or (
            bool(parts) and not parts[0].startswith(".") and _glob_matches(pattern, parts[1:]))
    return bool(parts) and _name_matches(pattern[0], parts[0]) and _glob_matches(pattern[1:], parts[1:])


def output_suffix(src: Path, requested: str) -> str:
    """The suffix ``src``'s output gets: the requested format's, or for ``same`` the input's (else PNG)."""
    if requested == "same":
        return WRITE_SUFFIXES[SAME_FORMAT.get(src.suffix.lower(), "PNG")]
    fmt = FORMATS.get(requested.lower())
    if fmt is None:
        raise UsageError(f"--format {requested!r}: expected one of same, {', '.join(FORMATS)}")
    return WRITE_SUFFIXES[fmt]


def output_stem(stem: str, suffix: str) -> str:
    """An output's name without extension: ``NAME_SUFFIX`` as Real-ESRGAN's --suffix, or ``NAME``."""
    return f"{stem}_{suffix}" if suffix else stem


def check_name_suffix(suffix: str) -> None:
    """A --suffix is part of a file name: no folder separators, nothing that is not a name."""
    if any(sep in suffix for sep in ("/", "\\", os.sep)) or suffix.strip() != suffix or suffix in (".", ".."):
        raise UsageError(f"--suffix {suffix!r}: use letters, digits, - or _ (it is appended to each output's name)")


def check_folders(inputs: Inputs, out_dir: Path, recursive_input: bool) -> None:
    """Refuse layouts where outputs would overwrite or be re-read as inputs."""
    r, o = inputs.root.resolve(), out_dir.resolve()
    if r == o:
        raise UsageError(f"the output folder {out_dir} is the input folder: choose another output folder")
    if recursive_input and r in o.parents:
        raise UsageError(
            f"the output folder {out_dir} is inside the input folder {inputs.root}: outputs would be read as "
            "inputs on the next run; choose an output folder outside it"
        )


def check_outputs_are_not_inputs(inputs: Inputs, out_dir: Path, jobs: Iterable[Job], spec: str) -> None:
    """Refuse a glob that would match the outputs it makes (``"in/**/*.png" in/out``), however written.

    Checked on the paths as written and as resolved, so a relative, absolute or linked spelling of the
    same folder cannot slip past.
    """
    if inputs.pattern is None:
        return  # a folder or a file: check_folders has decided
    spellings = [(Path(os.path.abspath(inputs.root)), Path(os.path.abspath(out_dir))),
                 (inputs.root.resolve(), out_dir.resolve())]
    for root, out in spellings:
        if not out.is_relative_to(root):
            continue
        base = out.relative_to(root).parts
        for job in jobs:
            if _glob_matches(inputs.pattern, base + job.dst.relative_to(out_dir).parts):
                raise UsageError(
                    f"{spec!r} also matches the output {job.dst}: outputs would be read as inputs on the next "
                    "run; choose an output folder the pattern does not reach"
                )


def _name_key(path: Path) -> str:
    """Output names compare case-insensitively: macOS, Windows and SMB shares would merge A.png and a.png."""
    return str(path).casefold()


def plan_jobs(
    root: Path, files: list[Path], out_dir: Path, fmt: str, shard: tuple[int, int] | None, *, suffix: str,
) -> tuple[list[Job], list[str]]:
    """Jobs (mirrored tree, format) for this shard, and one note per disambiguated name clash.

    Every input gets an output name of its own. The plan covers all inputs before the shard is taken,
    so every shard and every rerun gives each file the same name.

    ``fmt``, ``shard`` and ``suffix`` have no defaults here: esrgan-run's are ``RunOptions.format``,
    ``.shard`` and ``.suffix``.
    """
    check_name_suffix(suffix)

    def rel_of(src: Path) -> Path:
        return src.relative_to(root) if src.is_relative_to(root) else Path(src.name)

    wanted = {src: out_dir / rel_of(src).with_name(output_stem(rel_of(src).stem, suffix) + output_suffix(src, fmt))
              for src in files}
    # Of inputs wanting one name, the file already in the output format keeps it (a.png stays a.png).
    claims: dict[str, list[Path]] = {}
    for src in sorted(files, key=lambda f: (f.suffix.lower() != wanted[f].suffix, str(f))):
        claims.setdefault(_name_key(wanted[src]), []).append(src)
    taken = set(claims)  # a wanted name is never given to another input
    dst_of: dict[Path, Path] = {}
    notes: list[str] = []
    for first, *others in claims.values():
        dst_of[first] = wanted[first]
        for src in others:
            # a.png and a.jpg both becoming a.png: keep the source suffix in the second name (a_jpg.png),
            # and number it when even that is taken (a.JPG -> a_jpg_2.png).
            # --suffix stays last: a_jpg_x4.png.
            want = wanted[src]
            base = f"{rel_of(src).stem}_{src.suffix.lstrip('.').lower()}"
            dst, n = want.with_name(output_stem(base, suffix) + want.suffix), 2
            while _name_key(dst) in taken:
                dst, n = want.with_name(output_stem(f"{base}_{n}", suffix) + want.suffix), n + 1
            taken.add(_name_key(dst))
            dst_of[src] = dst
            notes.append(f"{src} and {first} both map to {want}: writing {src.name} as {dst.name}")
    jobs = [Job(src, dst_of[src], FORMATS[dst_of[src].suffix.lstrip(".")])
            for src in files if in_shard(rel_of(src).as_posix(), shard)]
    return jobs, notes


def names_an_image(output: str | os.PathLike[str]) -> bool:
    """OUTPUT is one image file (not a folder) when its name has an image suffix and no folder has it.

    As realesrgan-ncnn-vulkan's ``-o``: ``esrgan-run cat.jpg cat_x4.png`` writes that file. A folder
    that already has such a name (made by a run that took the name for a folder), or a name written
    with a trailing separator (``out.png/``, which ``Path`` would drop), stays a folder.
    """
    text = os.fspath(output)
    if text.endswith(("/", os.sep)):
        return False
    return Path(text).suffix.lower() in IMAGE_SUFFIXES and not Path(text).is_dir()


def plan_single_file(spec: str, inputs: Inputs, out: Path, fmt: str, shard: tuple[int, int] | None,
                     overwrite: bool) -> Plan:
    """One input file into the image file ``out``, in the format its suffix names."""
    if inputs.pattern is not None or not Path(spec).is_file():
        raise UsageError(
            f"OUTPUT {out} names an image file but INPUT {spec} is a folder or a pattern: "
            "give an output folder, or one input file"
        )
    written = SAME_FORMAT.get(out.suffix.lower())
    if written is None:
        raise UsageError(f"OUTPUT {out}: cannot write {out.suffix} files; name it .png, .jpg, .webp, .tif or .bmp")
    if fmt != "same" and FORMATS.get(fmt.lower()) != written:
        raise UsageError(f"--format {fmt} and OUTPUT {out.name} disagree: drop --format, or rename the output")
    (src,) = inputs.files
    if out.resolve() == src.resolve():
        raise UsageError(f"the output {out} is the input file: choose another output name")
    jobs = [Job(src, out, written)] if in_shard(src.name, shard) else []
    check_writable_folder(out.parent, jobs, overwrite)
    return Plan(jobs, [], [])


def plan_run(
    spec: str, out_dir: str | os.PathLike[str], fmt: str, shard: tuple[int, int] | None, *, suffix: str,
    overwrite: bool,
) -> Plan:
    """Everything decided before a model runs: inputs, refused layouts, output names, this shard's jobs.

    ``out_dir`` is a folder, or an image file for a single input file (see ``names_an_image``).
    ``overwrite`` (``RunOptions.overwrite``): every output will be written again, so an output folder
    that cannot be written in is refused even when it holds them all.
    """
    inputs = find_inputs(spec)
    out = Path(out_dir)
    if names_an_image(out_dir):
        return plan_single_file(spec, inputs, out, fmt, shard, overwrite)
    if out.exists() and not out.is_dir():
        raise UsageError(f"OUTPUT {out} is a file: give a folder, or an image file name for one input file")
    check_folders(inputs, out, recursive_input=inputs.pattern is None and Path(spec).is_dir())
    files, outputs = _split_outputs(inputs.files, out, inputs.root)
    jobs, notes = plan_jobs(inputs.root, files, out, fmt, shard, suffix=suffix)
    check_writable_folder(out, jobs, overwrite)
    check_outputs_are_not_inputs(inputs, out, jobs, spec)
    notes = ([_link_note(link, inputs.root, out) for link in inputs.links]
             + [f"{f}: a link into the output folder, not read as an input" for f in outputs] + notes)
    return Plan(jobs, notes, inputs.unreadable, out)


def _split_outputs(files: list[Path], out: Path, root: Path) -> tuple[list[Path], list[Path]]:
    """The inputs, and those that lie in the output folder only through a link (a link to a file, or
    a glob's way through a linked folder): outputs are never read back as inputs (a link in.png ->
    out/in.png would be upscaled again, x16 for an x4 model). Files of an input folder that is itself
    inside the output folder are inputs, however either folder is spelt.

    Real paths come from ``os.path.realpath``, which never raises (a link loop stays an input, whose
    read fails in one line); each folder is resolved once, and a file itself only when it is a link.
    """
    outputs, inputs_root = Path(os.path.realpath(out)), Path(os.path.realpath(root))
    real_folder = functools.cache(os.path.realpath)
    inputs, linked = [], []
    for f in files:
        real = Path(os.path.realpath(f) if f.is_symlink() else os.path.join(real_folder(f.parent), f.name))
        through_link = real.is_relative_to(outputs) and not real.is_relative_to(inputs_root)
        (linked if through_link else inputs).append(f)
    return inputs, linked


def _link_note(link: Path, root: Path, out: Path) -> str:
    """A link to a folder met among the inputs, named for what it leads to: only a folder outside both
    the inputs and the outputs is one someone may have meant to upscale."""
    target, outputs, inputs = link.resolve(), out.resolve(), root.resolve()
    if target.is_relative_to(outputs):
        return f"{link}: a link into the output folder, not followed"
    if target.is_relative_to(inputs):
        return f"{link}: a link back into the input folder, not followed (its images are read where they are)"
    if inputs.is_relative_to(target):
        return f"{link}: a link to a folder that holds the input folder, not followed"
    return f"{link}: a link to a folder, not followed (give it as an input of its own to upscale it)"


def check_writable_folder(out: Path, jobs: list[Job], overwrite: bool = False) -> None:
    """Refuse, before any model loads, an output folder that cannot be made or written in (a path
    through a file, a read-only file system, no permission): else every image would be upscaled, then
    fail to be written.

    Probed with a temporary file that is gone at once: in the folder when it exists, else where it
    would be made, its nearest existing ancestor (shards started together make the same folder at
    once). An unwritable folder that already holds every output is left to the run, unless
    ``overwrite``: a rerun over complete outputs only skips them.
    """
    if out.exists():
        try:
            with tempfile.TemporaryFile(dir=out):
                return
        except OSError as exc:
            missing = len(jobs) if overwrite else sum(not os.path.exists(job.dst) for job in jobs)
            if missing:
                raise UsageError(f"OUTPUT {out}: cannot write in it ({exc.strerror or exc}); {missing} of "
                                 f"{len(jobs)} outputs are still to be written") from None
            return
    folder = out
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"OUTPUT {out}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"OUTPUT {out}: cannot make it in {folder} ({exc.strerror or exc})") from None


def remove_stale_temps(jobs: Iterable[Job]) -> None:
    """Delete temp files that killed runs left for these outputs; a live run's temps are left alone.

    Each output folder is listed once (a per-output glob would make a large flat folder quadratic).
    """
    by_folder: dict[Path, set[str]] = {}
    for job in jobs:
        by_folder.setdefault(job.dst.parent, set()).add(job.dst.name)
    for folder, names in by_folder.items():
        for entry in _entries(folder, []):
            if temp_target(entry.name) in names:
                remove_if_stale(Path(entry.path))
