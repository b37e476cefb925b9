"""``hfpipe campaign``: fetch, scan and contour every analysis of a campaign file."""

from __future__ import annotations

import sys

import click

from hfpipe.commands import one_line_errors

__all__ = ["campaign"]


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--snakemake-config",
    type=click.Path(dir_okay=False),
    help="Only fetch and pair the inputs, and write this Snakemake config for the workflow.",
)
@one_line_errors
def campaign(config, snakemake_config):
    """Run the campaign in CONFIG (YAML): per analysis a scan table and a contour,
    and <output>/summary.csv. A second run reuses what is up to date: cached downloads,
    tables whose inputs and settings are unchanged, existing contours.

    Exits 1 if an analysis failed (the others' results are kept).
    """
    from hfpipe import campaign as campaigns

    loaded = campaigns.load_campaign(config)
    if snakemake_config:
        import yaml

        from hfpipe.results.atomic import atomic_path

        prepared = campaigns.snakemake_config(loaded)  # fails before anything is written
        with atomic_path(snakemake_config) as temporary:
            temporary.write_text(yaml.safe_dump(prepared, sort_keys=False))
        click.echo(f"Snakemake config → {snakemake_config}", err=True)
        return
    summary = campaigns.run_campaign(loaded, report=lambda line: click.echo(line, err=True))
    shown = summary.drop(columns=["table", "contour", "message"])
    click.echo(shown.to_string(index=False))
    click.echo(f"summary → {loaded.output / 'summary.csv'}", err=True)
    if (summary["status"] == "failed").any():
        sys.exit(1)
