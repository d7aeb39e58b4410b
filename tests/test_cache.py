"""esrgan.cache.cache_dir: the one cache folder, and every user of it taking its subfolder there."""

from __future__ import annotations

from pathlib import Path

import pytest

from esrgan.cache import cache_dir


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.delenv("ESRGAN_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("ESRGAN_BENCH_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_precedence(home, tmp_path, monkeypatch):
    assert cache_dir() == home / ".cache" / "esrgan"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "esrgan"
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"


def test_the_variable_is_expanded_and_made_absolute(home, tmp_path, monkeypatch):
    """Environment files (systemd, docker) pass "~/c" as it is; a relative path would follow the cwd."""
    monkeypatch.setenv("ESRGAN_CACHE_DIR", "~/c")
    assert cache_dir() == home / "c"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ESRGAN_CACHE_DIR", "rel")
    assert cache_dir() == tmp_path / "rel" and cache_dir().is_absolute()


def test_empty_variables_are_unset(home, monkeypatch):
    monkeypatch.setenv("ESRGAN_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cache_dir() == home / ".cache" / "esrgan"


def test_every_cache_user_lives_under_it(home, tmp_path, monkeypatch):
    from esrgan.bench.models import cache_root
    from esrgan.runtime.backends.openvino_backend import default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "xdg" / "esrgan"
    assert default_cache_dir() == root / "openvino"
    assert cache_root() == root / "bench"
    monkeypatch.setenv("ESRGAN_BENCH_CACHE", str(tmp_path / "bench-only"))
    assert cache_root() == Path(tmp_path / "bench-only")
