"""The ranking plot: the parameters with the largest impact on the POI, their pre- and
post-fit impacts as bars (top axis, Δμ) and their pulls with ±1 lines (bottom axis).

Drawn from a table of :func:`hfpipe.infer.ranking.ranking`. Parameters are ordered by
their largest post-fit impact. Free parameters (normfactors) have no pull: their best
fit and uncertainty are written next to their name instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hfpipe.plot.style import IMPACT_COLOURS, styled

__all__ = ["draw_ranking"]


def _label(row) -> str:
    if np.isnan(row.pull):
        return f"{row.parameter} ({row.bestfit:.2f} ± {row.uncertainty:.2f})"
    return str(row.parameter)


@styled
def draw_ranking(frame: pd.DataFrame, *, top: int = 20, title: str | None = None):
    """A matplotlib figure of the ``top`` parameters of a ranking table by post-fit
    impact (``style=``: an mplhep style name, default ATLAS)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    shown = frame.sort_values("rank").head(top).reset_index(drop=True)
    n = len(shown)
    y = np.arange(n)[::-1]
    figure, pulls = plt.subplots(figsize=(9, 2.4 + 0.42 * n), layout="constrained")
    impacts = pulls.twiny()
    pulls.set_zorder(impacts.get_zorder() + 1)  # markers over the bars
    pulls.patch.set_visible(False)
    up, down = IMPACT_COLOURS
    for column, colour, filled in (
        ("prefit_up", up, False),
        ("prefit_down", down, False),
        ("postfit_up", up, True),
        ("postfit_down", down, True),
    ):
        style = dict(color=colour, alpha=0.85) if filled else dict(fill=False, edgecolor=colour)
        impacts.barh(y, shown[column], height=0.7 if filled else 0.8, lw=1.2, **style)
    largest = np.nanmax(np.abs(shown[["prefit_up", "prefit_down", "postfit_up", "postfit_down"]]))
    limit = 1.15 * (largest if np.isfinite(largest) and largest > 0 else 1.0)
    impacts.set_xlim(-limit, limit)
    impacts.set_xlabel(r"$\Delta\hat{\mu}$", loc="center")
    for x, line in ((-1, "--"), (0, ":"), (1, "--")):
        pulls.axvline(x, color="grey", ls=line, lw=1)
    has_pull = shown["pull"].notna().to_numpy()
    pulls.errorbar(
        shown["pull"][has_pull],
        y[has_pull],
        xerr=shown["pull_uncertainty"][has_pull],
        fmt="o",
        color="black",
        ms=5,
        capsize=0,
    )
    reach = np.nanmax(np.abs(shown["pull"] + np.sign(shown["pull"]) * shown["pull_uncertainty"]))
    pull_limit = max(2.0, 1.1 * reach) if np.isfinite(reach) else 2.0
    pulls.set_xlim(-pull_limit, pull_limit)
    pulls.set_xlabel(r"$(\hat{\theta} - \theta_0)/\Delta\theta$", loc="center")
    pulls.set_yticks(y, [_label(row) for row in shown.itertuples()], fontsize="small")
    pulls.set_ylim(-0.7, n - 0.3)
    pulls.tick_params(axis="y", which="minor", left=False, right=False)
    handles = [
        Patch(fill=False, edgecolor=up, label=r"pre-fit $\theta = \hat{\theta} + \Delta\theta$"),
        Patch(fill=False, edgecolor=down, label=r"pre-fit $\theta = \hat{\theta} - \Delta\theta$"),
        Patch(color=up, label=r"post-fit $\theta = \hat{\theta} + \Delta\hat{\theta}$"),
        Patch(color=down, label=r"post-fit $\theta = \hat{\theta} - \Delta\hat{\theta}$"),
        Line2D([], [], marker="o", color="black", ls="", label="pull"),
    ]
    poi = frame.attrs.get("poi")
    if title is None and poi:
        mu, sigma = frame.attrs["poi_bestfit"], frame.attrs["poi_uncertainty"]
        title = f"{poi} = {mu:.3f} ± {sigma:.3f}"
    figure.legend(
        handles=handles, loc="outside upper center", ncol=3, fontsize="small", title=title
    )
    return figure
