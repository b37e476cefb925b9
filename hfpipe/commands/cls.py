"""``hfpipe cls``: CLs of one model at one POI value, asymptotic or toy-based."""

from __future__ import annotations

import json
import sys

import click

from hfpipe.commands import one_line_errors, warn
from hfpipe.commands.options import ModelInputs, model_options
from hfpipe.commands.report import Report
from hfpipe.commands.toys import toy_cls_report, toy_options
from hfpipe.infer.teststats import TEST_STATISTICS

__all__ = ["asymptotic_cls", "cls", "with_significance"]


def asymptotic_cls(model, poi_value: float, test_stat: str) -> Report:
    """Asymptotic CLs of a compiled model as ``{"CLs_obs", "CLs_exp"}`` (pyhf's keys),
    with ``status`` and ``message`` added when a fit failed."""
    from hfpipe.infer import hypotest_batch

    result = hypotest_batch(model.structure, model.numbers, poi_value, test_stat=test_stat)
    converged = bool(result.converged[0])
    output = {"CLs_obs": float(result.cls_obs[0]), "CLs_exp": result.cls_exp[0].tolist()}
    if not converged:
        output["status"] = "failed"
        output["message"] = result.message[0]
    warnings = [text for text in (result.message[0], result.warning[0]) if text]
    return Report(output, converged, warnings)


def with_significance(report: Report) -> Report:
    """A q0 report with ``Z_obs`` and ``Z_exp`` added: Z = Φ⁻¹(1 − p0) of the observed
    p0 (``CLs_obs``) and of each expected one (``CLs_exp``, −2σ … +2σ)."""
    from hfpipe.infer.significance import z_value

    output = dict(report.output)
    output["Z_obs"] = float(z_value(output["CLs_obs"]))
    output["Z_exp"] = z_value(output["CLs_exp"]).tolist()
    return Report(output, report.ok, report.warnings)


@click.command()
@model_options
@click.option(
    "--test-stat", type=click.Choice(TEST_STATISTICS), default="qtilde", show_default=True
)
@click.option("--poi-value", type=float, default=1.0, show_default=True)
@toy_options
@one_line_errors
def cls(inputs: ModelInputs, test_stat, poi_value, **toy_settings):
    """CLs of WORKSPACE at --poi-value (JSON on stdout, pyhf's keys), asymptotic or toy-based.

    CLs_exp lists the expected CLs at -2σ, -1σ, median, +1σ, +2σ. For q0 the values are
    the discovery p-values p0, and Z_obs, Z_exp the significances Z = Φ⁻¹(1 − p0).
    """
    toybased = toy_settings.pop("calctype") == "toybased"
    if toybased:  # their fork server imports the engine while this process does
        from hfpipe.scanning.pool import prepare_toy_processes

        prepare_toy_processes(toy_settings["ntoys"], toy_settings["toy_workers"])
    model = inputs.compile()
    if toybased:
        report = toy_cls_report(model, poi_value, test_stat, inputs.provenance(), **toy_settings)
    else:
        report = asymptotic_cls(model, poi_value, test_stat)
    if test_stat == "q0":
        report = with_significance(report)
    for text in report.warnings:
        warn(text)
    click.echo(json.dumps(report.output))
    sys.exit(report.exit_code)
