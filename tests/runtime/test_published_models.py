"""Published models by name: lookup, verified download into the cache, resume, mirror, and the one-line errors.

Every download comes from a loopback HTTP server this file starts (127.0.0.1, a free port), serving bytes
the test makes, reached through ESRGAN_MODEL_MIRROR; no test touches the internet.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from esrgan import download
from esrgan.errors import ModelError, install_hint
from esrgan.models import catalogue
from esrgan.models.catalogue import Entry
from esrgan.runtime.cli import main
from tests.runtime.conftest import gradient, save

OFFICIAL = "https://releases.example.invalid/owner/project/download/v1"
BODY = bytes(range(256)) * 1200  # 300 KiB: big enough to be cut in the middle


@dataclass
class Served:
    """What the loopback server serves and what it was asked."""

    files: dict[str, bytes] = field(default_factory=dict)
    ranges: bool = True  # honour Range requests with 206
    drop_once: set[str] = field(default_factory=set)  # paths whose first answer stops halfway
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        served: Served = self.server.served  # type: ignore[attr-defined]
        wanted = self.headers.get("Range")
        served.requests.append((self.path, wanted))
        body = served.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = int(wanted.removeprefix("bytes=").split("-")[0]) if wanted and served.ranges else 0
        if wanted and served.ranges:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        rest = body[start:]
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        if self.path in served.drop_once:
            served.drop_once.discard(self.path)
            self.wfile.write(rest[: len(rest) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection dies mid-body
            self.close_connection = True
            return
        self.wfile.write(rest)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch, tmp_path):
    """A loopback server behind ESRGAN_MODEL_MIRROR and a fresh cache folder."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.served = Served()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(download.MIRROR_ENV, f"http://127.0.0.1:{httpd.server_address[1]}")
    yield httpd.served
    httpd.shutdown()
    httpd.server_close()


def make_entry(body: bytes = BODY, name: str = "Tiny_x4", suffix: str = ".pth", **changes) -> Entry:
    entry = Entry(
        name=name, architecture="rrdbnet", scale=4, size=len(body), sha256=hashlib.sha256(body).hexdigest(),
        licence="MIT", urls=(f"{OFFICIAL}/{name}{suffix}",), description="made by the test",
        checksum_source="computed by the test",
    )
    return replace(entry, **changes)


def path_of(entry: Entry) -> str:
    return f"/owner/project/download/v1/{entry.filename}"


@pytest.fixture
def published(monkeypatch):
    """Replace the catalogue with the entries a test gives."""

    def use(*entries: Entry) -> None:
        monkeypatch.setattr(catalogue, "entries", lambda: entries)

    return use


def models_dir_files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "cache" / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---- downloads ----------------------------------------------------------------------------------------------
def test_download_lands_in_the_cache_verified_and_is_reused(server, tmp_path):
    entry = make_entry()
    server.files[path_of(entry)] = BODY
    got = download.fetch(entry, progress=False)
    assert got == tmp_path / "cache" / "models" / "Tiny_x4.pth"
    assert got.read_bytes() == BODY
    assert models_dir_files(tmp_path) == ["Tiny_x4.pth"]  # no temp file left behind
    assert server.requests == [(path_of(entry), None)]
    assert download.fetch(entry, progress=False) == got
    assert len(server.requests) == 1  # the cached copy is used, not downloaded again


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    entry = make_entry()
    server.files[path_of(entry)] = BODY
    server.drop_once.add(path_of(entry))
    got = download.fetch(entry, progress=False)
    assert got.read_bytes() == BODY
    assert server.requests == [(path_of(entry), None), (path_of(entry), f"bytes={len(BODY) // 2}-")]
    assert models_dir_files(tmp_path) == ["Tiny_x4.pth"]


def test_server_without_ranges_restarts_from_zero(server, tmp_path):
    entry = make_entry()
    server.files[path_of(entry)] = BODY
    server.drop_once.add(path_of(entry))
    server.ranges = False
    assert download.fetch(entry, progress=False).read_bytes() == BODY
    assert len(server.requests) == 2


