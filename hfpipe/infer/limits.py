"""Upper limits on the POI: CLs(μ) = 1 - CL for the observed and the 5 expected curves.

All curves of all models are solved together: each iteration is one batched
hypothesis test with one row per (model, curve), each at its own μ. The root of
``log CLs(μ) - log(1 - CL)`` is bracketed from μ = 0 (CLs = 1) by doubling, then found
with the Illinois variant of regula falsi, which keeps a bracket (never diverges) and
converges superlinearly. The POI's upper bound is raised where a tested μ needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from hfpipe.infer.fit import DEFAULT_OPTIONS, FitOptions, batched
from hfpipe.infer.hypotest import hypotest_batch
from hfpipe.model.structure import Numbers, Structure

__all__ = ["UpperLimits", "upper_limits_batch"]

_CURVES = 6  # observed, then expected -2σ … +2σ


@dataclass
class UpperLimits:
    values: np.ndarray  # (n, 6): observed, expected -2σ, -1σ, median, +1σ, +2σ
    converged: np.ndarray  # (n,)
    message: np.ndarray  # (n,)


def upper_limits_batch(
    structure: Structure,
    numbers: Numbers,
    *,
    cl: float = 0.95,
    test_stat: str = "qtilde",
    tolerance: float = 1e-4,
    max_iterations: int = 40,
    options: FitOptions = DEFAULT_OPTIONS,
) -> UpperLimits:
    """Upper limits for every model of a batch (``numbers`` with a leading axis).

    ``tolerance`` is relative on μ (absolute below μ = 1): the returned limit lies
    within it of the root of CLs(μ) = 1 - CL.
    """
    n = np.shape(numbers.nominal)[0] if np.ndim(numbers.nominal) == 2 else 1
    alpha = 1.0 - cl
    rows = jax.tree.map(lambda a: np.repeat(np.asarray(a), _CURVES, axis=0), batched(numbers, n))
    poi = structure.poi_index

    def log_excess(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        upper = np.asarray(rows.upper).copy()
        upper[:, poi] = np.maximum(upper[:, poi], 2.0 * mu)
        result = hypotest_batch(
            structure, rows._replace(upper=upper), mu, test_stat=test_stat, options=options
        )
        # row i*6 + k follows curve k of model i: observed, then expected -2σ … +2σ
        curves = np.column_stack([result.cls_obs, result.cls_exp])
        cls = curves[np.arange(n * _CURVES), np.tile(np.arange(_CURVES), n)]
        with np.errstate(divide="ignore"):
            return np.log(np.clip(cls, 1e-300, None)) - np.log(alpha), result.converged

    lo, g_lo = np.zeros(n * _CURVES), np.full(n * _CURVES, -np.log(alpha))  # CLs(0) = 1
    hi = np.ones(n * _CURVES)
    g_hi, ok = log_excess(hi)
    for _ in range(30):  # double until CLs(hi) < alpha
        above = g_hi > 0
        if not above.any():
            break
        lo, g_lo = np.where(above, hi, lo), np.where(above, g_hi, g_lo)
        hi = np.where(above, hi * 2.0, hi)
        g_new, ok_new = log_excess(hi)
        g_hi, ok = np.where(above, g_new, g_hi), ok & ok_new
    bracketed = g_hi <= 0
    side = np.zeros(n * _CURVES)  # Illinois: which end was kept last time
    for _ in range(max_iterations):
        width = hi - lo
        done = width <= tolerance * np.maximum(hi, 1.0)
        if done.all():
            break
        mu = np.where(done, hi, (lo * g_hi - hi * g_lo) / (g_hi - g_lo))
        mu = np.where(np.isfinite(mu) & (mu > lo) & (mu < hi), mu, 0.5 * (lo + hi))
        g, ok_new = log_excess(mu)
        ok = ok & (ok_new | done)
        positive = g > 0
        replace_lo = ~done & positive
        replace_hi = ~done & ~positive
        # Illinois: halve the kept end's value when the same end is kept twice
        g_hi = np.where(replace_lo & (side == 1), g_hi * 0.5, g_hi)
        g_lo = np.where(replace_hi & (side == -1), g_lo * 0.5, g_lo)
        lo, g_lo = np.where(replace_lo, mu, lo), np.where(replace_lo, g, g_lo)
        hi, g_hi = np.where(replace_hi, mu, hi), np.where(replace_hi, g, g_hi)
        side = np.where(replace_lo, 1, np.where(replace_hi, -1, side))
    # linear interpolation of log CLs inside the final bracket
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.where(g_hi != g_lo, (lo * g_hi - hi * g_lo) / (g_hi - g_lo), hi)
    root = np.clip(root, lo, hi)
    width_ok = (hi - lo) <= tolerance * np.maximum(hi, 1.0) * 10
    converged = (bracketed & width_ok & ok).reshape(n, _CURVES).all(axis=1)
    message = np.where(converged, "", "upper limit not found within tolerance").astype(object)
    return UpperLimits(root.reshape(n, _CURVES), converged, message)
