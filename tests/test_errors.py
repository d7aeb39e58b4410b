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
