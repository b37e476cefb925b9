"""``hfpipe profile``: a profile-likelihood scan of one or two parameters, its 68 %/95 %
intervals (1-D) or contours (2-D), a Parquet table of the grid and the figure."""

from __future__ import annotations

import json
import sys

import click
import numpy as np

from hfpipe.commands import one_line_errors, warn
from hfpipe.commands.options import ModelInputs, model_options
from hfpipe.commands.report import FAILED_EXIT_CODE
from hfpipe.errors import InvalidSettings

__all__ = ["parse_grid", "profile", "profile_report"]


def parse_grid(specs) -> dict[str, np.ndarray]:
    """``NAME=START:STOP:COUNT`` (repeatable) → ``{NAME: COUNT values from START to
    STOP}``; the name may hold ``=`` or brackets (``staterror_SR[0]``): the last ``=``
    splits."""
    grid: dict[str, np.ndarray] = {}
    for text in specs:
        name, _, values = text.rpartition("=")
        parts = values.split(":")
        try:
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            raise InvalidSettings(
                f"--par {text!r}: expected NAME=START:STOP:COUNT (e.g. mu=0:3:61)"
            ) from None
        if not name or len(parts) != 3:
            raise InvalidSettings(f"--par {text!r}: expected NAME=START:STOP:COUNT")
        if name in grid:
            raise InvalidSettings(f"--par {name} given twice")
        grid[name] = np.linspace(start, stop, count)
    return grid


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def profile_report(result) -> dict:
    """What ``hfpipe profile`` prints: the free fit of the scanned parameters, then the
    intervals (1-D) or, per contour, its level and the range of each parameter along it
    (2-D), and the grid points whose fits failed."""
    scan = result.scan
    output = {
        "parameters": list(scan.parameters),
        "bestfit": dict(zip(scan.parameters, map(float, scan.bestfit), strict=True)),
        "twice_nll_min": scan.twice_nll_min,
        "points": len(scan.points),
        "failed": int(np.sum(~scan.fits.converged)),
    }
    if result.intervals is not None:
        output["intervals"] = [
            {
                "cl": row.cl,
                "level": row.level,
                "lower": _number(row.lower),
                "upper": _number(row.upper),
                "lower_edge": row.lower_edge,
                "upper_edge": row.upper_edge,
            }
            for row in result.intervals.itertuples()
        ]
    else:
        output["contours"] = [_contour_summary(c, scan.parameters) for c in result.contours]
    return output


def _contour_summary(contour, parameters) -> dict:
    vertices = np.concatenate(contour.lines) if contour.lines else np.zeros((0, 2))
    refined = np.concatenate(contour.refined) if contour.refined else np.zeros(0, bool)
    return {
        "cl": contour.cl,
        "level": contour.level,
        "lines": len(contour.lines),
        "vertices": len(vertices),
        "refined": int(refined.sum()),
        "range": {
            name: [_number(vertices[:, k].min()), _number(vertices[:, k].max())]
            if len(vertices)
            else None
            for k, name in enumerate(parameters)
        },
    }


def _contour_data(contours) -> list[dict]:
    """Contour lines as JSON-ready lists (the Parquet file's metadata)."""
    return [
        {"cl": c.cl, "level": c.level, "lines": [line.tolist() for line in c.lines]}
        for c in contours
    ]


@click.command()
@model_options
@click.option(
    "--par",
    "pars",
    multiple=True,
    required=True,
    help="NAME=START:STOP:COUNT: a scanned parameter and its grid; once (1-D) or twice (2-D).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Parquet table of the grid.")
@click.option(
    "--plot",
    "plots",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Figure file (.png, .pdf, .svg; repeatable): the curve or the contours.",
)
@click.option(
    "--extend-bounds",
    is_flag=True,
    help="Allow grid values outside a parameter's bounds (its bounds widened there).",
)
@click.option(
    "--refine/--no-refine",
    default=True,
    show_default=True,
    help="Refine interval edges and contour vertices by root-finding with fits (to 1e-4).",
)
@one_line_errors
def profile(inputs: ModelInputs, pars, output, plots, extend_bounds, refine):
    """Profile likelihood of one or two parameters of WORKSPACE: Δ(−2 ln L) on a grid
    (every other parameter fitted), the 68 %/95 % intervals or contours (JSON on stdout).
    """
    from hfpipe.commands.postfit import provenance
    from hfpipe.infer.profile import profile as run_profile

    model = inputs.compile()
    grid = parse_grid(pars)
    result = run_profile(model, grid, extend_bounds=extend_bounds, refine=refine)
    report = profile_report(result)
    table = result.table()
    if output:
        from hfpipe.results import write_table

        settings = {
            "grid": {k: [float(v[0]), float(v[-1]), len(v)] for k, v in grid.items()},
            "extend_bounds": extend_bounds,
            "refine": refine,
        }
        attrs = dict(table.attrs)
        if result.intervals is not None:
            attrs["intervals"] = result.intervals.to_dict(orient="records")
        else:
            attrs["contours"] = _contour_data(result.contours)
        write_table(table, output, provenance(inputs, settings, attrs))
    if plots:
        from hfpipe.plot.draw import save_figure
        from hfpipe.plot.profile import draw_profile

        figure = draw_profile(table, intervals=result.intervals, contours=result.contours)
        save_figure(figure, plots)
    if report["failed"]:
        warn(f"{report['failed']} of {report['points']} grid points: fits failed")
    click.echo(json.dumps(report))
    if report["failed"]:
        sys.exit(FAILED_EXIT_CODE)
