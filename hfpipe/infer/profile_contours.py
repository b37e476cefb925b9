"""Contours of a 2-D profile: where Δ(−2 ln L) equals the χ² quantile with two degrees
of freedom (68.27 %: 2.30, 95 %: 5.99).

The lines are traced on the grid (contourpy, linear interpolation), then refined: a
vertex added in the middle of every segment, and every vertex moved along the contour's
normal, within one grid cell, to the root of Δ − level, each evaluation a fit
(:mod:`hfpipe.infer.roots`: all vertices in each batched call).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from hfpipe.errors import InvalidSettings
from hfpipe.infer.profile_scan import DEFAULT_CLS, ProfileScan, delta_evaluator, delta_level
from hfpipe.infer.roots import bracketed_roots

__all__ = ["Contour", "contours"]


@dataclass(frozen=True)
class Contour:
    """The lines where a 2-D profile's Δ equals the level of confidence level ``cl``:
    each an (m, 2) array of (first parameter, second parameter) vertices, closed lines
    ending where they start; ``refined`` says per line which vertices were refined by
    fits (the others are interpolated on the grid)."""

    cl: float
    level: float
    lines: tuple[np.ndarray, ...]
    refined: tuple[np.ndarray, ...]


def contours(
    scan: ProfileScan,
    cls: Sequence[float] = DEFAULT_CLS,
    *,
    refine: bool = True,
    tolerance: float = 1e-4,
) -> list[Contour]:
    """The contours of a 2-D profile at each confidence level of ``cls`` (Δ = 2.30 for
    68.27 %, 5.99 for 95 %), traced on the grid (contourpy, linear interpolation) and,
    with ``refine``, a vertex added in the middle of every segment (the grid's vertices
    lie on its lines only, too sparse where a contour bends) and every vertex moved to
    the root of Δ − level along the contour's normal within one grid cell (cut at the
    parameters' bounds), by fits, to ``tolerance`` in parameter units. A vertex without
    a root in that range keeps its interpolated place.
    """
    if len(scan.parameters) != 2:
        raise InvalidSettings("contours are for 2-D profiles; use intervals for 1-D")
    import contourpy

    gx, gy = scan.grid
    field = scan.delta.reshape(len(gx), len(gy)).T  # rows: second parameter
    generator = contourpy.contour_generator(gx, gy, np.ma.masked_invalid(field))
    found = []
    for cl in cls:
        level = delta_level(cl, 2)
        lines = tuple(np.asarray(line, dtype=float) for line in generator.lines(level))
        found.append(Contour(cl, level, lines, tuple(np.zeros(len(v), bool) for v in lines)))
    if refine:
        found = [replace(c, lines=tuple(map(_subdivided, c.lines))) for c in found]
        found = _refine_contours(scan, found, tolerance)
    return found


def _subdivided(line: np.ndarray) -> np.ndarray:
    """``line`` with the midpoint of each segment inserted (closed lines stay closed)."""
    if len(line) < 2:
        return line
    out = np.empty((2 * len(line) - 1, 2))
    out[0::2] = line
    out[1::2] = 0.5 * (line[:-1] + line[1:])
    return out


def _refine_contours(scan: ProfileScan, found: list[Contour], tolerance: float) -> list[Contour]:
    """Every vertex of every contour moved along the normal to Δ = level (one batch)."""
    vertices = [v for c in found for v in c.lines]
    if not vertices:
        return found
    gx, gy = scan.grid
    cell = np.array([np.min(np.diff(gx)), np.min(np.diff(gy))])
    points = np.concatenate(vertices)
    level = np.concatenate([np.full(len(v), c.level) for c in found for v in c.lines])
    normal = _normals(scan, points) * cell  # one cell along the normal: t = ±1
    reach = np.linalg.norm(normal, axis=1)
    t_lo, t_hi = scan.problem.segment(points, normal)
    nearest = _nearest_fits(scan, points)
    # two calls of the vertices' batch shape, which the root-finding steps reuse
    g_lo = _deltas(scan, points + t_lo[:, None] * normal, nearest) - level
    g_hi = _deltas(scan, points + t_hi[:, None] * normal, nearest) - level

    def points_at(t, rows):
        return points[rows] + t[:, None] * normal[rows]

    evaluate = delta_evaluator(scan, level, points_at, nearest.copy())
    t, ok = bracketed_roots(
        evaluate,
        t_lo,
        t_hi,
        g_lo,
        g_hi,
        tolerance=tolerance / np.where(reach > 0, reach, 1.0),
    )
    moved = np.where(ok[:, None], points + np.nan_to_num(t)[:, None] * normal, points)
    out, start = [], 0
    for contour in found:
        lines, refined = [], []
        for line in contour.lines:
            stop = start + len(line)
            lines.append(moved[start:stop])
            refined.append(ok[start:stop])
            start = stop
        out.append(replace(contour, lines=tuple(lines), refined=tuple(refined)))
    return out


def _normals(scan: ProfileScan, points: np.ndarray) -> np.ndarray:
    """Unit normals (in grid-cell units) of the interpolated Δ field at ``points``,
    pointing uphill."""
    gx, gy = scan.grid
    cell = np.array([np.min(np.diff(gx)), np.min(np.diff(gy))])
    field = np.nan_to_num(scan.delta.reshape(len(gx), len(gy)), nan=np.nanmax(scan.delta))
    slopes = np.gradient(field, gx, gy)
    gradient = (
        np.stack([RegularGridInterpolator((gx, gy), s)(points) for s in slopes], axis=1) * cell
    )
    norm = np.linalg.norm(gradient, axis=1, keepdims=True)
    return np.where(norm > 0, gradient / np.where(norm > 0, norm, 1.0), 0.0)


def _nearest_fits(scan: ProfileScan, points: np.ndarray) -> np.ndarray:
    """The parameters of the converged grid fit nearest to each point (in cell units)."""
    gx, gy = scan.grid
    cell = np.array([np.min(np.diff(gx)), np.min(np.diff(gy))])
    ok = np.flatnonzero(scan.fits.converged)
    distance = np.linalg.norm((points[:, None, :] - scan.points[None, ok, :]) / cell, axis=2)
    return scan.fits.pars[ok[np.argmin(distance, axis=1)]]


def _deltas(scan: ProfileScan, points: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Δ at ``points`` (fits from ``starts``), NaN where a fit failed."""
    fits = scan.problem.fit(points, starts)
    return np.where(fits.converged, fits.twice_nll - scan.twice_nll_min, np.nan)
