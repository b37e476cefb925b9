"""``hfpipe fit``: the maximum-likelihood fit of one model, with Hesse uncertainties."""

from __future__ import annotations

import json
import sys

import click
import numpy as np

from hfpipe.commands import one_line_errors, warn
from hfpipe.commands.options import ModelInputs, model_options
from hfpipe.commands.report import Report

__all__ = ["fit", "maximum_likelihood_fit"]


def maximum_likelihood_fit(model, fixed_poi: float | None = None) -> Report:
    """The best fit of a compiled model to its observed data (the POI held at
    ``fixed_poi`` if given) as ``{"bestfit", "uncertainties", "twice_nll", "converged",
    "edm", "warning"}``, parameters by pyhf's names."""
    import jax.numpy as jnp

    from hfpipe.infer import fit_batch, hesse_uncertainties
    from hfpipe.infer.asymptotic import check_poi_values
    from hfpipe.infer.fit import covariance_warning

    numbers = model.numbers
    init, fixed = np.array(numbers.init), np.array(numbers.fixed)
    if fixed_poi is not None:
        check_poi_values(model.structure, numbers, fixed_poi)
        init[model.poi_index], fixed[model.poi_index] = fixed_poi, True
    data = jnp.asarray(model.observed_data())
    result = fit_batch(model.structure, numbers, data[None], init=init, fixed=fixed)
    covariance, errors = hesse_uncertainties(model.structure, numbers, result.pars[0], data, fixed)
    names = model.parameter_names
    warning = "; ".join(filter(None, [result.warning[0], covariance_warning(covariance, fixed)]))
    converged = bool(result.converged[0])
    output = {
        "bestfit": dict(zip(names, result.pars[0].tolist(), strict=True)),
        "uncertainties": dict(zip(names, errors.tolist(), strict=True)),
        "twice_nll": float(result.twice_nll[0]),
        "converged": converged,
        "edm": float(result.edm[0]),
        "warning": warning,
    }
    warnings = [text for text in ("" if converged else result.message[0], warning) if text]
    return Report(output, converged, warnings)


@click.command()
@model_options
@click.option("--fixed-poi", type=float, help="Hold the POI at this value.")
@click.option(
    "--pulls", "pulls_plot", type=click.Path(dir_okay=False), help="Also draw the pull plot."
)
@one_line_errors
def fit(inputs: ModelInputs, fixed_poi, pulls_plot):
    """Maximum-likelihood fit: best-fit values, Hesse uncertainties, -2 log L."""
    model = inputs.compile()
    report = maximum_likelihood_fit(model, fixed_poi)
    if pulls_plot:
        from hfpipe.commands.postfit import save_pull_plot

        save_pull_plot(model, report.output["bestfit"], report.output["uncertainties"], pulls_plot)
    for text in report.warnings:
        warn(text)
    click.echo(json.dumps(report.output))
    sys.exit(report.exit_code)