def test_partial_left_by_an_earlier_run_is_resumed(server, tmp_path):
    entry = make_entry()
    server.files[path_of(entry)] = BODY
    folder = tmp_path / "cache" / "models"
    folder.mkdir(parents=True)
    (folder / ".Tiny_x4.pth.part").write_bytes(BODY[:1000])
    assert download.fetch(entry, progress=False).read_bytes() == BODY
    assert server.requests == [(path_of(entry), "bytes=1000-")]
    assert models_dir_files(tmp_path) == ["Tiny_x4.pth"]


@pytest.mark.parametrize("served", [b"x" * len(BODY), BODY + b"more"], ids=["same-size", "too-long"])
def test_wrong_checksum_keeps_nothing(server, tmp_path, served):
    entry = make_entry()
    server.files[path_of(entry)] = served
    with pytest.raises(ModelError) as err:
        download.fetch(entry, progress=False)
    assert "sha256" in str(err.value) and "nothing was kept" in str(err.value) and "\n" not in str(err.value)
    assert models_dir_files(tmp_path) == []


def test_404_is_one_line(server, tmp_path):
    entry = make_entry()
    with pytest.raises(ModelError) as err:
        download.fetch(entry, progress=False)
    message = str(err.value)
    assert "HTTP 404" in message and path_of(entry) in message and "\n" not in message
    assert models_dir_files(tmp_path) == []


def test_connection_refused_says_where_to_put_the_file(monkeypatch, tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(download.MIRROR_ENV, f"http://127.0.0.1:{port}")
    entry = make_entry()
    with pytest.raises(ModelError) as err:
        download.fetch(entry, progress=False)
    message = str(err.value)
    assert f"http://127.0.0.1:{port}{path_of(entry)}" in message
    assert str(tmp_path / "cache" / "models" / "Tiny_x4.pth") in message
    assert "\n" not in message
    assert models_dir_files(tmp_path) == []


def test_wrong_file_in_the_cache_is_refused(server, tmp_path):
    entry = make_entry()
    target = tmp_path / "cache" / "models" / "Tiny_x4.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"y" * len(BODY))
    with pytest.raises(ModelError, match="is not Tiny_x4"):
        download.fetch(entry, progress=False)
    assert server.requests == []


def test_mirror_replaces_scheme_and_host(monkeypatch):
    url = "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    assert download.mirrored(url) == url
    monkeypatch.setenv(download.MIRROR_ENV, "http://mirror.internal:8080/models/")
    assert download.mirrored(url) == (
        "http://mirror.internal:8080/models/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth")


# ---- names --------------------------------------------------------------------------------------------------
def test_names_are_case_insensitive_with_optional_pth(published):
    entry = make_entry(name="RealThing_x4plus")
    published(entry)
    for text in ("RealThing_x4plus", "realthing_X4PLUS", "REALTHING_x4plus.PTH", " realthing_x4plus.pth"):
        assert catalogue.lookup(text) == entry
    assert catalogue.lookup("RealThing_x2plus") is None


def test_close_miss_gets_did_you_mean(published):
    published(make_entry(name="RealThing_x4plus"))
    with pytest.raises(ModelError, match=r"did you mean RealThing_x4plus\?"):
        download.resolve_model_argument("RealThing_x4pls")
    with pytest.raises(ModelError, match=r"did you mean RealThing_x4plus\?"):
        catalogue.find("realthing-x4plus")


def test_paths_and_unrelated_names_pass_through(published, tmp_path):
    published(make_entry(name="RealThing_x4plus"))
    existing = tmp_path / "RealThing_x4plus.pth"
    existing.write_bytes(b"a local file wins over the catalogue")
    assert download.resolve_model_argument(str(existing)) == str(existing)
    assert download.resolve_model_argument("elsewhere/RealThing_x4pls.pth") == "elsewhere/RealThing_x4pls.pth"
    assert download.resolve_model_argument("model.onnx") == "model.onnx"
    assert download.resolve_model_argument(None) is None


def test_network_esrgan_cannot_load_is_refused_before_downloading(server, published):
    entry = make_entry(name="tiny-other", architecture="some-other-net")
    published(entry)
    server.files[path_of(entry)] = BODY
    with pytest.raises(ModelError, match="some-other-net network, which esrgan cannot load"):
        download.resolve_model_argument("tiny-other")
    assert server.requests == []


# ---- esrgan-run ---------------------------------------------------------------------------------------------
def run(*args: object):
    return CliRunner().invoke(main, [*map(str, args)], catch_exceptions=False)


def test_run_takes_a_published_name_end_to_end(server, published, nearest_onnx, tmp_path):
    body = Path(nearest_onnx).read_bytes()
    entry = make_entry(body, name="Nearest_x4", suffix=".onnx")
    published(entry)
    server.files[path_of(entry)] = body
    src, out = tmp_path / "in", tmp_path / "out"
    save(src / "a.png", gradient())
    r = run(src, out, "--model", "nearest_X4", "--backend", "onnxruntime-cpu", "--threads", "1", "--quiet")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a.png")),
                                  gradient().repeat(4, axis=0).repeat(4, axis=1))
    assert (tmp_path / "cache" / "models" / "Nearest_x4.onnx").read_bytes() == body


