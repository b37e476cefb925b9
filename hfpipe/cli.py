"""The ``hfpipe`` command line: one module per command in :mod:`hfpipe.commands`,
registered here.

Bad input ends in one line on stderr (file, JSON path, problem) and exit code 2; pass
``--debug`` for the traceback.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["main"]

#: command name -> (module of hfpipe.commands, attribute): a command's module is imported
#: only when the command runs (or help lists it), so that starting ``hfpipe`` - and each
#: worker process a scan spawns where it cannot fork one, which imports the main module
#: again - loads the engine it needs and not every command's dependencies
COMMANDS = {
    "brazil": ("contour", "brazil"),
    "campaign": ("campaign", "campaign"),
    "cls": ("cls", "cls"),
    "contour": ("contour", "contour"),
    "convert": ("convert", "convert"),
    "discovery-table": ("discovery", "discovery_table"),
    "fit": ("fit", "fit"),
    "inspect": ("inspect", "inspect"),
    "merge": ("workflow", "merge"),
    "merge-toys": ("toys", "merge_toys"),
    "patchset": ("workspace", "patchset"),
    "prepare": ("workflow", "prepare"),
    "profile": ("profile", "profile"),
    "rank": ("rank", "rank"),
    "scan": ("scan", "scan"),
    "serve": ("serve", "serve"),
    "submit": ("submit", "submit"),
    "upper-limit": ("upper_limit", "upper_limit"),
    "workspace": ("workspace", "workspace"),
    "yields": ("yields", "yields"),
}


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use (click's lazy-loading recipe)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name]
        return getattr(importlib.import_module(f"hfpipe.commands.{module}"), attribute)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hfpipe")
def main() -> None:
    """Large-scale HistFactory limit scans with a batched JAX engine."""


if __name__ == "__main__":
    main()
