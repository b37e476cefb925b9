"""Data/prediction plots of one channel: the samples stacked, the total's uncertainty
band (hatched), the data with Poisson errors, and a ratio panel data/prediction with
the band relative to the prediction.

Drawn from a table of :func:`hfpipe.infer.yields.prefit_yields` or
:func:`~hfpipe.infer.yields.postfit_yields`. pyhf workspaces carry no bin edges, so the
x axis counts bins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hfpipe.errors import InputError
from hfpipe.plot.style import styled

__all__ = ["draw_yields"]

TOTAL = "total"  # the sample name of the rows summing over samples


def _colours(frame: pd.DataFrame, samples) -> list:
    """One distinct colour a sample, the same in every channel of the table: the style's
    cycle repeats after six, real likelihoods have ten samples and more (petroff10,
    then tab20)."""
    import matplotlib

    every = [s for s in dict.fromkeys(frame["sample"]) if s != TOTAL]
    sequence = matplotlib.color_sequences["petroff10" if len(every) <= 10 else "tab20"]
    return [sequence[every.index(s) % len(sequence)] for s in samples]


@styled
def draw_yields(frame: pd.DataFrame, channel: str, *, title: str | None = None, log: bool = False):
    """A matplotlib figure of ``channel`` from a yields table (``style=``: an mplhep
    style name, default ATLAS)."""
    import matplotlib.pyplot as plt
    import mplhep

    rows = frame[(frame["channel"] == channel) & frame["bin"].notna()]
    if rows.empty:
        raise InputError(f"no channel {channel!r} in the yields table", path="")
    total = rows[rows["sample"] == TOTAL].sort_values("bin")
    predicted = total["yield"].to_numpy()
    band = total["uncertainty"].to_numpy()
    data = total["data"].to_numpy()
    edges = np.arange(len(total) + 1, dtype=float)
    samples = rows[rows["sample"] != TOTAL].pivot(index="bin", columns="sample", values="yield")
    samples = samples[samples.sum().sort_values().index]  # largest on top

    figure, (main, ratio) = plt.subplots(
        2, 1, sharex=True, figsize=(9, 7), height_ratios=(3, 1), layout="constrained"
    )
    mplhep.histplot(
        [samples[s].to_numpy() for s in samples],
        edges,
        stack=True,
        histtype="fill",
        label=list(samples),
        color=_colours(frame, samples.columns),
        ax=main,
    )
    main.stairs(
        predicted + band,
        edges,
        baseline=predicted - band,
        fill=True,
        facecolor="none",
        edgecolor="dimgrey",
        hatch="////",
        lw=0,
        label="Uncertainty",
    )
    centres = 0.5 * (edges[1:] + edges[:-1])
    main.errorbar(centres, data, yerr=np.sqrt(data), fmt="o", color="black", ms=5, label="Data")
    main.set_ylabel("Events")
    if log:
        main.set_yscale("log")
    else:
        main.set_ylim(0, 1.25 * max(np.max(predicted + band), np.max(data + np.sqrt(data))))
    main.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")  # beside
    stage = {"prefit": "Pre-fit", "postfit": "Post-fit"}.get(frame.attrs.get("stage"), "")
    main.set_title(title or f"{channel} {stage}".strip(), fontsize="medium")

    safe = np.where(predicted > 0, predicted, np.nan)
    ratio.stairs(
        1 + band / safe,
        edges,
        baseline=1 - band / safe,
        fill=True,
        facecolor="none",
        edgecolor="dimgrey",
        hatch="////",
        lw=0,
    )
    ratio.errorbar(centres, data / safe, yerr=np.sqrt(data) / safe, fmt="o", color="black", ms=5)
    ratio.axhline(1, color="black", ls="--", lw=1)
    ratio.set_ylim(0.5, 1.5)
    ratio.set_ylabel("Data / Pred.")
    ratio.set_xlabel("Bin")
    ratio.set_xlim(edges[0], edges[-1])
    ratio.set_xticks(centres, [str(b) for b in total["bin"]])
    ratio.tick_params(axis="x", which="minor", bottom=False, top=False)
    return figure
