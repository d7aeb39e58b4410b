"""The README and the docs/ pages link to each other and to reports by relative paths; a moved or renamed
file must not leave a dead link behind."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```", re.S | re.M)  # code blocks: their brackets are code, not links
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(text: str) -> list[str]:
    """Targets of inline Markdown links that point into the repository (no URL, no in-page anchor)."""
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def test_link_extraction_keeps_paths_and_drops_urls_anchors_and_code():
    text = "[a](docs/x.md#y) [`b`](../r/README.md) [c](https://e.org) [d](#here)\n`[e](no.md)`\n```\n[f](no.md)\n```\n"
    assert relative_links(text) == ["docs/x.md#y", "../r/README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(page):
    missing = [t for t in relative_links(page.read_text()) if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_the_readme_links_every_docs_page():
    linked = {(ROOT / t.split("#")[0]).resolve() for t in relative_links((ROOT / "README.md").read_text())}
    assert PAGES[1:], "no docs pages found"
    assert not [p.name for p in PAGES[1:] if p.resolve() not in linked]
