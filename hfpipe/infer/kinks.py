"""Fits of models whose likelihood has kinks: a search over the sides of each kink.

Two interpolation codes are not smooth at α = 0: histosys ``code0`` (piecewise linear)
and normsys ``code1`` (piecewise exponential), whose slope jumps there. Where the jump
makes -2 log L concave across α = 0 (two samples varying in opposite directions, say),
each side can hold its own minimum, and a Newton fit started at α = 0 ends on the side
its first gradient points to — converged, and possibly not at the lowest minimum
(pyhf's coupled-histosys validation model: 2NLL 30.29 instead of 29.29). A minimum can
also sit exactly on a kink, where no gradient vanishes and Newton steps cannot converge.

On either side of its kinks the likelihood is smooth, so the remedy is to fit each side
separately: an *orthant* gives every kinked parameter a sign, and the fit restricted to
it (the parameter's bounds cut at the kink) is a fit of a smooth function, which Newton
solves and whose convergence the EDM judges correctly — a minimum on a kink becomes one
on a bound. The lowest converged orthant fit is the fit's result. With at most
:data:`EXHAUSTIVE` kinked free parameters every orthant is fitted; with more, a local
search: the orthant of the best fit so far and each one that differs from it in one
sign, repeated from the new best one (:data:`MAX_ROUNDS` times at most). A fit of
``k`` kinked parameters costs ``2^k`` or ``k + 1`` fits a round; the smooth codes
(normsys ``code4``, histosys ``code2`` and ``code4p``, the defaults) have no kinks and
cost nothing here.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import jax
import numpy as np

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.model.structure import Layout, Numbers

__all__ = ["EXHAUSTIVE", "MAX_ROUNDS", "kinked_parameters", "orthant_search"]

#: Kinked free parameters up to which every orthant is fitted (2^4 = 16 fits a fit).
EXHAUSTIVE = 4
#: Rounds of the local search over orthants beyond :data:`EXHAUSTIVE`.
MAX_ROUNDS = 5
#: Where a restricted parameter's bound cuts its kink: the side's own formula applies
#: there (the codes take the lower formula at exactly 0), its value is that at 0.
_EDGE = 1e-300
#: A restricted fit must end this much lower to replace the fit it started from.
_LOWER_BY = 1e-9


def kinked_parameters(structure: Layout) -> np.ndarray:
    """Indices of the parameters whose interpolation has a kink at 0."""
    kinked = set()
    if structure.normsys_code == "code1":
        kinked |= set(structure.normsys_params)
    if structure.histosys_code == "code0":
        kinked |= set(structure.histosys_params)
    return np.array(sorted(kinked), dtype=int)


def _orthant_bounds(lower, upper, kinked, signs):
    """Bounds of the orthant ``signs`` (+1/-1 per kinked parameter), or None if empty."""
    lower, upper = lower.copy(), upper.copy()
    positive = signs > 0
    lower[kinked[positive]] = np.maximum(lower[kinked[positive]], _EDGE)
    upper[kinked[~positive]] = np.minimum(upper[kinked[~positive]], -_EDGE)
    return None if np.any(lower > upper) else (lower, upper)


def _candidates(signs: np.ndarray, exhaustive: bool) -> list[np.ndarray]:
    """Every orthant, or ``signs`` and the orthants one sign away from it."""
    if exhaustive:
        return [np.array(s) for s in itertools.product((-1, 1), repeat=len(signs))]
    flips = [signs * np.where(np.arange(len(signs)) == k, -1, 1) for k in range(len(signs))]
    return [signs, *flips]


def orthant_search(fit_rows, numbers: Numbers, data, fixed, result, structure: Layout):
    """The fits of ``result`` (rows of ``data`` with per-row ``numbers`` and ``fixed``)
    replaced by their lowest orthant fits where those end lower or converge where the
    fit did not (see the module docstring). ``fit_rows(numbers, data, init, fixed)``
    fits a batch of rows (per-row numbers) and returns a FitResult. Returns a new
    FitResult; ``result`` itself when the model has no kinked free parameter."""
    kinked = kinked_parameters(structure)
    fixed = np.asarray(fixed, dtype=bool)
    if not len(kinked) or np.all(fixed[:, kinked]):
        return result
    best, searched = result, [set() for _ in range(len(data))]
    for _ in range(MAX_ROUNDS):
        rows, inits, lower, upper = _next_orthants(numbers, fixed, best, kinked, searched)
        if not len(rows):
            break
        restricted = jax.tree.map(lambda a, r=rows: np.asarray(a)[r], numbers)
        restricted = restricted._replace(lower=lower, upper=upper)
        fits = fit_rows(restricted, np.asarray(data)[rows], inits, fixed[rows])
        improved = _lowest(best, rows, fits)
        if improved is best:
            break
        best = improved
    return best


def _next_orthants(numbers: Numbers, fixed, best, kinked, searched):
    """The orthant fits of the next round: for each row its candidates not searched yet
    (:func:`_candidates` around the orthant of its best fit), as rows, starts (the best
    fit clipped into the orthant: a sign that changes starts at the kink) and bounds."""
    rows, inits, lowers, uppers = [], [], [], []
    lower, upper = np.asarray(numbers.lower), np.asarray(numbers.upper)
    for i in range(len(fixed)):
        free = kinked[~fixed[i, kinked]]
        if not len(free):
            continue
        signs = np.where(best.pars[i, free] < 0, -1, 1)
        for candidate in _candidates(signs, len(free) <= EXHAUSTIVE):
            limits = _orthant_bounds(lower[i], upper[i], free, candidate)
            if tuple(candidate) in searched[i] or limits is None:
                continue
            searched[i].add(tuple(candidate))
            rows.append(i)
            inits.append(np.clip(best.pars[i], *limits))
            lowers.append(limits[0])
            uppers.append(limits[1])
    if not rows:
        return np.zeros(0, int), None, None, None
    return np.array(rows), np.stack(inits), np.stack(lowers), np.stack(uppers)


def _lowest(best, rows: np.ndarray, fits):
    """``best`` with each row replaced by its lowest converged restricted fit where that
    ends :data:`_LOWER_BY` lower, or converged where ``best`` did not (``best`` itself
    when no row changes)."""
    replaced, lowest = [], []
    for i in np.unique(rows):
        mine = np.flatnonzero((rows == i) & fits.converged)
        if not len(mine):
            continue
        k = mine[np.argmin(fits.twice_nll[mine])]
        if fits.twice_nll[k] < best.twice_nll[i] - _LOWER_BY or not best.converged[i]:
            replaced.append(i)
            lowest.append(k)
    if not replaced:
        return best
    replaced, lowest = np.array(replaced), np.array(lowest)
    again = fits.take(lowest)
    again = replace(
        again,
        iterations=again.iterations + best.iterations[replaced],
        method=np.array([f"{m}>orthants" for m in best.method[replaced]], dtype=object),
    )
    return best.replace_rows(replaced, again)
