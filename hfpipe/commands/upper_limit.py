"""``hfpipe upper-limit``: the upper limit on the POI of one model, observed and expected."""

from __future__ import annotations

import json
import sys

import click

from hfpipe.commands import one_line_errors, warn
from hfpipe.commands.options import ModelInputs, cl_option, model_options
from hfpipe.commands.report import Report
from hfpipe.infer.teststats import LIMIT_TEST_STATISTICS

__all__ = ["upper_limit", "upper_limits"]


def upper_limits(model, cl: float = 0.95, test_stat: str = "qtilde") -> Report:
    """Upper limits on the POI of a compiled model at confidence level ``cl``, the μ where
    CLs = 1 − ``cl``: ``{"mu_up_obs", "mu_up_exp", "converged", "cl", "test_stat"}``, the
    expected limits ordered −2σ, −1σ, median, +1σ, +2σ; ``status`` and ``message`` added
    when the root was not found."""
    from hfpipe.infer.limits import upper_limits_batch

    limits = upper_limits_batch(model.structure, model.numbers, cl=cl, test_stat=test_stat)
    converged = bool(limits.converged[0])
    values = limits.values[0]
    output = {
        "mu_up_obs": float(values[0]),
        "mu_up_exp": values[1:].tolist(),
        "converged": converged,
        "cl": cl,
        "test_stat": test_stat,
    }
    if not converged:
        output["status"] = "failed"
        output["message"] = str(limits.message[0])
    return Report(output, converged, [str(limits.message[0])] if not converged else [])


@click.command("upper-limit")
@model_options
@cl_option()
@click.option(
    "--test-stat", type=click.Choice(LIMIT_TEST_STATISTICS), default="qtilde", show_default=True
)
@one_line_errors
def upper_limit(inputs: ModelInputs, cl, test_stat):
    """Upper limit on the POI of WORKSPACE (asymptotic CLs = 1 − CL), as JSON.

    mu_up_exp lists the expected limits at -2σ, -1σ, median, +1σ, +2σ.
    """
    report = upper_limits(inputs.compile(), cl, test_stat)
    for text in report.warnings:
        warn(text)
    click.echo(json.dumps(report.output))
    sys.exit(report.exit_code)
