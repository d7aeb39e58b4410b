"""Lazy package attributes: ``import esrgan`` (and its subpackages) must not pull in torch.

A package lists ``{attribute: module}`` and sets ``__getattr__ = lazy_exports(__name__, table)``;
the module is imported the first time the attribute is used (PEP 562).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
