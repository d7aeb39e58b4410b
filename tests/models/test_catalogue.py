"""The shipped catalogue of published models: every entry complete and well-formed (no network)."""

from __future__ import annotations

import re
from dataclasses import fields
from urllib.parse import urlsplit

from esrgan.models import catalogue
from esrgan.models.spec import ARCHS, SCALES

#: upstream networks the catalogue may list that esrgan loads through spandrel
OTHER_NETWORKS = set(catalogue.SPANDREL_NETWORKS)


def test_every_entry_has_every_fact():
    entries = catalogue.entries()
    assert len(entries) >= 8
    for entry in entries:
        for f in fields(entry):
            assert getattr(entry, f.name), f"{entry.name}: empty {f.name}"
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), entry.name
        assert isinstance(entry.size, int) and entry.size > 0, entry.name
        assert entry.scale in SCALES, entry.name
        assert entry.architecture in set(ARCHS) | OTHER_NETWORKS, entry.name
        for url in entry.urls:
            parts = urlsplit(url)
            assert parts.scheme == "https" and parts.netloc, url
        assert entry.filename.endswith(".pth"), entry.name
        assert "\n" not in entry.description, entry.name


def test_names_and_files_are_unambiguous():
    entries = catalogue.entries()
    for key in ("name", "filename", "sha256"):
        values = [getattr(e, key).lower() for e in entries]
        assert len(set(values)) == len(values), key
    for entry in entries:  # each entry answers to its name and to its release file's name
        assert catalogue.lookup(entry.name) == entry
        assert catalogue.lookup(entry.filename.upper()) == entry


def test_the_official_real_esrgan_and_esrgan_models_are_listed():
    names = {e.name for e in catalogue.entries()}
    assert {"RealESRGAN_x4plus", "RealESRNet_x4plus", "RealESRGAN_x4plus_anime_6B", "RealESRGAN_x2plus",
            "realesr-general-x4v3", "realesr-general-wdn-x4v3", "realesr-animevideov3",
            "ESRGAN_SRx4_DF2KOST_official"} <= names


def test_compact_models_load_through_spandrel():
    compact = [e for e in catalogue.entries() if e.architecture == "srvggnet-compact"]
    assert compact and all(e.loadable for e in compact)
    assert all(e.loadable == (e.architecture in catalogue.LOADABLE) for e in catalogue.entries())
