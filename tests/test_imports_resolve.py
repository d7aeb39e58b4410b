"""Every ``from esrgan... import name`` in the project names something that exists. Many imports are
made inside functions (optional extras, start-up time), where a renamed or removed name shows only
when that path runs: a benchmark or an error branch that no test reaches."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports():
    for folder in ("esrgan", "benchmarks", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("esrgan"):
                    yield path.relative_to(ROOT), node.lineno, node.module, [a.name for a in node.names]


def test_every_imported_esrgan_name_exists():
    missing = []
    for where, line, module, names in _imports():
        mod = importlib.import_module(module)
        for name in names:
            if name != "*" and not hasattr(mod, name):
                try:
                    importlib.import_module(f"{module}.{name}")  # a submodule
                except ModuleNotFoundError:
                    missing.append(f"{where}:{line}: {module}.{name}")
    assert not missing, missing
