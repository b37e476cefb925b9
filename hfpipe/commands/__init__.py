"""Subcommands of the ``hfpipe`` command line that live in their own modules.

Each module defines one click command; :mod:`hfpipe.cli` registers it with one line.
:func:`one_line_errors` is the shared error policy: hfpipe's errors become one line on
stderr and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import functools
import sys

import click

from hfpipe.errors import HfpipeError

__all__ = ["one_line_errors"]


def one_line_errors(command):
    """Turn hfpipe's errors into one line on stderr and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args, debug: bool = False, **kwargs):
        try:
            return command(*args, **kwargs)
        except HfpipeError as error:
            if debug:
                raise
            click.echo(f"hfpipe: error: {error}".replace("\n", " "), err=True)
            sys.exit(2)

    return click.option("--debug", is_flag=True, help="Show tracebacks.")(wrapper)
