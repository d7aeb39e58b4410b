"""Fixtures for export tests; the tiny models themselves live in tests/export/tiny.py."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