def test_run_wrong_checksum_is_one_line_and_exit_2(server, published, tmp_path):
    entry = make_entry()
    published(entry)
    server.files[path_of(entry)] = b"z" * len(BODY)
    src = tmp_path / "in"
    save(src / "a.png", gradient())
    r = run(src, tmp_path / "out", "--model", "tiny_x4", "--quiet")
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Tiny_x4:") and "sha256" in lines[0], r.output
    assert models_dir_files(tmp_path) == []
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_list_models_prints_one_line_per_entry(published):
    entries = (make_entry(name="First_x4"), make_entry(name="second-x2", architecture="srvggnet-compact", scale=2))
    published(*entries)
    r = run("--list-models")  # no INPUT/OUTPUT needed
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == len(entries)
    for line, entry in zip(lines, entries, strict=True):
        for fact in (entry.name, entry.architecture, f"x{entry.scale}", entry.licence, entry.urls[0]):
            assert fact in line


def test_catalogue_and_download_do_not_import_torch():
    code = ("import sys\nimport esrgan.download, esrgan.models.catalogue, esrgan.runtime.cli\n"
            "esrgan.models.catalogue.entries()\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_export_inspect_takes_a_published_name(server, published, tiny_spec, tmp_path):
    pytest.importorskip("torch")
    from esrgan.export.cli import main as export_main
    from esrgan.models import build_generator, save_generator

    local = save_generator(build_generator(tiny_spec), tmp_path / "tiny.pth")
    body = local.read_bytes()
    entry = make_entry(body, name="Tiny_x4")
    published(entry)
    server.files[path_of(entry)] = body
    r = CliRunner().invoke(export_main, ["--inspect", "TINY_X4.pth", "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "rrdbnet" in r.output and "nf8" in r.output.replace(" ", "")
    assert (tmp_path / "cache" / "models" / "Tiny_x4.pth").read_bytes() == body


def test_run_without_the_export_extra_refuses_a_checkpoint_before_downloading(server, published, tmp_path,
                                                                              monkeypatch):
    """The runtime-only install cannot export a checkpoint: say so before fetching it, not after."""
    entry = make_entry()
    published(entry)
    server.files[path_of(entry)] = BODY
    monkeypatch.setitem(sys.modules, "torch", None)
    src = tmp_path / "in"
    save(src / "a.png", gradient())
    r = run(src, tmp_path / "out", "--model", "tiny_x4", "--quiet")
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "needs PyTorch" in lines[0] and install_hint("export") in lines[0], r.output
    assert server.requests == [] and models_dir_files(tmp_path) == []
