"""What a new user meets first: --help and --version without the extras, and a missing extra in one line.

CI installs every extra, so a missing package is simulated: the subprocess sets
``sys.modules[name] = None`` (an import of it then raises ModuleNotFoundError, as on a base install)
before it runs the command's ``main``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from esrgan.cli_support import missing_module_message
from esrgan.errors import install_hint

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "onnx", "onnxscript", "yaml", "safetensors", "skimage", "matplotlib")
COMMANDS = {
    "esrgan-run": "esrgan.runtime.cli",
    "esrgan-export": "esrgan.export.cli",
    "esrgan-train": "esrgan.train.cli",
    "esrgan-bench": "esrgan.bench.cli",
}


def run_without(command: str, args: list[str], missing: tuple[str, ...] = HEAVY, debug: bool = False,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in {list(missing)!r}: sys.modules[name] = None\n"
        f"from {COMMANDS[command]} import main\n"
        f"main({args!r}, prog_name={command!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ESRGAN_DEBUG": "1" if debug else ""}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, timeout=300)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_and_version_need_no_extra(command):
    helped = run_without(command, ["--help"])
    assert helped.returncode == 0, helped.stderr
    assert "--version" in helped.stdout and "Traceback" not in helped.stderr
    version = run_without(command, ["--version"])
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"{command} {metadata.version('esrgan')}"


@pytest.mark.parametrize(("command", "args", "extra"), [
    ("esrgan-train", ["--preset", "tiny", "--data", "x"], "train"),
    ("esrgan-export", ["--gan", "x.safetensors", "-o", "d"], "export"),
    ("esrgan-bench", ["--quick", "-o", "d"], "export"),
    ("esrgan-bench", ["--quick"], "export"),  # the missing extra first, not after a round on -o
])
def test_a_missing_extra_is_one_line_and_exit_2(command, args, extra, tmp_path):
    result = run_without(command, args, cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert lines[-1].startswith("error: ") and lines[-1].endswith(install_hint(extra)), lines[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written before the refusal

    debug = run_without(command, args, debug=True, cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "ModuleNotFoundError" in debug.stderr


def test_the_extra_named_is_the_commands_own_when_it_provides_the_package():
    torch_missing = ModuleNotFoundError("No module named 'torch'", name="torch")
    assert missing_module_message(torch_missing, "export").endswith(install_hint("export"))
    assert missing_module_message(torch_missing, "train").endswith(install_hint("train"))
    # PyYAML is only in the train extra, whichever command imported it
    yaml_missing = ModuleNotFoundError("No module named 'yaml'", name="yaml")
    message = missing_module_message(yaml_missing, "export")
    assert message.startswith("pyyaml is not installed") and message.endswith(install_hint("train"))
    # tensorrt.something -> the trt extra
    trt_missing = ModuleNotFoundError("No module named 'tensorrt'", name="tensorrt.plugin")
    assert missing_module_message(trt_missing, "export").endswith(install_hint("trt"))


def test_a_missing_base_dependency_keeps_its_traceback():
    # not an optional package: a broken install (or a bug), where the traceback is what helps
    assert missing_module_message(ModuleNotFoundError("x", name="numpy"), "export") is None
    assert missing_module_message(ModuleNotFoundError("x", name="no_such_module_here"), "train") is None
    assert missing_module_message(ModuleNotFoundError("x", name="esrgan.no_such_module"), "export") is None


@pytest.mark.parametrize(("origin", "expected"), [
    ({"url": "file:///home/me/esrgan%20clone", "dir_info": {"editable": True}},
     'pip install -e "/home/me/esrgan clone[export]"'),  # a plain install would replace the editable one
    ({"url": "file:///home/me/esrgan", "dir_info": {}}, 'pip install "/home/me/esrgan[export]"'),
    ({"url": "file:///tmp/esrgan-0.1.0-py3-none-any.whl", "archive_info": {}},
     'pip install "/tmp/esrgan-0.1.0-py3-none-any.whl[export]"'),
    ({"url": "https://github.com/o/esrgan.git", "vcs_info": {"vcs": "git", "commit_id": "abc"}},
     'pip install "esrgan[export] @ git+https://github.com/o/esrgan.git"'),
    ({"url": "https://github.com/o/esrgan.git", "vcs_info": {"vcs": "git", "requested_revision": "v0.1.0"}},
     'pip install "esrgan[export] @ git+https://github.com/o/esrgan.git@v0.1.0"'),
    (None, 'pip install "esrgan[export]"'),  # from an index: no direct_url.json
])
def test_the_install_hint_names_where_this_install_came_from(monkeypatch, origin, expected):
    """The package is not on PyPI: 'pip install "esrgan[export]"' from a clone's install finds nothing."""
    import json
    from importlib import metadata

    from esrgan import errors

    class Dist:
        def __init__(self, origin):
            self.origin = origin

        def read_text(self, name):
            return None if self.origin is None else json.dumps(self.origin)

    # first the esrgan.egg-info a clone's working folder holds, which has no record
    monkeypatch.setattr(metadata, "distributions", lambda name: iter([Dist(None), Dist(origin)]))
    errors._requirement.cache_clear()
    try:
        assert errors.install_hint("export") == expected
    finally:
        errors._requirement.cache_clear()
