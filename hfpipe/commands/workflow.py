"""``hfpipe prepare`` and ``hfpipe merge``: the two ends of a scan run as many jobs.

``prepare`` checks the inputs (a patchset, or a signal table) and writes the plan (which
points go into which chunk); each chunk is then one ``hfpipe scan ... --points a,b,c``
job writing a Parquet part, and ``merge`` checks the parts against the plan and writes
the scan's one table. The Snakemake workflow (``workflow/``) is these three commands in
a row.
"""

from __future__ import annotations

import click

from hfpipe.commands import one_line_errors
from hfpipe.errors import HfpipeError

__all__ = ["merge", "prepare"]


def _points(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


@click.command()
@click.argument("background", type=click.Path(dir_okay=False))
@click.argument("patchset", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--signals", type=click.Path(dir_okay=False), help="Signal table instead of PATCHSET."
)
@click.option("--signals-config", type=click.Path(dir_okay=False), help="Its signal config (YAML).")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Plan (JSON) to write."
)
@click.option("--chunk-size", type=int, default=16, show_default=True, help="Points per chunk.")
@click.option("--points", help="Comma-separated patch names (default: all).")
@click.option("--analysis", help="Analysis name (default: the patchset's).")
@one_line_errors
def prepare(background, patchset, signals, signals_config, output, chunk_size, points, analysis):
    """Validate BACKGROUND and PATCHSET (or a --signals table) and split the points into
    chunks → JSON plan."""
    from hfpipe.scanning.chunks import plan_chunks, write_plan

    if signals_config is not None and signals is None:
        raise HfpipeError("--signals-config goes with --signals")
    plan = plan_chunks(
        background,
        patchset,
        chunk_size=chunk_size,
        points=_points(points),
        analysis=analysis,
        signals=signals,
        signals_config=signals_config,
    )
    write_plan(plan, output)
    click.echo(
        f"{len(plan['points'])} points in {len(plan['chunks'])} chunk(s) → {output}", err=True
    )


@click.command()
@click.argument("parts", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Table to write."
)
@click.option(
    "--plan",
    type=click.Path(dir_okay=False),
    help="Plan from `hfpipe prepare`: the parts must hold exactly its points.",
)
@one_line_errors
def merge(parts, output, plan):
    """Merge scan PARTS (Parquet) into one table, checking inputs, settings and points."""
    from hfpipe.results import merge_tables, write_table
    from hfpipe.scanning.chunks import read_plan

    expected = read_plan(plan)["points"] if plan else None
    frame, provenance = merge_tables(list(parts), expected_points=expected)
    write_table(frame, output, provenance)
    bad = int((frame["status"] != "ok").sum())
    click.echo(f"{len(parts)} part(s), {len(frame)} points, {bad} not ok → {output}", err=True)
