"""``hfpipe rank``: the impact of every nuisance parameter on the POI, with its pull
(one batched fit of all held-parameter fits), optionally grouped impacts and the
ranking plot."""

from __future__ import annotations

import sys

import click

from hfpipe.commands import one_line_errors, warn
from hfpipe.commands.options import ModelInputs, model_options
from hfpipe.commands.report import FAILED_EXIT_CODE

__all__ = ["rank"]


@click.command()
@model_options
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Parquet table, one row per parameter (written atomically).",
)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Ranking plot file.")
@click.option(
    "--top", type=int, default=20, show_default=True, help="Parameters in the plot and printed."
)
@click.option(
    "--method",
    type=click.Choice(["fits", "covariance"]),
    default="fits",
    show_default=True,
    help="Impacts from fits with each parameter held, or from the covariance (no fits).",
)
@click.option(
    "--free/--no-free",
    default=True,
    show_default=True,
    help="Rank the free parameters (normfactors, shapefactors) other than the POI.",
)
@click.option(
    "--gammas/--no-gammas",
    default=True,
    show_default=True,
    help="Rank the γ parameters of staterror and shapesys.",
)
@click.option(
    "--groups",
    "groups_file",
    type=click.Path(dir_okay=False, exists=True),
    help="YAML file of parameter groups (name: [parameters or patterns]): grouped impacts.",
)
@click.option("--groups-by-type", is_flag=True, help="Grouped impacts by modifier type.")
@click.option(
    "--groups-output",
    type=click.Path(dir_okay=False),
    help="Parquet table of the grouped impacts (with --groups or --groups-by-type).",
)
@one_line_errors
def rank(
    inputs: ModelInputs,
    output,
    plot_path,
    top,
    method,
    free,
    gammas,
    groups_file,
    groups_by_type,
    groups_output,
):
    """Ranking of the nuisance parameters by their impact on the POI (Δμ with each
    held at θ̂ ± σ pre- and post-fit), their pulls, and grouped impacts."""
    from hfpipe.commands.postfit import format_groups, format_ranking, provenance
    from hfpipe.infer.bestfit import best_fit
    from hfpipe.infer.groups import grouped_impacts, groups_by_type, load_groups
    from hfpipe.infer.ranking import ranking
    from hfpipe.results import write_table

    model = inputs.compile()
    fit = best_fit(model)
    if fit.warning:
        warn(fit.warning)
    table = ranking(model, fit=fit, method=method, include_free=free, include_gammas=gammas)
    settings = {"method": method, "free": free, "gammas": gammas}
    write_table(table, output, provenance(inputs, settings, dict(table.attrs)))
    click.echo(format_ranking(table, top))
    if groups_file or groups_by_type:
        groups = {}
        if groups_by_type:
            groups.update(groups_by_type(model))
        if groups_file:
            groups.update(load_groups(groups_file, model))
        grouped = grouped_impacts(model, groups, fit=fit)
        click.echo()
        click.echo(format_groups(grouped))
        if groups_output:
            write_table(grouped, groups_output, provenance(inputs, settings, dict(table.attrs)))
    if plot_path:
        from hfpipe.plot.draw import save_figure
        from hfpipe.plot.ranking import draw_ranking

        save_figure(draw_ranking(table, top=top), [plot_path])
    failed = table[table["status"] != "ok"]
    for message in failed["message"]:
        warn(message)
    if len(failed):
        sys.exit(FAILED_EXIT_CODE)
