"""What every CLI shares: one-line errors, exit codes and the debug switch.

Exit codes: 0 all good, 1 some inputs failed, 2 usage, model or environment error.
Set ``ESRGAN_DEBUG=1`` (or pass ``--debug`` where a command offers it) to see tracebacks.

The base install is the torch-free runtime; a command that needs an extra (``esrgan-train`` the
``train`` one, ``esrgan-export`` and ``esrgan-bench`` the ``export`` one) meets a missing package as
a ModuleNotFoundError somewhere deep in an import. ``handle_errors`` turns it into one line naming
the package and the extra's install command, which pyproject.toml (the installed metadata) owns.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import traceback
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar

import click

from esrgan.errors import PACKAGE, EsrganError, install_hint
from esrgan.native_output import DEBUG_ENV, debugging

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., Any])

#: Import names whose distribution (the name pyproject.toml's extras list) differs.
DISTRIBUTIONS = {
    "yaml": "pyyaml", "skimage": "scikit-image", "cuda": "cuda-python",
    "onnxconverter_common": "onnxconverter-common", "PIL": "pillow",
}


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line to stderr and exit: the single way a CLI reports a user-caused error."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extras_providing(distribution: str) -> list[str] | None:
    """The extras of the installed package that require ``distribution``, in pyproject.toml's order.

    None when the package is not installed (run from a source tree): nothing is known then.
    """
    try:
        requirements = metadata.requires(PACKAGE) or []
    except metadata.PackageNotFoundError:
        return None
    found = []
    for req in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", req)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
        if name and extra and _normalise(name.group(0)) == _normalise(distribution) and extra.group(1) not in found:
            found.append(extra.group(1))
    return found


def missing_module_message(exc: ModuleNotFoundError, extra: str | None = None) -> str | None:
    """One line for an optional package that is not installed; None when ``exc`` is not about one.

    ``extra`` is the command's own extra: named when it provides the package (torch is in both
    ``train`` and ``export``), otherwise the first extra that does.
    """
    top = (exc.name or "").split(".")[0]
    if not top or top == PACKAGE:
        return None  # a module of this package missing is a bug, not a missing extra
    distribution = DISTRIBUTIONS.get(top, top)
    extras = extras_providing(distribution)
    if extras is None and extra is not None:
        extras = [extra]  # no metadata to ask: the command's own extra is the best guess
    if not extras:
        return None  # not an optional package: a broken install or a bug, whose traceback matters
    chosen = extra if extra in extras else extras[0]
    return f"{distribution} is not installed (it comes with the {chosen} extra): {install_hint(chosen)}"


def version_option(func: F) -> F:
    """``--version``: the installed package's version (importlib.metadata), the same for every command."""
    return click.version_option(package_name=PACKAGE, message="%(prog)s %(version)s")(func)


def handle_errors(func: F | None = None, *, extra: str | None = None, on_interrupt: str = "") -> Any:
    """Turn library errors into one line and an exit code; show the traceback only in debug mode.

    Use as ``@handle_errors`` or ``@handle_errors(extra="train")``: ``extra`` names the optional
    dependencies the command needs, for the line that replaces a missing package's traceback;
    ``on_interrupt`` what the command's user can do after Ctrl-C (said after "interrupted").
    """
    if func is None:
        return functools.partial(handle_errors, extra=extra, on_interrupt=on_interrupt)
    interrupted_hint = f": {on_interrupt}" if on_interrupt else ""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EsrganError as exc:
            if debugging():
                traceback.print_exc()
            fail(str(exc), exc.exit_code)
        except ModuleNotFoundError as exc:
            message = missing_module_message(exc, extra)
            if message is None:
                raise
            if debugging():
                traceback.print_exc()
            fail(message)
        except KeyboardInterrupt:
            # on a line of its own: a progress bar may have been drawn without its newline
            click.echo(f"\ninterrupted{interrupted_hint}", err=True)
            sys.exit(130)
        except MemoryError:
            if debugging():
                traceback.print_exc()
            fail("out of memory (try a smaller --tile or --batch)")

    return wrapper  # type: ignore[return-value]


class _OneLineUsageError(click.UsageError):
    """Click's usage error said as one ``error:`` line (Click's own form is three: usage, hint, error)."""

    def __init__(self, message: str, command: str | None) -> None:
        super().__init__(message)
        self.command = command

    def show(self, file: Any = None) -> None:
        hint = f" (see {self.command} --help)" if self.command else ""
        click.echo(f"error: {self.format_message().rstrip('.')}{hint}", err=True)


class Command(click.Command):
    """A click command whose argument errors are one line and exit 2, like every user-caused error:
    every CLI here is declared with ``@click.command(cls=Command)``."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _OneLineUsageError:
            raise
        except click.UsageError as exc:  # BadParameter, NoSuchOption, MissingParameter...
            # the parser raises some (an option missing its value) without a context: the name is known here
            command = exc.ctx.command_path if exc.ctx is not None else info_name
            raise _OneLineUsageError(exc.format_message(), command) from None


def debug_option(func: F) -> F:
    """A ``--debug`` flag that sets ESRGAN_DEBUG for this process."""

    def _set(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        if value:
            os.environ[DEBUG_ENV] = "1"
        return value

    return click.option(
        "--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set,
        help="Show full tracebacks (same as ESRGAN_DEBUG=1).",
    )(func)
