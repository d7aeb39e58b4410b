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


def _external_copy(src, folder, data_name="model.onnx.data"):
    """``src`` saved again as ``folder/model.onnx`` with every tensor in ``data_name``, as
    ``torch.onnx.export`` writes a model by default."""
    onnx = pytest.importorskip("onnx")
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(onnx.load(str(src)), str(folder / "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=data_name, size_threshold=0)
    return folder / "model.onnx"


@pytest.fixture
def tiny_onnx(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from tests.cpu_models import export_tiny_onnx

    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    return lambda name, seed=0: export_tiny_onnx(tmp_path / name, seed=seed)


def test_new_weights_under_an_unchanged_graph_file_are_a_new_model(tiny_onnx, tmp_path):
    first = _external_copy(tiny_onnx("a.onnx", seed=0), tmp_path / "first")
    second = _external_copy(tiny_onnx("b.onnx", seed=1), tmp_path / "second")
    assert first.read_bytes() == second.read_bytes()  # the graph files are the same bytes
    assert hashing.external_data_files(first) == ["model.onnx.data"]
    assert hashing.model_sha256(first) != hashing.model_sha256(second)
    assert hashing.model_sha256(first) != hashing.file_sha256(first)
    (tmp_path / "third").mkdir()
    for name in ("model.onnx", "model.onnx.data"):  # the same files elsewhere: the same model
        (tmp_path / "third" / name).write_bytes((tmp_path / "first" / name).read_bytes())
    assert hashing.model_sha256(tmp_path / "third" / "model.onnx") == hashing.model_sha256(first)


def test_a_file_without_external_data_keeps_its_own_sha256(tiny_onnx, tmp_path):
    inline = tiny_onnx("inline.onnx")
    assert hashing.external_data_files(inline) == []
    assert hashing.model_sha256(inline) == hashing.file_sha256(inline)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert hashing.model_sha256(empty) == hashlib.sha256(b"").hexdigest()


def test_missing_or_special_external_files_never_stop_or_hang_the_digest(tiny_onnx, tmp_path):
    model = _external_copy(tiny_onnx("a.onnx"), tmp_path / "m")
    data = tmp_path / "m" / "model.onnx.data"
    present = hashing.model_sha256(model)
    data.unlink()
    missing = hashing.model_sha256(model)
    os.mkfifo(data)  # reading a FIFO with no writer would block forever
    fifo = hashing.model_sha256(model)
    assert len({present, missing, fifo}) == 3


def test_the_runtime_keys_every_cache_and_record_by_the_whole_model(tiny_onnx, tmp_path):
    """The ncnn files, the measured CPU and Vulkan figures and an output folder's record: each keyed by
    the model with its external data, so new weights never meet a stale entry."""
    from esrgan.runtime import cpu_parity, manifest, ncnn_writer, vulkan_parity
    from esrgan.runtime.cpu_features import probe_cpu_features
    from esrgan.runtime.options import RunOptions

    first = _external_copy(tiny_onnx("a.onnx", seed=0), tmp_path / "first")
    second = _external_copy(tiny_onnx("b.onnx", seed=1), tmp_path / "second")
    features = probe_cpu_features()
    keys = [
        lambda m: cpu_parity.parity_cache_file(m, features, tmp_path / "cache").name,
        lambda m: manifest.OutputSettings.of(m, 4, RunOptions()).model_sha256,
        lambda m: ncnn_writer.ncnn_files(m)[0].parent.name,
        lambda m: vulkan_parity.parity_record([m], "a device", "1.0").name,
    ]
    for key in keys:
        assert key(first) != key(second)


def test_the_external_data_scan_of_a_large_settled_file_is_remembered(tiny_onnx, tmp_path, monkeypatch):
    model = _external_copy(tiny_onnx("a.onnx"), tmp_path / "m")
    monkeypatch.setattr(hashing, "MEMO_MIN_BYTES", 0)  # as if large
    monkeypatch.setattr(hashing, "SETTLE_SECONDS", -1.0)
    assert hashing.external_data_files(model) == ["model.onnx.data"]
    memo, = (tmp_path / "cache" / "onnx-external").glob("*")
    scan = hashing._scan_locations
    monkeypatch.setattr(hashing, "_scan_locations", lambda path: pytest.fail("scanned again"))
    assert hashing.external_data_files(model) == ["model.onnx.data"]
    memo.write_text("{damaged")  # not a list: scanned again
    monkeypatch.setattr(hashing, "_scan_locations", scan)
    assert hashing.external_data_files(model) == ["model.onnx.data"]


def test_only_tensors_external_data_entries_are_read_as_data_files(tiny_onnx, tmp_path, monkeypatch):
    """A metadata key "location" is the same entry type under another field: no data file. Names are
    found across read chunks, and a scan remembered by an older scanner is done again."""
    onnx = pytest.importorskip("onnx")
    model = _external_copy(tiny_onnx("a.onnx"), tmp_path / "m", data_name="w" * 140 + ".bin")
    proto = onnx.load(str(model), load_external_data=False)
    onnx.helper.set_model_props(proto, {"location": "Munich studio", "esrgan.scale": "4"})
    onnx.save_model(proto, str(model))
    expected = ["w" * 140 + ".bin"]  # a 2-byte length
    assert hashing.external_data_files(model) == expected
    for chunk in (1, 7, 64):  # every boundary position between reads
        monkeypatch.setattr(hashing, "_CHUNK", chunk)
        monkeypatch.setattr(hashing, "_OVERLAP", 512)
        assert hashing._scan_locations(model) == expected
    monkeypatch.setattr(hashing, "MEMO_MIN_BYTES", 0)
    monkeypatch.setattr(hashing, "SETTLE_SECONDS", -1.0)
    hashing.external_data_files(model)
    memo, = (tmp_path / "cache" / "onnx-external").glob("*")
    memo.write_text('["Munich studio"]')  # what the scan before the tag check remembered
    assert hashing.external_data_files(model) == expected
