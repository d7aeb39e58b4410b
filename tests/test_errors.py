"""esrgan.errors.first_line: the one way a third-party error is cut to one line."""

from __future__ import annotations

import pytest

from esrgan.errors import first_line


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("bad header\nTraceback:\n  frame 1", "bad header"),
        ("\n  \n  protobuf: truncated message  \nmore", "protobuf: truncated message"),
        ("single line", "single line"),
    ],
)
def test_first_non_empty_line(message: str, expected: str) -> None:
    assert first_line(RuntimeError(message)) == expected


@pytest.mark.parametrize("message", ["", "\n \n"])
def test_empty_message_gives_class_name(message: str) -> None:
    assert first_line(ValueError(message)) == "ValueError"


def test_native_output_is_dropped_unless_debugging(capfd, monkeypatch):
    """C++ code writing straight to fd 1/2 (torch's TorchScript exporter prints its IR graph) says nothing."""
    import os

    from esrgan.native_output import native_output_dropped

    monkeypatch.delenv("ESRGAN_DEBUG", raising=False)
    for fd in (1, 2):
        with native_output_dropped(fd):
            os.write(fd, b"native noise\n")
        os.write(fd, b"after\n")
    out, err = capfd.readouterr()
    assert (out, err) == ("after\n", "after\n")
    monkeypatch.setenv("ESRGAN_DEBUG", "1")
    with native_output_dropped(1):
        os.write(1, b"shown when debugging\n")
    assert capfd.readouterr().out == "shown when debugging\n"


@pytest.mark.parametrize("command", ["esrgan.runtime.cli", "esrgan.export.cli", "esrgan.train.cli", "esrgan.bench.cli"])
@pytest.mark.parametrize("args", [["--no-such-option"], ["--debug", "--no-such-option"], ["--help=1"]])
def test_every_command_says_an_argument_error_in_one_line(command, args):
    """Click's own form is three lines (usage, a hint, the error); every other user-caused error is one."""
    import importlib

    from click.testing import CliRunner

    main = importlib.import_module(command).main
    result = CliRunner().invoke(main, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and lines[0].endswith(" --help)")


def test_a_bad_value_names_the_option_in_one_line():
    from click.testing import CliRunner

    from esrgan.runtime.cli import main

    result = CliRunner().invoke(main, ["in", "out", "--batch", "0"])
    line = result.output.strip()
    assert result.exit_code == 2 and "\n" not in line
    assert line.startswith("error: Invalid value for '--batch': 0 is not in the range x>=1 (see ")
