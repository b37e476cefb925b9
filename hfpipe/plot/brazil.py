"""1-D limits as data: CLs or the upper limit on mu along one label (a "Brazil" plot).

A 1-D scan (or a slice of a 2-D scan at a fixed value of the other labels) gives, per
point, the observed value and the expected median with its ±1σ/±2σ band. The mass
limits are where the curves cross the exclusion threshold: CLs = 1 − CL, or
mu_up = 1 (the signal as predicted). Crossings are found by linear interpolation
between neighbouring points, in log10 for CLs (as for the 2-D contours, see
:mod:`hfpipe.plot.contour`) and linearly for mu_up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hfpipe.errors import InputError
from hfpipe.results.columns import EXPECTED_COLUMNS, LIMIT_COLUMNS, label_columns

__all__ = ["Curves", "brazil_curves", "select_slice"]

_SUFFIXES = ["obs", "exp_m2", "exp_m1", "exp", "exp_p1", "exp_p2"]


@dataclass
class Curves:
    """Observed and expected curves of ``quantity`` (``cls`` or ``mu_up``) along ``x``.

    ``values`` has one column per kind (obs, exp_m2 … exp_p2), rows sorted by x;
    ``crossings[kind]`` lists the x values where that curve crosses ``threshold``.
    """

    x: str
    quantity: str
    threshold: float
    values: pd.DataFrame
    crossings: dict[str, list[float]]


def select_slice(table: pd.DataFrame, where: dict[str, float]) -> pd.DataFrame:
    """Rows whose labels equal the given values (e.g. ``{"m2": 0}``) within 1e-9 relative."""
    chosen = table
    for name, value in where.items():
        if name not in table.columns:
            raise InputError(f"no column {name!r} in the scan table", path="")
        chosen = chosen[np.isclose(chosen[name].astype(float), value, rtol=1e-9, atol=0)]
    if chosen.empty:
        raise InputError(f"no points with {where}", path="")
    return chosen


def _columns(quantity: str) -> list[str]:
    if quantity == "cls":
        return ["cls_obs", *EXPECTED_COLUMNS]
    if quantity == "mu_up":
        return LIMIT_COLUMNS
    raise InputError(f"quantity must be 'cls' or 'mu_up', got {quantity!r}", path="")


def _crossings(x: np.ndarray, f: np.ndarray, level: float) -> list[float]:
    keep = np.isfinite(f)
    x, f = x[keep], f[keep] - level
    found = []
    for i in range(len(x) - 1):
        if f[i] == 0:
            found.append(float(x[i]))
        elif f[i] * f[i + 1] < 0:
            found.append(float(x[i] - f[i] * (x[i + 1] - x[i]) / (f[i + 1] - f[i])))
    if len(f) and f[-1] == 0:
        found.append(float(x[-1]))
    return found


def brazil_curves(
    table: pd.DataFrame, x: str | None = None, *, quantity: str = "cls", cl: float = 0.95
) -> Curves:
    """Curves of CLs (``quantity="cls"``) or mu_up along label ``x`` and their crossings.

    ``table`` must hold one point per x (select a slice of a 2-D scan first with
    :func:`select_slice`); points whose status is not ``ok`` are left out.
    """
    labels = label_columns(table.columns)
    x = x or (labels[0] if labels else None)
    if x is None or x not in table.columns:
        raise InputError(f"no label column {x!r} in the scan table (labels: {labels})", path="")
    columns = _columns(quantity)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(
            f"scan table lacks {missing}"
            + (" (scan with --upper-limits)" if quantity == "mu_up" else ""),
            path="",
        )
    ok = table[table["status"] == "ok"].sort_values(x)
    if ok[x].duplicated().any():
        raise InputError(
            f"several points share a value of {x}: pick a slice of the other labels (--where)",
            path="",
        )
    if len(ok) < 2:
        raise InputError(
            f"a 1-D plot needs at least 2 points with status ok, got {len(ok)}", path=""
        )
    values = pd.DataFrame({x: ok[x].to_numpy(dtype=float)})
    for suffix, column in zip(_SUFFIXES, columns, strict=True):
        values[suffix] = ok[column].to_numpy(dtype=float)
    threshold = round(1 - cl, 12) if quantity == "cls" else 1.0
    crossings = {}
    for suffix in _SUFFIXES:
        curve = values[suffix].to_numpy()
        if quantity == "cls":
            crossings[suffix] = _crossings(
                values[x].to_numpy(), np.log10(np.clip(curve, 1e-12, None)), np.log10(threshold)
            )
        else:
            crossings[suffix] = _crossings(values[x].to_numpy(), curve, threshold)
    return Curves(x=x, quantity=quantity, threshold=threshold, values=values, crossings=crossings)
