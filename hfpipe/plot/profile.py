"""Profile-likelihood figures: the 1-D Δ(−2 ln L) curve with its interval levels, and the
2-D contours.

Drawn from a profile table (:meth:`hfpipe.infer.profile_scan.ProfileScan.table`: a
column per scanned parameter, then ``delta_twice_nll``), optionally with the intervals
(1-D: the table of :func:`hfpipe.infer.profile_intervals.intervals`, whose edges where
Δ crosses a level are marked; not those at a bound) or the contours (2-D: objects with
``cl``, ``level`` and ``lines``, as :class:`hfpipe.infer.profile_contours.Contour`).
Without contours, a 2-D figure traces the levels on the grid itself (matplotlib's
contouring, linear interpolation). Levels are the χ² quantiles of 68.27 % and 95 %.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr
from scipy.stats import chi2

from hfpipe.plot.style import styled

__all__ = ["draw_profile", "profile_parameters"]

_CLS = (float(ndtr(1.0) - ndtr(-1.0)), 0.95)
_COLOURS = ("#1f5fbf", "#d62728")  # 68 %, 95 %
_LINES = ("-", "--")


def profile_parameters(frame: pd.DataFrame) -> list[str]:
    """The scanned parameters of a profile table: its columns before ``delta_twice_nll``."""
    columns = list(frame.columns)
    return columns[: columns.index("delta_twice_nll")]


def _label(cl: float) -> str:
    return f"{100 * cl:.4g} % CL"


@styled
def draw_profile(
    frame: pd.DataFrame,
    *,
    intervals: pd.DataFrame | None = None,
    contours=None,
    title: str | None = None,
):
    """A matplotlib figure of a 1-D or 2-D profile (``style=``: an mplhep style name,
    default ATLAS)."""
    parameters = profile_parameters(frame)
    ok = frame[frame["status"] == "ok"]
    if len(parameters) == 1:
        figure = _draw_curve(ok, parameters[0], intervals)
    else:
        figure = _draw_contours(ok, parameters, contours, frame.attrs.get("bestfit"))
    if title:
        figure.axes[0].set_title(title, fontsize="medium")
    return figure


def _draw_curve(frame: pd.DataFrame, name: str, intervals: pd.DataFrame | None):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 6))
    x, delta = frame[name].to_numpy(), frame["delta_twice_nll"].to_numpy()
    axes.plot(x, delta, color="black", lw=2, label="Profile likelihood")
    for k, cl in enumerate(_CLS):
        level = chi2.ppf(cl, 1)
        axes.axhline(level, color=_COLOURS[k], ls=_LINES[k], lw=1.5, label=_label(cl))
        if intervals is None:
            continue
        for row in intervals[np.isclose(intervals["cl"], cl)].itertuples():
            for edge, kind in ((row.lower, row.lower_edge), (row.upper, row.upper_edge)):
                if kind == "crossing" and np.isfinite(edge):
                    axes.plot([edge, edge], [0, level], color=_COLOURS[k], ls=":", lw=1.2)
    top = max(1.2 * chi2.ppf(_CLS[-1], 1), 1.05 * np.nanmax(np.minimum(delta, 10.0)))
    axes.set_xlim(x.min(), x.max())
    axes.set_ylim(0, top)
    axes.set_xlabel(name)
    axes.set_ylabel(r"$-2\,\Delta\ln L$")
    axes.legend(loc="best", fontsize="small")
    return figure


def _draw_contours(frame: pd.DataFrame, parameters: list[str], contours, bestfit):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    figure, axes = plt.subplots(figsize=(8, 6.5))
    x_name, y_name = parameters
    handles = []
    if contours is None:
        grid = frame.pivot_table(index=y_name, columns=x_name, values="delta_twice_nll")
        for k, cl in enumerate(_CLS):
            axes.contour(
                grid.columns.to_numpy(),
                grid.index.to_numpy(),
                grid.to_numpy(),
                levels=[chi2.ppf(cl, 2)],
                colors=[_COLOURS[k]],
                linestyles=[_LINES[k]],
                linewidths=2,
            )
            handles.append(Line2D([], [], color=_COLOURS[k], ls=_LINES[k], lw=2, label=_label(cl)))
    else:
        for k, contour in enumerate(contours):
            style = dict(color=_COLOURS[k % 2], ls=_LINES[k % 2], lw=2)
            for line in contour.lines:
                axes.plot(line[:, 0], line[:, 1], **style)
            handles.append(Line2D([], [], label=_label(contour.cl), **style))
    if bestfit is None:
        best = frame.loc[frame["delta_twice_nll"].idxmin()]
        bestfit = {x_name: best[x_name], y_name: best[y_name]}
    axes.plot(bestfit[x_name], bestfit[y_name], marker="P", color="black", ms=10, ls="none")
    handles.append(Line2D([], [], marker="P", color="black", ms=10, ls="none", label="Best fit"))
    axes.set_xlim(frame[x_name].min(), frame[x_name].max())
    axes.set_ylim(frame[y_name].min(), frame[y_name].max())
    axes.set_xlabel(x_name)
    axes.set_ylabel(y_name)
    axes.legend(handles=handles, loc="upper right", fontsize="small")
    return figure
