"""file_sha256 remembers large settled files' digests, and never a digest its file may no longer have."""

from __future__ import annotations

import hashlib
import os

import pytest

from esrgan import hashing


@pytest.fixture
def big(tmp_path, monkeypatch):
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "model.onnx"
    path.write_bytes(os.urandom(hashing.MEMO_MIN_BYTES))
    return path


def _memos(tmp_path):
    return list((tmp_path / "cache" / "sha256").glob("*"))


def test_a_settled_large_file_is_hashed_once(big, tmp_path, monkeypatch):
    monkeypatch.setattr(hashing, "SETTLE_SECONDS", -1.0)  # as if written long ago
    expected = hashlib.sha256(big.read_bytes()).hexdigest()
    assert hashing.file_sha256(big) == expected and len(_memos(tmp_path)) == 1

    def unread(path):
        raise AssertionError("read again although nothing changed")

    monkeypatch.setattr(hashing, "_digest", unread)
    assert hashing.file_sha256(big) == expected


def test_new_bytes_of_the_same_size_are_hashed_again(big, tmp_path, monkeypatch):
    monkeypatch.setattr(hashing, "SETTLE_SECONDS", -1.0)
    first = hashing.file_sha256(big)
    big.write_bytes(os.urandom(hashing.MEMO_MIN_BYTES))  # same size, new content, new status-change time
    second = hashing.file_sha256(big)
    assert second != first and second == hashlib.sha256(big.read_bytes()).hexdigest()


def test_a_file_written_just_now_or_small_is_not_remembered(big, tmp_path):
    digest = hashing.file_sha256(big)  # written a moment ago: a same-tick rewrite could keep its stat
    assert digest == hashlib.sha256(big.read_bytes()).hexdigest() and _memos(tmp_path) == []
    small = tmp_path / "small.png"
    small.write_bytes(b"x" * 100)
    assert hashing.file_sha256(small) == hashlib.sha256(b"x" * 100).hexdigest() and _memos(tmp_path) == []


def test_a_damaged_memo_or_an_unwritable_cache_still_gives_the_digest(big, tmp_path, monkeypatch):
    monkeypatch.setattr(hashing, "SETTLE_SECONDS", -1.0)
    expected = hashlib.sha256(big.read_bytes()).hexdigest()
    hashing.file_sha256(big)
    _memos(tmp_path)[0].write_text("not a digest")
    assert hashing.file_sha256(big) == expected
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("")
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(blocker))
    assert hashing.file_sha256(big) == expected
