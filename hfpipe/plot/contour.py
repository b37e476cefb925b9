"""Exclusion contours as data: the CLs = 1 − CL lines of a scan table over two labels.

How the lines are found, and why:

1. Only points with ``status == "ok"`` enter; the others are kept aside for drawing.
2. The two label axes are rescaled to [0, 1] each, so that a triangulation over, say,
   m1 ∈ [200, 1000] GeV and m2 ∈ [0, 300] GeV is not skewed by the units.
3. CLs is interpolated as ``log10(CLs)`` (clipped at 1e-12): CLs falls roughly
   exponentially with the signal yield, so in log space it is close to linear between
   neighbouring points and the 0.05 crossing lands where it should, instead of being
   pulled towards the points with CLs near 1.
4. The interpolator is scipy's ``LinearNDInterpolator``: piecewise-linear on the
   Delaunay triangulation of the points. Published scans are irregular grids (dense
   near the expected boundary, diagonal cuts at m1 = m2), and linear interpolation on
   triangles is exact at every point, never overshoots between them (unlike RBF or
   cubic schemes, which invent wiggles where points are sparse) and does not
   extrapolate beyond the convex hull of the points: where nothing was computed, no
   line is drawn.
5. Flat triangles on the border of the triangulation are dropped (as matplotlib's
   ``TriAnalyzer.get_flat_tri_mask`` does): a row of points along a kinematic edge
   such as m(N1) = m(C1) − m(h) is joined by slivers whose corners lie far apart, and
   interpolating across them draws lines where nothing was computed. A border triangle
   whose inscribed/circumscribed circle ratio is below ``min_circle_ratio`` (0.1 by
   default; 0.5 is an equilateral triangle) is removed, repeatedly, from the outside in.
6. The interpolated field is sampled on a fine regular grid and its level-set
   ``log10(1 − CL)`` is traced with ``contourpy`` (matplotlib's contour engine). Since
   the field is linear on each triangle, a fine grid reproduces the triangle-wise
   line to well below the point spacing.

The result, :class:`Contours`, holds the lines (several segments per kind are
possible) and the sampled fields the drawing code fills the ±1σ/±2σ bands from; its
:meth:`Contours.to_frame` gives the vertices as a table to save as CSV or Parquet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hfpipe.errors import InputError
from hfpipe.results.columns import EXPECTED_COLUMNS, label_columns

__all__ = ["KINDS", "Contours", "choose_axes", "exclusion_contours", "write_contour_data"]

#: Contour kinds and the scan-table column each is drawn from.
KINDS = {
    "obs": "cls_obs",
    "exp": "cls_exp",
    "exp_m1": "cls_exp_m1",
    "exp_p1": "cls_exp_p1",
    "exp_m2": "cls_exp_m2",
    "exp_p2": "cls_exp_p2",
}
_LOG_FLOOR = -12.0


@dataclass
class Contours:
    """Exclusion lines of one analysis in the (x, y) label plane.

    ``lines[kind]`` is a list of ``(n, 2)`` arrays (x, y vertices), one per connected
    segment; ``grid_x``/``grid_y`` and ``fields[kind]`` (log10 CLs, NaN outside the
    points' convex hull) are the sampled interpolation the lines were traced on.
    """

    x: str
    y: str
    level: float
    lines: dict[str, list[np.ndarray]]
    grid_x: np.ndarray
    grid_y: np.ndarray
    fields: dict[str, np.ndarray]
    points: pd.DataFrame = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        """Vertices as a table: kind, segment, vertex, x, y (x and y named by the labels)."""
        pieces = [
            pd.DataFrame(
                {
                    "kind": kind,
                    "segment": k,
                    "vertex": np.arange(len(line)),
                    self.x: line[:, 0],
                    self.y: line[:, 1],
                }
            )
            for kind, segments in self.lines.items()
            for k, line in enumerate(segments)
        ]
        if not pieces:
            return pd.DataFrame(columns=["kind", "segment", "vertex", self.x, self.y])
        frame = pd.concat(pieces, ignore_index=True)
        frame.attrs["cls_level"] = self.level
        return frame


def choose_axes(table: pd.DataFrame, x: str | None, y: str | None) -> tuple[str, str]:
    """The label columns to plot: the given names, or the table's first two labels."""
    labels = label_columns(table.columns)
    for name in (x, y):
        if name is not None and name not in table.columns:
            raise InputError(f"no column {name!r} in the scan table (labels: {labels})", path="")
    chosen = [x, y]
    free = [label for label in labels if label not in chosen]
    for i in (0, 1):
        if chosen[i] is None:
            if not free:
                raise InputError(
                    f"need two label columns for a contour, the table has {labels}", path=""
                )
            chosen[i] = free.pop(0)
    return chosen[0], chosen[1]


def exclusion_contours(
    table: pd.DataFrame,
    x: str | None = None,
    y: str | None = None,
    *,
    cl: float = 0.95,
    resolution: int = 300,
    min_circle_ratio: float = 0.1,
) -> Contours:
    """Observed and expected CLs = 1 − ``cl`` lines of a scan table over labels x and y."""
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import QhullError

    if not 0 < cl < 1:
        raise InputError(f"confidence level must be in (0, 1), got {cl}", path="")
    x, y = choose_axes(table, x, y)
    missing = [c for c in ["status", "cls_obs", *EXPECTED_COLUMNS] if c not in table.columns]
    if missing:
        raise InputError(f"scan table lacks columns {missing}", path="")
    ok = table[table["status"] == "ok"]
    xy = ok[[x, y]].to_numpy(dtype=float)
    if len(xy) < 3:
        raise InputError(
            f"a contour needs at least 3 points with status ok, the table has {len(xy)}", path=""
        )
    low, span = xy.min(axis=0), np.ptp(xy, axis=0)
    if np.any(span == 0):
        raise InputError(
            f"all ok points share one value of {x if span[0] == 0 else y}: no plane", path=""
        )
    unit = (xy - low) / span
    try:
        from scipy.spatial import Delaunay

        triangulation = Delaunay(unit)
    except QhullError as error:
        raise InputError(
            f"cannot triangulate the points over ({x}, {y}): {error}", path=""
        ) from None

    import contourpy

    u = np.linspace(0.0, 1.0, resolution)
    grid_u, grid_v = np.meshgrid(u, u)
    level = float(np.log10(round(1 - cl, 12)))
    columns = ok[list(KINDS.values())].to_numpy(dtype=float)
    values = np.log10(np.clip(columns, 10**_LOG_FLOOR, None))
    # one interpolator for all kinds: the grid is located in the triangulation once
    sampled = LinearNDInterpolator(triangulation, values)(grid_u, grid_v)
    flat = _flat_border_triangles(triangulation, min_circle_ratio)
    simplex = triangulation.find_simplex(np.stack([grid_u, grid_v], axis=-1))
    sampled[(simplex >= 0) & flat[simplex]] = np.nan
    lines, fields = {}, {}
    for k, kind in enumerate(KINDS):
        fields[kind] = sampled[..., k]
        generator = contourpy.contour_generator(
            u, u, np.ma.masked_invalid(fields[kind]), line_type="Separate"
        )
        lines[kind] = [line * span + low for line in generator.lines(level) if len(line) > 1]
    return Contours(
        x=x,
        y=y,
        level=round(1 - cl, 12),
        lines=lines,
        grid_x=u * span[0] + low[0],
        grid_y=u * span[1] + low[1],
        fields=fields,
        points=table,
    )


def _flat_border_triangles(triangulation, min_circle_ratio: float) -> np.ndarray:
    """Mask of the flat triangles peeled off the border, from the outside in."""
    corners = triangulation.points[triangulation.simplices]  # (n, 3, 2)
    sides = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=-1)
    a, b, c = sides.T
    area = 0.5 * np.abs(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]))
    perimeter = a + b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (2 * area / perimeter) / (a * b * c / (4 * area))  # inradius / circumradius
    flat = np.nan_to_num(ratio) < min_circle_ratio
    masked = np.zeros(len(corners), dtype=bool)
    neighbours = triangulation.neighbors
    while True:
        outside = (neighbours == -1) | masked[np.where(neighbours >= 0, neighbours, 0)]
        peel = outside.any(axis=1) & flat & ~masked
        if not peel.any():
            return masked
        masked |= peel


def write_contour_data(contours: Contours, path: str | os.PathLike) -> Path:
    """Save the contour vertices as ``.csv`` or ``.parquet`` (chosen by the suffix)."""
    path = Path(path)
    frame = contours.to_frame()
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        raise InputError(
            f"contour data goes to .csv or .parquet, not {path.suffix!r}", file=str(path), path=""
        )
    return path
