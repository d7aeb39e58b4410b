"""Runs the OpenVINO backend cases (openvino_cases.py) in a process of their own.

Why: after a dozen OpenVINO compilations in one process, a later test that forks (DataLoader workers)
and then starts torchrun (tests/train/test_train_ddp.py) crashed the whole pytest process with a
segmentation fault (reproduced with OpenVINO 2026.4.1 and torch 2.14.1; no single case triggers it,
and releasing the OpenVINO objects in order does not help). Keeping OpenVINO's native thread pools
out of the main test process keeps the suite alive; the cases' own output is shown on failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_openvino_backend_cases_pass_in_their_own_process():
    pytest.importorskip("openvino")
    cases = Path(__file__).with_name("openvino_cases.py")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(cases)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
