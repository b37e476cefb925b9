"""Confidence intervals of a 1-D profile: where Δ(−2 ln L) ≤ the χ² quantile.

The level of confidence level CL is the χ² quantile with one degree of freedom (68.27 %:
1, 95 %: 3.84). Crossings are first found by linear interpolation between the grid
points around them, then refined by root-finding on Δ(θ) − level between those two
points, each evaluation a fit (:mod:`hfpipe.infer.roots`: all edges in each batched
call), to an absolute tolerance in the parameter's units (1e-4 by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hfpipe.errors import InvalidSettings
from hfpipe.infer.profile_scan import DEFAULT_CLS, ProfileScan, delta_evaluator, delta_level
from hfpipe.infer.roots import bracketed_roots

__all__ = ["intervals"]


def intervals(
    scan: ProfileScan,
    cls: Sequence[float] = DEFAULT_CLS,
    *,
    refine: bool = True,
    tolerance: float = 1e-4,
) -> pd.DataFrame:
    """Confidence intervals of a 1-D profile: one row per connected region where
    Δ ≤ level, for each confidence level in ``cls``.

    Columns: ``parameter``, ``cl``, ``level``, ``bestfit``, ``lower``, ``upper`` and,
    for each edge, ``lower_edge``/``upper_edge``: ``crossing`` (Δ crosses the level
    there), ``bound`` (Δ stays below the level up to the parameter's bound, where the
    grid ends: the edge is the bound) or ``outside grid`` (Δ is below the level at the
    grid's end: the edge lies beyond, NaN). ``refine``: crossings refined by
    root-finding with fits to ``tolerance``; otherwise linearly interpolated.
    """
    if len(scan.parameters) != 1:
        raise InvalidSettings("intervals are for 1-D profiles; use contours for 2-D")
    name = scan.parameters[0]
    x, delta = scan.points[:, 0], scan.delta
    ok = np.isfinite(delta)
    x, delta, pars = x[ok], delta[ok], scan.fits.pars[ok]
    index = scan.problem.indices[0]
    bounds = (scan.problem.model.numbers.lower[index], scan.problem.model.numbers.upper[index])
    rows, crossings = [], []
    for cl in cls:
        level = delta_level(cl, 1)
        for start, stop in _runs(delta <= level):
            row = {"parameter": name, "cl": cl, "level": level, "bestfit": float(scan.bestfit[0])}
            for edge, k, outer in (("lower", start, start - 1), ("upper", stop, stop + 1)):
                if 0 <= outer < len(x):
                    crossings.append((len(rows), edge, outer, k, level))
                    row[edge], row[f"{edge}_edge"] = np.nan, "crossing"
                elif x[k] == bounds[0 if edge == "lower" else 1]:
                    row[edge], row[f"{edge}_edge"] = float(x[k]), "bound"
                else:
                    row[edge], row[f"{edge}_edge"] = np.nan, "outside grid"
            rows.append(row)
    if crossings:
        _, _, outer, inner, level = (np.array(c) for c in zip(*crossings, strict=True))
        outer, inner = outer.astype(int), inner.astype(int)
        level = level.astype(float)
        g_out, g_in = delta[outer] - level, delta[inner] - level
        linear = x[inner] + (x[outer] - x[inner]) * g_in / (g_in - g_out)
        if refine:
            starts = np.where((np.abs(g_in) < np.abs(g_out))[:, None], pars[inner], pars[outer])
            evaluate = delta_evaluator(scan, level, lambda v, _rows: v[:, None], starts.copy())
            roots, found = bracketed_roots(
                evaluate, x[inner], x[outer], g_in, g_out, tolerance=tolerance
            )
            linear = np.where(found, roots, np.nan)
        for k, (row, edge, *_rest) in enumerate(crossings):
            rows[row][edge] = float(linear[k])
    columns = ["parameter", "cl", "level", "bestfit", "lower", "upper", "lower_edge", "upper_edge"]
    return pd.DataFrame(rows, columns=columns)


def _runs(inside: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    edges = np.diff(np.concatenate([[0], inside.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))
