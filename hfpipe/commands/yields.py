"""``hfpipe yields``: pre- or post-fit expected yields per channel, sample and bin with
their uncertainties, as a Parquet table, a printed table and data/prediction plots."""

from __future__ import annotations

import click

from hfpipe.commands import one_line_errors, warn
from hfpipe.commands.options import ModelInputs, model_options

__all__ = ["yields"]


@click.command()
@model_options
@click.option("--postfit", is_flag=True, help="Post-fit yields (default: pre-fit).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Parquet table (written atomically).",
)
@click.option(
    "--plot",
    "plot_folder",
    type=click.Path(file_okay=False),
    help="Folder for one data/prediction plot per channel (<channel>_<stage>.png).",
)
@click.option(
    "--propagation",
    type=click.Choice(["difference", "jacobian"]),
    default="difference",
    show_default=True,
    help="Yield changes over ±1σ per parameter (cabinetry's), or the derivative.",
)
@one_line_errors
def yields(inputs: ModelInputs, postfit, output, plot_folder, propagation):
    """Expected yields and their uncertainties, pre-fit (constraint widths) or post-fit
    (best fit and Hesse covariance), with the data."""
    from hfpipe.commands.postfit import figure_name, format_yields, provenance
    from hfpipe.infer.bestfit import best_fit
    from hfpipe.infer.yields import postfit_yields, prefit_yields
    from hfpipe.results import write_table

    model = inputs.compile()
    if postfit:
        fit = best_fit(model)
        if fit.warning:
            warn(fit.warning)
        table = postfit_yields(model, fit=fit, propagation=propagation)
    else:
        table = prefit_yields(model, propagation=propagation)
    settings = {"propagation": propagation}
    write_table(table, output, provenance(inputs, settings, dict(table.attrs)))
    click.echo(format_yields(table))
    if plot_folder:
        from hfpipe.plot.draw import save_figure
        from hfpipe.plot.yields import draw_yields

        for channel in model.structure.channels:
            path = figure_name(plot_folder, channel, table.attrs["stage"])
            save_figure(draw_yields(table, channel), [path])
