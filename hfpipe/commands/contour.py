"""``hfpipe contour`` and ``hfpipe brazil``: pictures and line data from a scan table.

``-o`` is repeatable and the suffix picks what is written: ``.png``/``.pdf``/``.svg`` a
figure, ``.csv``/``.parquet`` the line coordinates (contour vertices, or the 1-D
curves and their crossings) as data.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click

from hfpipe.commands import one_line_errors
from hfpipe.commands.options import cl_option
from hfpipe.errors import InputError

__all__ = ["brazil", "contour"]

_DATA_SUFFIXES = (".csv", ".parquet")


@contextlib.contextmanager
def _naming(file: str):
    """Errors about the table's content name the table's file."""
    try:
        yield
    except InputError as error:
        error.file = error.file or file
        raise


def _split_outputs(outputs: tuple[str, ...]) -> tuple[list[str], list[str]]:
    from hfpipe.plot.draw import FIGURE_SUFFIXES

    figures, data = [], []
    for output in outputs:
        suffix = Path(output).suffix
        if suffix in FIGURE_SUFFIXES:
            figures.append(output)
        elif suffix in _DATA_SUFFIXES:
            data.append(output)
        else:
            raise InputError(
                f"output format from the suffix: one of {FIGURE_SUFFIXES + _DATA_SUFFIXES}",
                file=output,
                path="",
            )
    return figures, data


_common = [
    click.argument("table", type=click.Path(dir_okay=False)),
    click.option(
        "-o",
        "--output",
        "outputs",
        multiple=True,
        required=True,
        help="Output file, repeatable; .png/.pdf/.svg for a figure, .csv/.parquet for the data.",
    ),
    click.option("--analysis", help="Analysis to plot, if the table holds several."),
    cl_option(),
    click.option("--title", help="Figure title."),
    click.option("--xlabel", help="x-axis title (default: the label's name)."),
    click.option("--style", default="ATLAS", show_default=True, help="mplhep style."),
]


def _with_common(command):
    for option in reversed(_common):
        command = option(command)
    return command


@click.command()
@_with_common
@click.option("--x", "x", help="Label on the x axis (default: the first label).")
@click.option("--y", "y", help="Label on the y axis (default: the second label).")
@click.option("--ylabel", help="y-axis title (default: the label's name).")
@click.option(
    "--bands",
    type=click.IntRange(0, 2),
    default=2,
    show_default=True,
    help="Expected bands to fill: 0, 1 (±1σ) or 2 (±1σ and ±2σ).",
)
@one_line_errors
def contour(table, outputs, analysis, cl, title, xlabel, style, x, y, ylabel, bands):
    """Exclusion contour of a scan TABLE: observed and expected CLs = 1 − CL lines.

    CLs is interpolated in log10 linearly over the Delaunay triangulation of the points
    (see hfpipe.plot.contour); points are marked excluded, allowed or not ok.
    """
    from hfpipe.plot import exclusion_contours, write_contour_data
    from hfpipe.results import read_scan_table

    figures, data = _split_outputs(outputs)
    scan_table = read_scan_table(table, analysis)
    with _naming(table):
        contours = exclusion_contours(scan_table, x, y, cl=cl)
    for path in data:
        write_contour_data(contours, path)
    if figures:
        from hfpipe.plot.draw import draw_contours, save_figure

        figure = draw_contours(
            contours, bands=bands, title=title, xlabel=xlabel, ylabel=ylabel, style=style
        )
        save_figure(figure, figures, style=style)
    segments = {kind: len(lines) for kind, lines in contours.lines.items()}
    click.echo(
        f"contour over ({contours.x}, {contours.y}), segments {segments} → " + ", ".join(outputs),
        err=True,
    )


def _parse_where(where: tuple[str, ...]) -> dict[str, float]:
    chosen = {}
    for item in where:
        name, sep, value = item.partition("=")
        try:
            chosen[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InputError(f"--where takes LABEL=VALUE, got {item!r}", path="")
    return chosen


@click.command()
@_with_common
@click.option("--x", "x", help="Label on the x axis (default: the first label).")
@click.option("--where", multiple=True, help="Fix another label, e.g. --where m2=0 (repeatable).")
@click.option(
    "--quantity",
    type=click.Choice(["cls", "mu_up"]),
    default="cls",
    show_default=True,
    help="Plot CLs at the tested mu, or the upper limit on mu (scan with --upper-limits).",
)
@one_line_errors
def brazil(table, outputs, analysis, cl, title, xlabel, style, x, where, quantity):
    """Brazil plot of a scan TABLE: CLs or mu_up along one label with the ±1σ/±2σ bands.

    Prints the x values where the observed and expected curves cross the threshold
    (CLs = 1 − CL, or mu_up = 1) as JSON.
    """
    from hfpipe.plot import brazil_curves, select_slice
    from hfpipe.results import read_scan_table

    figures, data = _split_outputs(outputs)
    scan_table = read_scan_table(table, analysis)
    with _naming(table):
        if where:
            scan_table = select_slice(scan_table, _parse_where(where))
        curves = brazil_curves(scan_table, x, quantity=quantity, cl=cl)
    for path in data:
        if path.endswith(".csv"):
            curves.values.to_csv(path, index=False)
        else:
            curves.values.to_parquet(path, index=False)
    if figures:
        from hfpipe.plot.draw import draw_brazil, save_figure

        figure = draw_brazil(curves, title=title, xlabel=xlabel, style=style)
        save_figure(figure, figures, style=style)
    click.echo(json.dumps({"x": curves.x, "threshold": curves.threshold, **curves.crossings}))
