"""esrgan.metadata.onnx_metadata reads an ONNX file's metadata_props without onnx or ONNX Runtime: the
same entries as the onnx package reads, from files as people have them."""

from __future__ import annotations

import onnx
import pytest

from esrgan import metadata as meta


def _with_props(src, dst, props: dict[str, str], *, external: bool = False, **model_fields):
    model = onnx.load(str(src))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    for name, value in model_fields.items():
        setattr(model, name, value)
    if external:
        onnx.save_model(model, str(dst), save_as_external_data=True, location=dst.name + ".data", size_threshold=0)
    else:
        onnx.save(model, str(dst))
    return dst


def test_the_entries_are_the_ones_onnx_reads(tiny_onnx):
    expected = {p.key: p.value for p in onnx.load(str(tiny_onnx), load_external_data=False).metadata_props}
    assert expected.get(meta.PRECISION) == "fp32"  # an esrgan export: there is something to read
    assert meta.onnx_metadata(tiny_onnx) == expected


@pytest.mark.parametrize("external", [False, True])
def test_any_keys_values_and_top_level_fields(tiny_onnx, tmp_path, external):
    props = {"": "empty key", "ünïcode ✓": "wert\nzwei Zeilen", "location": "not a file", "big": "x" * 70000,
             meta.PRECISION: "int8"}
    path = _with_props(tiny_onnx, tmp_path / "m.onnx", props, external=external, model_version=-3,
                       doc_string="d" * 300, producer_name="someone else")
    assert {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props} == props
    assert meta.onnx_metadata(path) == props


def test_a_model_without_metadata_and_files_that_are_not_models(tiny_onnx, tmp_path):
    assert meta.onnx_metadata(_with_props(tiny_onnx, tmp_path / "bare.onnx", {})) == {}
    data = tiny_onnx.read_bytes()
    for name, content in {"empty.onnx": b"", "text.onnx": b"not a model at all\n", "cut.onnx": data[: len(data) // 2],
                          "noise.onnx": bytes(range(256)) * 64}.items():
        (tmp_path / name).write_bytes(content)
        assert meta.onnx_metadata(tmp_path / name) == {}, name
    assert meta.onnx_metadata(tmp_path / "missing.onnx") == {}
    assert meta.onnx_metadata(tmp_path) == {}  # a folder
