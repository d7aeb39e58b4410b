"""Every TensorRT attribute the two TensorRT modules use exists in the TensorRT 11 bindings.

TensorRT cannot be imported here (its libraries come from NVIDIA's index only), so the names are
read from the module's source with ``ast`` and looked up in the compiled TensorRT 11 binding module
(``tensorrt-cu13-bindings``, a dev dependency that installs without a GPU). Which attribute names are
TensorRT's is decided by the ``tensorrt-stubs`` (10.13): a name the stubs define is a TensorRT name.
A pybind11 module keeps each bound name as a NUL-terminated C string; the linker may share it as the
tail of a longer string, so "name\\0 occurs in the .so" is the test (it cannot tell which class owns a
name: mypy against the stubs checks that part).
"""

from __future__ import annotations

import ast
import re
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The only modules with TensorRT calls: the engine builder and the runtime's backend (load and run).
TRT_MODULES = (ROOT / "esrgan" / "export" / "tensorrt_build.py", ROOT / "esrgan" / "runtime" / "backends" / "tensorrt_backend.py")


def _dist_file(dist: str, rel: str) -> Path:
    try:
        path = Path(str(metadata.distribution(dist).locate_file(rel)))
    except metadata.PackageNotFoundError:
        pytest.skip(f"{dist} is not installed (pip install -e '.[dev]' installs it; no GPU needed)")
    if not path.is_file():
        pytest.skip(f"{dist} is installed without {rel}")
    return path


def used_attribute_names(source: str) -> set[str]:
    """Attribute names in ``source``, except ``self.x`` (the module's own classes' attributes)."""
    return {
        node.attr for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    }


def stub_names() -> set[str]:
    """Class, method, property and enum-member names the TensorRT stubs define (regex: the generated
    stubs are not all valid Python)."""
    text = _dist_file("tensorrt-stubs", "tensorrt_bindings/tensorrt.pyi").read_text(encoding="utf-8")
    return set(re.findall(r"^\s*(?:class|def)\s+(\w+)", text, re.M)) | set(
        re.findall(r"^\s+(\w+)\s*[:=]", text, re.M)
    )


def bound_in_trt11(names: set[str]) -> set[str]:
    blob = _dist_file("tensorrt-cu13-bindings", "tensorrt_bindings/tensorrt.so").read_bytes()
    return {n for n in names if n.encode() + b"\0" in blob}


def test_every_tensorrt_name_used_exists_in_tensorrt_11():
    used = set().union(*(used_attribute_names(m.read_text(encoding="utf-8")) for m in TRT_MODULES))
    trt_names = used & stub_names()
    # the modules really use the TensorRT API (guards against the check passing vacuously)
    assert {"Builder", "OnnxParser", "set_memory_pool_limit", "execute_async_v3", "STRONGLY_TYPED"} <= trt_names
    missing = trt_names - bound_in_trt11(trt_names)
    assert not missing, f"not in the TensorRT 11 bindings: {sorted(missing)}"


def test_check_detects_names_removed_in_tensorrt_11():
    """BuilderFlag.FP16 and EXPLICIT_BATCH exist in TensorRT 10's stubs but not in TensorRT 11."""
    removed = {"FP16", "EXPLICIT_BATCH"}
    assert removed <= stub_names()
    assert bound_in_trt11(removed | {"STRONGLY_TYPED"}) == {"STRONGLY_TYPED"}
    assert "FP16" in used_attribute_names("config.set_flag(trt.BuilderFlag.FP16)")
