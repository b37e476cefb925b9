"""``hfpipe convert``: pyhf JSON workspaces to and from HS3 v0.2 (see hfpipe.spec.hs3)."""

from __future__ import annotations

import json

import click

from hfpipe.commands import one_line_errors

__all__ = ["convert"]


def _write_json(doc: dict, path: str) -> None:
    """Write atomically: a failed conversion never leaves a torn output file."""
    from hfpipe.results.atomic import atomic_path

    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(doc, indent=2) + "\n")


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option(
    "--to", "to_format", type=click.Choice(["hs3"]), help="Convert a pyhf workspace to HS3."
)
@click.option(
    "--from",
    "from_format",
    type=click.Choice(["hs3"]),
    help="Convert an HS3 file to a pyhf workspace.",
)
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="JSON file to write."
)
@click.option("--analysis", help="HS3 analysis to read (default: the only observed one).")
@one_line_errors
def convert(source, to_format, from_format, output, analysis):
    """Convert SOURCE between pyhf JSON and HS3 v0.2 (histfactory_dist).

    `--to hs3` reads a pyhf workspace; `--from hs3` reads an HS3 file and writes the
    pyhf workspace of one of its analyses (validated against the pyhf schema).
    """
    from hfpipe import spec
    from hfpipe.errors import HfpipeError

    if (to_format is None) == (from_format is None):
        raise HfpipeError("give exactly one of --to hs3 or --from hs3")
    if to_format:
        document = spec.to_hs3(spec.load_workspace(source), file=source)
    else:
        document = spec.from_hs3(spec.load_json(source), analysis=analysis, file=source)
        spec.validate_workspace(document, file=f"{source} (converted)")
    _write_json(document, output)
    click.echo(f"{source} → {output}", err=True)
