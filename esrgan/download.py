"""Published models by name: download a catalogue entry once into the cache, checked by its sha256.

``resolve_model_argument`` is what every ``--model`` / ``--gan`` / ``--psnr`` passes through: a file that
exists is used as it is; a catalogue name (``RealESRGAN_x4plus``, any case, ``.pth`` optional) becomes
the path of its verified download in ``cache_dir()/models``.

A download streams into a hidden file unique to this process (concurrent shards never write the same
file), is checked against the catalogue's sha256, and only then renamed into place (``os.replace``), so
the cache never holds a partial or wrong file. A dropped connection is resumed with an HTTP Range request
when the server answers 206; an interrupted or failed download is parked as ``.NAME.part`` and the next
run adopts it and resumes. ``ESRGAN_MODEL_MIRROR=URL`` replaces the scheme and host of every official
URL (an internal mirror keeps the same paths). Standard library only (urllib): no new dependency.
Torch-free: the runtime uses it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tqdm import tqdm

from esrgan.atomic import replace_durably
from esrgan.cache import cache_dir, ensure_writable
from esrgan.errors import ModelError, UsageError, first_line
from esrgan.hashing import file_sha256
from esrgan.models import catalogue
from esrgan.models.catalogue import Entry

MIRROR_ENV = "ESRGAN_MODEL_MIRROR"
#: seconds a connect or a read may stall before the attempt counts as dropped
TIMEOUT_S = 30
#: dropped connections resumed (or restarted) within one run before giving up
MAX_RETRIES = 3
_CHUNK = 1 << 20


class _Dropped(Exception):
    """The connection ended before the whole file arrived (the caller resumes)."""


def models_dir() -> Path:
    return cache_dir() / "models"


def model_path(entry: Entry) -> Path:
    """Where ``entry`` is cached, and where to put it by hand when this machine is offline."""
    return models_dir() / entry.filename


def mirrored(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$ESRGAN_MODEL_MIRROR`` (whose path, if any, is prepended)."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return url
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{MIRROR_ENV}={mirror!r}: expected a URL such as https://mirror.example.com")
    original = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + original.path, original.query, ""))


def resolve_model_argument(
    text: str | None, *, progress: bool = True, check: Callable[[str, str], None] | None = None
) -> str | None:
    """The file a ``--model``-like argument means: an existing path as given, a catalogue name downloaded.

    Anything else is returned unchanged (the loader then reports the missing file as before), except a
    bare name close to a catalogue name, which gets a did-you-mean. ``check(filename, sha256)`` runs before
    the download, so that an install that could not use the file refuses before fetching 64 MB.
    """
    if text is None or Path(text).exists():
        return text
    entry = catalogue.lookup(text)
    if entry is None:
        if os.sep in text or "/" in text or catalogue.close_match(text) is None:
            return text
        entry = catalogue.find(text)  # a close miss: raises the did-you-mean
    if not entry.loadable:
        raise ModelError(
            f"{entry.name} is a {entry.architecture} network, which esrgan cannot load yet "
            f"(it loads {', '.join(catalogue.LOADABLE)}): pick another model from esrgan-run --list-models"
        )
    if check is not None:
        check(entry.filename, entry.sha256)
    return str(fetch(entry, progress=progress))


def fetch(entry: Entry, *, progress: bool = True) -> Path:
    """The verified local copy of ``entry``: the cached file, else downloaded now.

    A cached file is re-checked (size, then sha256) every time it is used: a file put there by hand
    gets the same check as a download, no state is kept beside it, and hashing is one streamed read
    (a fraction of a second for 64 MB, small next to loading the model).
    """
    target = model_path(entry)
    if target.is_file():
        if target.stat().st_size != entry.size or file_sha256(target) != entry.sha256:
            raise ModelError(
                f"{target} is not {entry.name} (size or sha256 differs from the catalogue): "
                f"delete it to download again, or replace it with the file from {entry.urls[0]}"
            )
        return target
    ensure_writable(target.parent)  # said before the download, not as a failed connection
    url = mirrored(entry.urls[0])
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    parked = target.with_name(f".{target.name}.part")
    with contextlib.suppress(FileNotFoundError):
        os.rename(parked, part)  # adopt an earlier run's partial download (only one process wins)
    try:
        _download(url, part, entry, progress)
        digest = file_sha256(part)
        if digest != entry.sha256:
            part.unlink()
            raise ModelError(
                f"{entry.name}: the download from {url} has sha256 {digest}, not the catalogue's {entry.sha256}; "
                "nothing was kept"
            )
    except BaseException:
        if part.exists():
            os.replace(part, parked)  # kept for the next run to resume
        raise
    replace_durably(part, target)
    return target


def _download(url: str, part: Path, entry: Entry, progress: bool) -> None:
    """Fill ``part`` with the whole file, resuming after dropped connections; one-line errors."""
    offline = f"download it by hand from {url} and put it at {model_path(entry)}"
    done = part.stat().st_size if part.exists() else 0
    bar = tqdm(total=entry.size, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
               desc=entry.name, file=sys.stderr, dynamic_ncols=True, disable=not progress,
               leave=False)  # a failed download ends in its one error line, not under a stale bar
    reason = ""
    with bar:
        for _ in range(MAX_RETRIES + 1):
            try:
                _attempt(url, part, entry, bar)
                return
            except _Dropped as exc:
                reason = str(exc)
            except urllib.error.HTTPError as exc:
                raise ModelError(f"{entry.name}: {url} answered HTTP {exc.code} {exc.reason}; {offline}") from None
            except (urllib.error.URLError, OSError) as exc:  # no connection: offline, refused, unknown host
                why = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                raise ModelError(f"cannot download {entry.name} ({first_line(why)}): {offline}") from None
        raise ModelError(f"cannot download {entry.name} ({reason}, {MAX_RETRIES + 1} tries): {offline}")


def _attempt(url: str, part: Path, entry: Entry, bar) -> None:  # noqa: ANN001
    """One request: resume ``part`` from its size (HTTP Range) or start it over; raise _Dropped if cut short."""
    done = part.stat().st_size if part.exists() else 0
    if done >= entry.size:  # nothing left to ask for: the checksum decides
        return
    request = urllib.request.Request(url, headers={"User-Agent": "esrgan"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not done:  # 416: the partial is unusable (e.g. the file changed): start over
            raise
        part.unlink()
        bar.reset(total=entry.size)
        raise _Dropped("the server refused to resume") from None
    with response:
        resumed = bool(done) and response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {done}-"):
            part.unlink()
            bar.reset(total=entry.size)
            raise _Dropped("the server resumed at another offset")
        if not resumed:  # a full body (the server ignores ranges, or this is the first request)
            done = 0
            bar.reset(total=entry.size)
        length = response.headers.get("Content-Length")
        expected = done + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as out:
            try:
                while block := response.read(_CHUNK):
                    done += len(block)
                    if done > entry.size:
                        break  # more bytes than the catalogue's size: not this file (the checksum says so)
                    out.write(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:  # reset, timeout, incomplete chunk
                raise _Dropped(f"connection lost after {done} bytes: {first_line(exc)}") from None
    if done > entry.size:
        return
    if expected is not None and done < expected:
        raise _Dropped(f"connection closed after {done} of {expected} bytes")
