"""The profile likelihood on a grid: Δ(−2 ln L) of one or two held parameters.

The profile of parameters θ (one or two, any that the fit may move: the POI, another
normfactor, a constrained nuisance parameter) is −2 ln L with θ held and every other
parameter fitted, minus the free fit's −2 ln L. Every grid point is a row of one
:func:`~hfpipe.infer.fit.fit_batch` call, started from the free fit with θ set to the
point's values; then a *sweep* warm-starts along the grid: where a neighbour's minimum
(its held values replaced by the point's) already lies lower than the point's own fit,
the point is fitted again from there, in one batched call for all such points, until no
point improves. A fit can only end at or below its start, so a point stuck in a local
minimum is repaired from any neighbour that is not, and the profile is the lowest the
fits found along the grid. Where a grid point ends below the free fit, the free fit was
a local minimum (a free fit can never lie above a constrained one): it is fitted again
from that point, with θ released, and kept if lower.

Models with kinked interpolation codes get the orthant search of
:mod:`hfpipe.infer.kinks` inside ``fit_batch``, for grid points as for any fit.

A held value outside a parameter's bounds is refused unless ``extend_bounds``: then the
bounds of that row's held parameter are widened to include it (as the upper limits do
for the POI), and whether the model is meaningful there is the caller's call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.special import ndtr
from scipy.stats import chi2

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.errors import FitFailed, InvalidSettings
from hfpipe.infer.fit import (
    DEFAULT_OPTIONS,
    LOCAL_MINIMUM_TOLERANCE,
    FitOptions,
    FitResult,
    batched,
    fit_batch,
)
from hfpipe.model.layout_cache import per_layout
from hfpipe.model.likelihood import prepare, twice_nll
from hfpipe.model.model import Model
from hfpipe.model.structure import Layout

__all__ = [
    "DEFAULT_CLS",
    "ONE_SIGMA",
    "ProfileProblem",
    "ProfileScan",
    "delta_evaluator",
    "delta_level",
    "profile_scan",
]

#: the confidence level of ±1σ of a normal distribution, 68.27 %
ONE_SIGMA = float(ndtr(1.0) - ndtr(-1.0))
#: default confidence levels of intervals and contours
DEFAULT_CLS = (ONE_SIGMA, 0.95)


def delta_level(cl: float, parameters: int) -> float:
    """The Δ(−2 ln L) of confidence level ``cl`` for ``parameters`` profiled parameters:
    the χ² quantile (1-D: 1.00 and 3.84 for 68.27 % and 95 %; 2-D: 2.30 and 5.99)."""
    if not 0.0 < cl < 1.0:
        raise InvalidSettings(f"confidence level must lie in (0, 1), not {cl}")
    return float(chi2.ppf(cl, parameters))


@per_layout
def _values(structure: Layout):
    """``(numbers, pars (n, P), data) -> -2 ln L (n,)`` of one model at many points."""

    def one(numbers, x, data):
        return twice_nll(structure, prepare(structure, numbers), x, data)

    return jax.jit(jax.vmap(one, in_axes=(None, 0, None)))


@dataclass(frozen=True)
class ProfileProblem:
    """One model's −2 ln L on its observed data with ``parameters`` held: what every fit
    of a profile shares."""

    model: Model
    parameters: tuple[str, ...]
    extend_bounds: bool = False
    options: FitOptions = DEFAULT_OPTIONS

    @classmethod
    def of(
        cls,
        model: Model,
        parameters: Sequence[str],
        *,
        extend_bounds: bool = False,
        options: FitOptions = DEFAULT_OPTIONS,
    ) -> ProfileProblem:
        """Check the parameters: known to the model, distinct, one or two, not fixed."""
        parameters = tuple(parameters)
        if len(parameters) not in (1, 2) or len(set(parameters)) != len(parameters):
            raise InvalidSettings(
                f"a profile scans one or two distinct parameters, not {list(parameters)}"
            )
        names = model.parameter_names
        for name in parameters:
            if name not in names:
                shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
                raise InvalidSettings(f"no parameter {name!r} in the model (it has: {shown})")
            if model.fixed()[names.index(name)]:
                raise InvalidSettings(
                    f"parameter {name!r} is fixed by the measurement: a profile scans "
                    "parameters the fit may move"
                )
        return cls(model, parameters, extend_bounds, options)

    @property
    def indices(self) -> np.ndarray:
        return np.array([self.model.structure.parameter_index(p) for p in self.parameters])

    @property
    def data(self) -> np.ndarray:
        return self.model.observed_data()

    def inside_bounds(self, points: np.ndarray) -> np.ndarray:
        """Per point, whether its held values lie inside the parameters' bounds (always,
        where bounds may be extended)."""
        if self.extend_bounds:
            return np.ones(len(points), dtype=bool)
        lower = self.model.numbers.lower[self.indices]
        upper = self.model.numbers.upper[self.indices]
        return np.all((points >= lower) & (points <= upper), axis=1)

    def segment(self, points: np.ndarray, directions: np.ndarray):
        """Per point, the range ``[t_lo, t_hi]`` within ``[-1, 1]`` for which
        ``point + t · direction`` stays inside the bounds (where they are not extended)."""
        t_lo, t_hi = -np.ones(len(points)), np.ones(len(points))
        if self.extend_bounds:
            return t_lo, t_hi
        lower = np.asarray(self.model.numbers.lower)[self.indices]
        upper = np.asarray(self.model.numbers.upper)[self.indices]
        with np.errstate(divide="ignore", invalid="ignore"):
            to_lower = (lower - points) / directions
            to_upper = (upper - points) / directions
        low = np.where(directions > 0, to_lower, np.where(directions < 0, to_upper, -np.inf))
        high = np.where(directions > 0, to_upper, np.where(directions < 0, to_lower, np.inf))
        return np.maximum(t_lo, low.max(axis=1)), np.minimum(t_hi, high.min(axis=1))

    def check_bounds(self, points: np.ndarray) -> None:
        """Raise unless every held value lies inside its parameter's bounds (or bounds
        may be extended)."""
        inside = self.inside_bounds(points)
        if inside.all():
            return
        lower = self.model.numbers.lower[self.indices]
        upper = self.model.numbers.upper[self.indices]
        point = points[~inside][0]
        k = int(np.flatnonzero((point < lower) | (point > upper))[0])
        raise InvalidSettings(
            f"{self.parameters[k]} = {point[k]:g} lies outside its bounds "
            f"[{lower[k]:g}, {upper[k]:g}]; narrow the grid or extend the bounds"
        )

    def free_fit(self, start=None) -> FitResult:
        """The fit with nothing held but what the model fixes (one row)."""
        model = self.model
        init = model.init() if start is None else np.asarray(start)
        return fit_batch(
            model.structure,
            model.numbers,
            jnp.asarray(self.data)[None],
            init=init[None],
            fixed=model.fixed()[None],
            options=self.options,
        )

    def held(self, points: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """``starts`` (n, P) with the held parameters set to ``points`` (n, d)."""
        pars = np.array(starts, dtype=float)
        pars[:, self.indices] = points
        return pars

    def fit(self, points: np.ndarray, starts: np.ndarray) -> FitResult:
        """Fits with the parameters held at ``points`` (n, d), started from ``starts``
        (n, P): one batched call, padded to a power of two rows (:func:`_padded`)."""
        model, idx, n = self.model, self.indices, len(points)
        rows = _padded(n)
        points, starts = np.asarray(points)[rows], np.asarray(starts)[rows]
        fixed = np.tile(model.fixed(), (len(rows), 1))
        fixed[:, idx] = True
        numbers = model.numbers
        if self.extend_bounds:
            lower = np.tile(numbers.lower, (len(rows), 1))
            upper = np.tile(numbers.upper, (len(rows), 1))
            lower[:, idx] = np.minimum(lower[:, idx], points)
            upper[:, idx] = np.maximum(upper[:, idx], points)
            numbers = batched(numbers, len(rows))._replace(lower=lower, upper=upper)
        data = jnp.broadcast_to(jnp.asarray(self.data), (len(rows), len(self.data)))
        found = fit_batch(
            model.structure,
            numbers,
            data,
            init=self.held(points, starts),
            fixed=fixed,
            options=self.options,
        )
        return found.take(slice(0, n))

    def values(self, pars: np.ndarray) -> np.ndarray:
        """−2 ln L at each row of ``pars`` (no fit)."""
        model, n = self.model, len(pars)
        found = _values(model.structure)(
            jax.tree.map(jnp.asarray, model.numbers),
            jnp.asarray(np.asarray(pars)[_padded(n)]),
            jnp.asarray(self.data),
        )
        return np.asarray(found)[:n]


def _padded(n: int) -> np.ndarray:
    """Row indices ``0 … n-1`` padded to the next power of two by repeating the last:
    compiled fits are built per batch shape, so the many calls of a profile (grid,
    sweeps, root-finding steps of shrinking size) share a few compilations."""
    size = 1 << max(n - 1, 0).bit_length()
    return np.minimum(np.arange(size), n - 1)


@dataclass(frozen=True)
class ProfileScan:
    """The fits of a profile on a grid: ``points`` (n, d) in C order of the grid (the
    first parameter slowest), one fit a point, and the free fit they are relative to."""

    problem: ProfileProblem
    grid: tuple[np.ndarray, ...]  # values along each parameter
    points: np.ndarray  # (n, d)
    fits: FitResult  # (n,) fits with the parameters held
    free: FitResult  # (1,) the free fit

    @property
    def parameters(self) -> tuple[str, ...]:
        return self.problem.parameters

    @property
    def twice_nll_min(self) -> float:
        return float(self.free.twice_nll[0])

    @property
    def bestfit(self) -> np.ndarray:
        """The free fit's values of the scanned parameters."""
        return self.free.pars[0, self.problem.indices]

    @property
    def delta(self) -> np.ndarray:
        """Δ(−2 ln L) of every point (NaN where its fit failed)."""
        return np.where(self.fits.converged, self.fits.twice_nll - self.twice_nll_min, np.nan)

    def table(self) -> pd.DataFrame:
        """One row a grid point: a column per parameter (named as it), then
        ``delta_twice_nll``, ``twice_nll``, ``status`` (``ok`` or ``failed``) and
        ``message``; ``attrs`` hold the free fit."""
        frame = pd.DataFrame({p: self.points[:, k] for k, p in enumerate(self.parameters)})
        frame["delta_twice_nll"] = self.delta
        frame["twice_nll"] = self.fits.twice_nll
        frame["status"] = np.where(self.fits.converged, "ok", "failed")
        warning = self.fits.warning
        frame["message"] = [
            str(m) or (f"warning: {warning[k]}" if warning is not None and warning[k] else "")
            for k, m in enumerate(self.fits.message)
        ]
        frame.attrs.update(
            parameters=list(self.parameters),
            bestfit=dict(zip(self.parameters, map(float, self.bestfit), strict=True)),
            twice_nll_min=self.twice_nll_min,
        )
        return frame


