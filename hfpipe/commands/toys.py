"""Toy-based CLs on the command line: the options of ``hfpipe cls --calctype toybased``
and ``hfpipe merge-toys``, which turns toy chunk files of one run into CLs."""

from __future__ import annotations

import functools
import json
import os

import click

from hfpipe.commands import one_line_errors
from hfpipe.commands.options import apply_options, sampling_options, toy_batch_size_option
from hfpipe.commands.report import Report

__all__ = ["merge_toys", "toy_cls_report", "toy_options", "toy_report"]


_max_failed_fraction = click.option(
    "--max-failed-fraction", type=float, default=0.01, show_default=True
)


def toy_options(command):
    """``--calctype``, ``--ntoys``, ``--seed`` … for a command that computes CLs."""
    options = [
        functools.partial(sampling_options, ntoys=2000),
        toy_batch_size_option,
        click.option(
            "--first-toy",
            type=click.IntRange(0),
            default=0,
            show_default=True,
            help="Index of the first toy (chunk k of n toys: k·n).",
        ),
        _max_failed_fraction,
        click.option(
            "--toy-workers",
            type=click.IntRange(1),
            default=None,
            help="Processes that share the toys, one core each [default: every core the "
            "toys keep busy, 5,000 pseudo-experiments or more a process].",
        ),
        click.option(
            "--toys-output",
            type=click.Path(dir_okay=False),
            help="Save the toys' test statistics to this Parquet file (merge-toys merges them).",
        ),
    ]
    return apply_options(command, options)


def toy_report(distributions, max_failed_fraction: float) -> Report:
    """Toy-based CLs as ``{"CLs_obs", "CLs_exp", ...}`` (pyhf's keys), with bootstrap
    statistical errors, the number of toys and failed toy fits and the seed: what the
    command line prints and a service job returns."""
    result = distributions.cls(max_failed_fraction=max_failed_fraction)
    errors = distributions.standard_errors(n_bootstrap=100)
    output = {
        "CLs_obs": result.cls_obs,
        "CLs_exp": result.cls_exp.tolist(),
        "CLs_obs_error": float(errors[0]),
        "CLs_exp_error": errors[1:].tolist(),
        "calctype": "toybased",
        "ntoys": result.ntoys,
        "n_failed": result.n_failed,
        "seed": distributions.seed,
    }
    return Report(output)


def _echo(report: Report) -> None:
    click.echo(json.dumps(report.output))


def toy_cls_report(
    model,
    mu: float,
    test_stat: str,
    inputs: dict,
    *,
    ntoys: int,
    seed: int,
    toy_batch_size: int | None,
    first_toy: int = 0,
    max_failed_fraction: float = 0.01,
    toy_workers: int | None = None,
    toys_output: str | None = None,
) -> Report:
    """Toy-based CLs of a compiled model (:func:`toy_report`); the toys saved to
    ``toys_output`` if given.

    ``inputs`` (workspace path, patches, …) go into the chunk file's provenance, with
    the workspace's sha256.
    """
    from hfpipe import __version__
    from hfpipe.api import toys

    distributions = toys(
        model,
        mu,
        ntoys=ntoys,
        seed=seed,
        first_toy=first_toy,
        test_stat=test_stat,
        batch_size=toy_batch_size,
        workers=toy_workers,
    )
    if toys_output:
        from hfpipe.results.toys import write_toys
        from hfpipe.spec.digests import file_sha256

        workspace = os.fspath(inputs["workspace"])
        provenance = {
            "hfpipe_version": __version__,
            **inputs,
            "workspace": {"path": workspace, "sha256": file_sha256(workspace)},
        }
        write_toys(distributions, toys_output, provenance)
    return toy_report(distributions, max_failed_fraction)


@click.command("merge-toys")
@click.argument("chunks", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@_max_failed_fraction
@one_line_errors
def merge_toys(chunks, max_failed_fraction):
    """Toy-based CLs (JSON) from toy chunk files of one run (hfpipe cls --toys-output)."""
    from hfpipe.results.toys import read_toys

    _echo(toy_report(read_toys(chunks), max_failed_fraction))
