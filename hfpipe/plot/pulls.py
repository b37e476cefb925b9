"""The pull plot: (θ̂ − θ₀)/σ_pre of every constrained parameter with its post-fit
uncertainty σ_post/σ_pre, against the ±1σ and ±2σ bands of the constraints.

Drawn from a table of :func:`hfpipe.infer.ranking.pulls`; free parameters (no pull) are
left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hfpipe.plot.style import styled

__all__ = ["draw_pulls"]

_BANDS = ((2, "#ffe838"), (1, "#3fbf3f"))  # the conventional yellow and green


@styled
def draw_pulls(frame: pd.DataFrame, *, title: str | None = None):
    """A matplotlib figure of the pulls in ``frame``, in its row order from the top
    (``style=``: an mplhep style name, default ATLAS)."""
    import matplotlib.pyplot as plt

    shown = frame[frame["pull"].notna()].reset_index(drop=True)
    n = len(shown)
    y = np.arange(n)[::-1]
    figure, axes = plt.subplots(figsize=(7, 1.6 + 0.3 * n), layout="constrained")
    for width, colour in _BANDS:
        axes.axvspan(-width, width, color=colour, zorder=0)
    axes.axvline(0, color="black", ls=":", lw=1)
    axes.errorbar(shown["pull"], y, xerr=shown["pull_uncertainty"], fmt="o", color="black", ms=4)
    reach = np.nanmax(np.abs(shown["pull"]) + shown["pull_uncertainty"]) if n else 0.0
    limit = max(3.0, 1.1 * reach)
    axes.set_xlim(-limit, limit)
    axes.set_ylim(-0.7, n - 0.3)
    axes.set_yticks(y, shown["parameter"], fontsize="x-small")
    axes.tick_params(axis="y", which="minor", left=False, right=False)
    axes.set_xlabel(r"$(\hat{\theta} - \theta_0)/\Delta\theta$", loc="center")
    if title:
        axes.set_title(title, fontsize="medium")
    return figure
