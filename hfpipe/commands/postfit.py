"""What ``hfpipe rank``, ``hfpipe yields`` and ``hfpipe fit --pulls`` share: the tables
they print, the provenance of the Parquet files they write, and figure saving.

The printed tables are plain text, one line a row, for reading in a terminal; the
Parquet files hold every number.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hfpipe.commands.options import ModelInputs

__all__ = [
    "figure_name",
    "format_groups",
    "format_ranking",
    "format_yields",
    "provenance",
    "save_pull_plot",
]


def provenance(inputs: ModelInputs, settings: dict, attrs: dict) -> dict:
    """hfpipe version, the inputs (workspace with its sha256, patches, point), the
    settings and the table's attributes (the POI's best fit, ...)."""
    from hfpipe import __version__
    from hfpipe.spec.digests import file_sha256

    return {
        "hfpipe_version": __version__,
        **inputs.provenance(),
        "workspace": {"path": inputs.workspace, "sha256": file_sha256(inputs.workspace)},
        "settings": {
            "measurement": inputs.measurement,
            "normsys_code": inputs.normsys_code,
            "histosys_code": inputs.histosys_code,
            "clip_negative_yields": inputs.clip_negative_yields,
            **settings,
        },
        **attrs,
    }


def _value(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:+.4f}"


def format_ranking(frame: pd.DataFrame, top: int) -> str:
    """The ``top`` parameters by post-fit impact: rank, name, pull (or best fit for free
    parameters) and the four impacts."""
    shown = frame.sort_values("rank").head(top)
    width = max([len("parameter"), *map(len, shown["parameter"])])
    columns = ["prefit_up", "prefit_down", "postfit_up", "postfit_down"]
    lines = [
        f"{frame.attrs['poi']} = {frame.attrs['poi_bestfit']:.4f} "
        f"± {frame.attrs['poi_uncertainty']:.4f}",
        f"{'rank':>4}  {'parameter':<{width}}  {'pull':>17}  "
        + "  ".join(f"{c:>12}" for c in columns),
    ]
    for row in shown.itertuples():
        if np.isnan(row.pull):
            pull = f"({row.bestfit:.3f} ± {row.uncertainty:.3f})"
        else:
            pull = f"{row.pull:+.3f} ± {row.pull_uncertainty:.3f}"
        impacts = "  ".join(f"{_value(getattr(row, c)):>12}" for c in columns)
        lines.append(f"{row.rank:>4}  {row.parameter:<{width}}  {pull:>17}  {impacts}")
    return "\n".join(lines)


def format_groups(frame: pd.DataFrame) -> str:
    """Grouped impacts: group, number of parameters, impact on the POI."""
    width = max([len("group"), *map(len, frame["group"])])
    lines = [f"{'group':<{width}}  {'parameters':>10}  {'impact':>10}"]
    for row in frame.itertuples():
        lines.append(f"{row.group:<{width}}  {row.parameters:>10}  {row.impact:>10.4f}")
    return "\n".join(lines)


def format_yields(frame: pd.DataFrame) -> str:
    """Per channel a block: one line per sample (``total`` last, then ``data``), one
    column per bin and one for the sum over bins, ``yield ± uncertainty``."""
    from hfpipe.infer.yields import TOTAL

    blocks = []
    for channel, rows in frame.groupby("channel", sort=False):
        bins = [b for b in rows["bin"].unique() if not pd.isna(b)]
        header = [f"bin {b}" for b in bins] + ["all bins"]
        lines = []
        for sample, of_sample in rows.groupby("sample", sort=False):
            cells = [f"{r.yield_:.3f} ± {r.uncertainty:.3f}" for r in _cells(of_sample)]
            lines.append([sample, *cells])
        totals = rows[rows["sample"] == TOTAL]
        lines.append(["data", *[f"{r.data:g}" for r in _cells(totals)]])
        width = max(len(line[0]) for line in lines)
        cell = max(len(c) for line in [header, *lines] for c in line[1:])
        stage = frame.attrs.get("stage", "")
        text = [f"{channel} ({stage})" if stage else channel]
        text.append(" " * width + "  " + "  ".join(f"{h:>{cell}}" for h in header))
        text += [
            f"{line[0]:<{width}}  " + "  ".join(f"{c:>{cell}}" for c in line[1:]) for line in lines
        ]
        blocks.append("\n".join(text))
    return "\n\n".join(blocks)


def _cells(rows: pd.DataFrame):
    """Rows of one sample: its bins in order, then its sum over bins."""
    ordered = pd.concat([rows[rows["bin"].notna()].sort_values("bin"), rows[rows["bin"].isna()]])
    return ordered.rename(columns={"yield": "yield_"}).itertuples()


def figure_name(folder: str | os.PathLike, channel: str, stage: str) -> Path:
    """``folder/<channel>_<stage>.png``, characters other than letters, digits, ``.``,
    ``_`` and ``-`` in the channel's name replaced by ``_``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", channel)
    return Path(folder) / f"{safe}_{stage}.png"


def save_pull_plot(model, bestfit: dict, uncertainties: dict, path: str) -> None:
    """The pull plot of a fit (parameters by name, as ``hfpipe fit`` prints them) at
    ``path``; the γ parameters of staterror and shapesys are left out, as in
    cabinetry's pull plot."""
    from hfpipe.infer.ranking import pulls
    from hfpipe.plot.draw import save_figure
    from hfpipe.plot.pulls import draw_pulls

    names = model.parameter_names
    table = pulls(
        model,
        [bestfit[n] for n in names],
        [uncertainties[n] for n in names],
        include_gammas=False,
    )
    save_figure(draw_pulls(table), [path])
