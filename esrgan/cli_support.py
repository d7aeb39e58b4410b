"""What every CLI shares: one-line errors, exit codes and the debug switch.

Exit codes: 0 all good, 1 some inputs failed, 2 usage, model or environment error.
Set ``ESRGAN_DEBUG=1`` (or pass ``--debug`` where a command offers it) to see tracebacks.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click

from esrgan.errors import EsrganError

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("ESRGAN_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line to stderr and exit: the single way a CLI reports a user-caused error."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn library errors into one line and an exit code; show the traceback only in debug mode."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EsrganError as exc:
            if debug_enabled():
                traceback.print_exc()
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except MemoryError:
            if debug_enabled():
                traceback.print_exc()
            fail("out of memory (try a smaller --tile or --batch)")

    return wrapper  # type: ignore[return-value]


def debug_option(func: F) -> F:
    """A ``--debug`` flag that sets ESRGAN_DEBUG for this process."""

    def _set(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        if value:
            os.environ["ESRGAN_DEBUG"] = "1"
        return value

    return click.option(
        "--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set,
        help="Show full tracebacks (same as ESRGAN_DEBUG=1).",
    )(func)