def _grid_points(grid: Sequence[np.ndarray]) -> np.ndarray:
    mesh = np.meshgrid(*grid, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _neighbours(shape: tuple[int, ...]) -> np.ndarray:
    """(n, 2d) flat index of each point's neighbours along every axis (−1: none)."""
    index = np.indices(shape).reshape(len(shape), -1).T
    out = []
    for axis in range(len(shape)):
        for step in (-1, 1):
            moved = index.copy()
            moved[:, axis] += step
            inside = (moved[:, axis] >= 0) & (moved[:, axis] < shape[axis])
            flat = np.ravel_multi_index(tuple(np.clip(moved, 0, None).T), shape, mode="clip")
            out.append(np.where(inside, flat, -1))
    return np.stack(out, axis=1)


def _replace_better(fits: FitResult, rows: np.ndarray, again: FitResult) -> FitResult:
    """``fits`` with ``rows`` replaced by ``again`` where that converged and ends lower
    (or the old fit did not converge), or ends lower where neither converged."""
    old_ok = fits.converged[rows]
    lower = again.twice_nll < fits.twice_nll[rows]
    better = np.where(again.converged, ~old_ok | lower, ~old_ok & lower)
    return fits.replace_rows(rows, again, better) if better.any() else fits


def _sweep(problem: ProfileProblem, points, shape, fits: FitResult) -> FitResult:
    """Warm starts along the grid (see the module docstring): repeat until no point's
    neighbour offers a start below the point's own fit."""
    neighbours = _neighbours(shape)
    tried: set[tuple[int, int]] = set()
    for _ in range(max(shape) + 1):
        rows, sources = np.nonzero(neighbours >= 0)
        sources = neighbours[rows, sources]
        usable = fits.converged[sources] & np.array(
            [(r, s) not in tried for r, s in zip(rows, sources, strict=True)], dtype=bool
        )
        rows, sources = rows[usable], sources[usable]
        if not len(rows):
            return fits
        starts = problem.held(points[rows], fits.pars[sources])
        value = problem.values(starts)
        order = np.lexsort((value, rows))  # per row, its lowest start first
        first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
        rows, sources, starts, value = rows[first], sources[first], starts[first], value[first]
        current = fits.twice_nll[rows]
        wanted = value < current - LOCAL_MINIMUM_TOLERANCE
        wanted |= ~fits.converged[rows] & np.isfinite(value)
        if not wanted.any():
            return fits
        rows, sources, starts = rows[wanted], sources[wanted], starts[wanted]
        improved = _replace_better(fits, rows, problem.fit(points[rows], starts))
        unchanged = improved.twice_nll[rows] == fits.twice_nll[rows]
        tried |= set(zip(rows[unchanged].tolist(), sources[unchanged].tolist(), strict=True))
        fits = improved
    return fits


def _lower_free(problem: ProfileProblem, free: FitResult, fits: FitResult) -> FitResult:
    """The free fit, fitted again from the lowest grid point where that lies below it."""
    values = np.where(fits.converged, fits.twice_nll, np.inf)
    lowest = int(np.argmin(values))
    if not values[lowest] < free.twice_nll[0] - LOCAL_MINIMUM_TOLERANCE:
        return free
    return free.keep_lower(np.array([0]), problem.free_fit(fits.pars[lowest]))


def profile_scan(
    model: Model,
    grid: Mapping[str, Sequence[float]],
    *,
    extend_bounds: bool = False,
    options: FitOptions = DEFAULT_OPTIONS,
) -> ProfileScan:
    """The profile of one or two parameters on a grid: ``grid`` maps each parameter's
    name to its values (the grid is their product). See the module docstring.

    Raises :class:`~hfpipe.errors.FitFailed` if the free fit does not converge (every
    Δ is relative to it); grid points whose fits fail are reported as failed."""
    problem = ProfileProblem.of(model, list(grid), extend_bounds=extend_bounds, options=options)
    axes = tuple(np.asarray(values, dtype=float).ravel() for values in grid.values())
    if any(len(a) < 2 for a in axes):
        raise InvalidSettings("a profile needs at least two values of each parameter")
    if any(np.any(np.diff(a) <= 0) for a in axes):
        raise InvalidSettings("the values of a profiled parameter must increase")
    points = _grid_points(axes)
    problem.check_bounds(points)
    free = problem.free_fit()
    if not free.converged[0]:
        raise FitFailed(f"the free fit did not converge: {free.message[0]}")
    starts = np.broadcast_to(free.pars, (len(points), free.pars.shape[1]))
    fits = problem.fit(points, starts)
    fits = _sweep(problem, points, tuple(len(a) for a in axes), fits)
    free = _lower_free(problem, free, fits)
    return ProfileScan(problem, axes, points, fits, free)


def delta_evaluator(scan: ProfileScan, level: np.ndarray, points_at, starts: np.ndarray):
    """``evaluate(x, rows)`` for :func:`~hfpipe.infer.roots.bracketed_roots`: Δ − level
    at the points ``points_at(x, rows)``, each a fit warm-started from the row's last
    converged fit (``starts``, updated in place)."""

    def evaluate(x, rows):
        points = points_at(x, rows)
        fits = scan.problem.fit(points, starts[rows])
        starts[rows] = np.where(fits.converged[:, None], fits.pars, starts[rows])
        delta = fits.twice_nll - scan.twice_nll_min
        return np.where(fits.converged, delta - level[rows], np.nan)

    return evaluate
