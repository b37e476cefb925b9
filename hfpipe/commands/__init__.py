"""The subcommands of the ``hfpipe`` command line, one module each, and the command
line's shared error policy.

Each module defines one click command (or group); :mod:`hfpipe.cli` registers it with
one line, and :mod:`hfpipe.commands.options` holds the option groups several share.
:func:`one_line_errors` turns hfpipe's errors into one line on stderr and exit code 2;
warnings about the input are one line each (errors with ``--strict``); anything else is
a bug: one line, exit 70, and ``--debug`` shows every traceback.
"""

from __future__ import annotations

import functools
import sys
import warnings

import click

from hfpipe.errors import HfpipeError

__all__ = ["fail", "one_line_errors", "warn"]


def one_line_errors(command):
    """Turn hfpipe's errors into one line on stderr and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args, debug: bool = False, strict: bool = False, **kwargs):
        from hfpipe.spec import SpecWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("error" if strict else "always", SpecWarning)
            try:
                return command(*args, **kwargs)
            except (HfpipeError, SpecWarning) as error:
                if debug:
                    raise
                fail(f"error: {error}", 2)
            except Exception as error:  # a bug, not bad input: still no traceback
                if debug:
                    raise
                fail(f"internal error: {type(error).__name__}: {error} (rerun with --debug)", 70)
            finally:
                for message in dict.fromkeys(
                    str(w.message) for w in caught if issubclass(w.category, SpecWarning)
                ):
                    warn(message)

    wrapper = click.option(
        "--strict", is_flag=True, help="Treat warnings about the input as errors."
    )(wrapper)
    return click.option("--debug", is_flag=True, help="Show tracebacks.")(wrapper)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(text: str, code: int) -> None:
    """One line ``hfpipe: TEXT`` on stderr, then exit with ``code``."""
    click.echo(f"hfpipe: {_one_line(text)}", err=True)
    sys.exit(code)


def warn(message: str) -> None:
    """One line ``hfpipe: warning: MESSAGE`` on stderr."""
    click.echo(f"hfpipe: warning: {_one_line(message)}", err=True)
