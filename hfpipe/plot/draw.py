"""Drawing: exclusion contours and Brazil plots with matplotlib in an mplhep style.

The geometry comes ready from :mod:`hfpipe.plot.contour` and :mod:`hfpipe.plot.brazil`;
this module only draws it. The expected ±1σ (±2σ) band of a contour plot is the region
excluded by the −1σ (−2σ) expected CLs and not by the +1σ (+2σ) one, filled from the
same sampled fields the lines were traced on, so band and lines agree.
Figures are saved in the format their file suffix names (``.png``, ``.pdf``, ``.svg``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hfpipe.errors import InputError
from hfpipe.plot.brazil import Curves
from hfpipe.plot.contour import Contours
from hfpipe.plot.style import styled

__all__ = ["FIGURE_SUFFIXES", "draw_brazil", "draw_contours", "save_figure"]

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
_BAND_COLOURS = {1: "#3fbf3f", 2: "#ffe838"}  # the conventional green and yellow
_STATUS_STYLE = {
    "excluded": dict(marker="o", facecolors="black", edgecolors="black", s=14),
    "allowed": dict(marker="o", facecolors="none", edgecolors="grey", s=14),
    "not ok": dict(marker="x", color="red", s=30),
}


@styled
def draw_contours(
    contours: Contours,
    *,
    bands: int = 2,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
):
    """A matplotlib figure of the observed and expected lines, the bands and the points
    (``style=``: an mplhep style name, default ATLAS).

    Points are marked by outcome: filled (observed CLs below the threshold: excluded),
    hollow (not excluded), red cross (status not ``ok``: failed or invalid).
    """
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 6.5))
    gx, gy = np.meshgrid(contours.grid_x, contours.grid_y)
    level = np.log10(contours.level)
    for n in sorted({1, 2} & set(range(1, bands + 1)), reverse=True):
        lower, upper = contours.fields[f"exp_m{n}"], contours.fields[f"exp_p{n}"]
        # inside the band: excluded by the -nσ curve, not by the +nσ one
        inside = np.fmax(lower - level, level - upper)
        if np.any(inside < 0):
            axes.contourf(gx, gy, inside, levels=[-np.inf, 0], colors=[_BAND_COLOURS[n]])
        axes.fill_between([], [], color=_BAND_COLOURS[n], label=f"Expected ±{n}σ")
    styles = {"exp": dict(color="black", ls="--", lw=2), "obs": dict(color="firebrick", lw=2.5)}
    names = {"exp": "Expected limit", "obs": "Observed limit"}
    for kind in ("exp", "obs"):
        for k, line in enumerate(contours.lines[kind]):
            axes.plot(line[:, 0], line[:, 1], label=names[kind] if k == 0 else None, **styles[kind])
    _draw_points(axes, contours)
    for name, set_limits in ((contours.x, axes.set_xlim), (contours.y, axes.set_ylim)):
        values = contours.points[name].astype(float)
        pad = 0.03 * (values.max() - values.min())
        set_limits(values.min() - pad, values.max() + pad)  # no marker cut at the frame
    axes.set_xlabel(xlabel or contours.x)
    axes.set_ylabel(ylabel or contours.y)
    cl = 100 * (1 - contours.level)
    axes.set_title(title or f"{cl:g}% CL exclusion (CLs = {contours.level:g})", fontsize="medium")
    axes.legend(loc="best", fontsize="small")
    return figure


def _draw_points(axes, contours: Contours) -> None:
    table = contours.points
    ok = table["status"] == "ok"
    excluded = ok & (table["cls_obs"] < contours.level)
    groups = {"excluded": excluded, "allowed": ok & ~excluded, "not ok": ~ok}
    for name, chosen in groups.items():
        if chosen.any():
            rows = table[chosen]
            label = f"{name} ({chosen.sum()})"
            axes.scatter(
                rows[contours.x], rows[contours.y], label=label, zorder=3, **_STATUS_STYLE[name]
            )


@styled
def draw_brazil(
    curves: Curves, *, title: str | None = None, xlabel: str | None = None, logy: bool = True
):
    """The classic Brazil plot: observed and median expected curves, ±1σ/±2σ bands
    (``style=``: an mplhep style name, default ATLAS)."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 6))
    v = curves.values
    x = v[curves.x]
    axes.fill_between(x, v["exp_m2"], v["exp_p2"], color=_BAND_COLOURS[2], label="Expected ±2σ")
    axes.fill_between(x, v["exp_m1"], v["exp_p1"], color=_BAND_COLOURS[1], label="Expected ±1σ")
    axes.plot(x, v["exp"], "k--", lw=2, label="Expected")
    axes.plot(x, v["obs"], "k-", marker="o", ms=4, lw=2, label="Observed")
    what = "CLs" if curves.quantity == "cls" else "95% CL upper limit on μ"
    axes.axhline(
        curves.threshold, color="firebrick", lw=1.5, label=f"{what} = {curves.threshold:g}"
    )
    if logy:
        axes.set_yscale("log")
    axes.set_xlabel(xlabel or curves.x)
    axes.set_ylabel("CLs" if curves.quantity == "cls" else "μ upper limit")
    if title:
        axes.set_title(title, fontsize="medium")
    axes.legend(loc="best", fontsize="small")
    return figure


@styled
def save_figure(figure, paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Save ``figure`` to each path in the format of its suffix; then close it.

    Text is rendered at saving, so pass the ``style=`` the figure was drawn in.
    """
    import matplotlib.pyplot as plt

    saved = []
    try:
        for path in map(Path, paths):
            if path.suffix not in FIGURE_SUFFIXES:
                raise InputError(
                    f"figure format must be one of {FIGURE_SUFFIXES}", file=str(path), path=""
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(path, dpi=150, bbox_inches="tight")
            saved.append(path)
    finally:
        plt.close(figure)
    return saved
