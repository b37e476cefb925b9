"""Roots of many bracketed one-dimensional functions at once, each evaluation one batch.

Used where every evaluation of the function is a fit (the edges of profile-likelihood
intervals, the vertices of contours): all rows still open are evaluated together, so a
step costs one batched fit call whatever the number of roots. The method is the
Illinois variant of regula falsi, as for the upper limits (:mod:`hfpipe.infer.limits`):
it keeps a bracket, so it never diverges, and converges superlinearly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["bracketed_roots"]


def bracketed_roots(
    evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray],
    lo,
    hi,
    g_lo,
    g_hi,
    *,
    tolerance,
    max_iterations: int = 60,
) -> tuple[np.ndarray, np.ndarray]:
    """The root of ``g`` in ``[lo, hi]`` of every row, where ``g(lo)`` and ``g(hi)`` have
    opposite signs (or one is 0).

    ``evaluate(x, rows)`` returns ``g`` at ``x`` for the given rows (indices into the
    batch), NaN where it cannot (a fit that failed: that row stops, unconverged).
    ``tolerance`` (a scalar or one per row) is the width the bracket must shrink to; the
    returned root is the linear interpolation inside the final bracket. Returns the
    roots and, per row, whether the bracket reached the tolerance.
    """
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    g_lo, g_hi = np.array(g_lo, dtype=float), np.array(g_hi, dtype=float)
    tolerance = np.broadcast_to(np.asarray(tolerance, dtype=float), lo.shape)
    failed = ~(np.isfinite(g_lo) & np.isfinite(g_hi)) | (np.sign(g_lo) * np.sign(g_hi) > 0)
    side = np.zeros(lo.shape, dtype=int)  # which end was kept last time: Illinois
    for _ in range(max_iterations):
        exact = (g_lo == 0) | (g_hi == 0)
        open_rows = np.flatnonzero(~failed & ~exact & (np.abs(hi - lo) > tolerance))
        if not len(open_rows):
            break
        a, b, ga, gb = lo[open_rows], hi[open_rows], g_lo[open_rows], g_hi[open_rows]
        x = (a * gb - b * ga) / (gb - ga)
        x = np.where(
            np.isfinite(x) & (x > np.minimum(a, b)) & (x < np.maximum(a, b)), x, 0.5 * (a + b)
        )
        g = np.asarray(evaluate(x, open_rows), dtype=float)
        failed[open_rows] |= ~np.isfinite(g)
        same_as_lo = np.sign(g) == np.sign(ga)
        keep_hi, keep_lo = same_as_lo, ~same_as_lo
        # the end kept twice in a row has its value halved
        gb = np.where(keep_hi & (side[open_rows] == 1), gb * 0.5, gb)
        ga = np.where(keep_lo & (side[open_rows] == -1), ga * 0.5, ga)
        lo[open_rows], g_lo[open_rows] = np.where(keep_hi, x, a), np.where(keep_hi, g, ga)
        hi[open_rows], g_hi[open_rows] = np.where(keep_lo, x, b), np.where(keep_lo, g, gb)
        side[open_rows] = np.where(keep_hi, 1, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.where(g_hi != g_lo, (lo * g_hi - hi * g_lo) / (g_hi - g_lo), lo)
    root = np.where(g_lo == 0, lo, np.where(g_hi == 0, hi, root))
    root = np.clip(root, np.minimum(lo, hi), np.maximum(lo, hi))
    exact = (g_lo == 0) | (g_hi == 0)
    converged = ~failed & (exact | (np.abs(hi - lo) <= tolerance))
    return np.where(failed, np.nan, root), converged
