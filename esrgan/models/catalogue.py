"""The catalogue of published generators that every command takes by name (``--model RealESRGAN_x4plus``).

The facts live in ``catalogue.json`` next to this module, one entry per model: official URL(s), byte
size, sha256, licence, architecture, scale, one line of description and where the checksum was read.
This module only reads them and matches what a user typed: names are case-insensitive, ``.pth`` is
optional, the release file name works too, and a close miss gets a did-you-mean. Torch-free: the
runtime resolves ``--model`` with it.
"""

from __future__ import annotations

import difflib
import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from esrgan.errors import ModelError
from esrgan.models.spec import ARCHS

CATALOGUE_FILE = "catalogue.json"
#: Upstream networks esrgan loads through spandrel (``esrgan.models.foreign``), by catalogue name.
SPANDREL_NETWORKS = ("srvggnet-compact",)
#: Every architecture a catalogue entry may name and esrgan loads.
LOADABLE = (*ARCHS, *SPANDREL_NETWORKS)


@dataclass(frozen=True)
class Entry:
    """One published generator.

    ``architecture`` is a ``GeneratorSpec`` arch name (``rrdbnet``...) when esrgan builds the network
    itself, else the upstream network's name (``srvggnet-compact``, loaded through spandrel when it is
    in ``SPANDREL_NETWORKS``), so the listing never claims more than the loader does.
    """

    name: str
    architecture: str
    scale: int
    size: int
    sha256: str
    licence: str
    urls: tuple[str, ...]
    description: str
    checksum_source: str

    @property
    def filename(self) -> str:
        """The release asset's file name, which is also the name it is cached under."""
        return PurePosixPath(urlsplit(self.urls[0]).path).name

    @property
    def loadable(self) -> bool:
        return self.architecture in LOADABLE

    def describe(self) -> str:
        """The ``--list-models`` line: name, architecture, scale, size, licence, URL."""
        return (f"{self.name:<30} {self.architecture:<17} x{self.scale} {self.size / 2**20:6.1f} MiB "
                f"{self.licence:<13} {self.urls[0]}")


@functools.cache
def entries() -> tuple[Entry, ...]:
    """Every catalogue entry, in the file's order (read once per process)."""
    text = resources.files(__package__).joinpath(CATALOGUE_FILE).read_text(encoding="utf-8")
    return tuple(Entry(**{**item, "urls": tuple(item["urls"])}) for item in json.loads(text)["models"])


def _key(text: str) -> str:
    text = text.strip().lower()
    return text[: -len(".pth")] if text.endswith(".pth") else text


def _names() -> dict[str, Entry]:
    """Lower-case names and release file stems (``esrgan_srx4_df2kost_official-ff704c30``) to entries."""
    table: dict[str, Entry] = {}
    for entry in entries():
        table[_key(entry.name)] = entry
        table[_key(entry.filename)] = entry
    return table


def lookup(text: str) -> Entry | None:
    """The entry ``text`` names (any case, with or without ``.pth``), else None."""
    return _names().get(_key(text))


def close_match(text: str) -> str | None:
    """The catalogue name closest to ``text`` when it is close enough to be a typo, else None."""
    names = _names()
    found = difflib.get_close_matches(_key(text), list(names), n=1, cutoff=0.75)
    return names[found[0]].name if found else None


def find(text: str) -> Entry:
    """The entry ``text`` names, or a one-line ModelError with a did-you-mean."""
    entry = lookup(text)
    if entry is not None:
        return entry
    hint = close_match(text)
    guess = f"; did you mean {hint}?" if hint else ""
    raise ModelError(f"{text}: no published model of that name{guess} (esrgan-run --list-models)")


def listing() -> list[str]:
    """One line per entry for ``--list-models``."""
    return [entry.describe() for entry in entries()]
