"""Nuisance-parameter ranking (impacts on the POI) and pulls, from batched fits.

The impact of a parameter θ on the POI μ is pyhf's and cabinetry's (Combine's
"impacts"): μ̂ from a fit with θ held at θ̂ ± σ, minus the best fit's μ̂, with σ the
pre-fit width (:mod:`~hfpipe.infer.prefit`) or the post-fit Hesse uncertainty; four
numbers a parameter (``prefit_up``, ``prefit_down``, ``postfit_up``, ``postfit_down``).
cabinetry runs those 4·P fits one after another; here they are the rows of one
:func:`~hfpipe.infer.fit.fit_batch` call (one compiled, vmapped computation), each
started from the best fit with its own parameter held. A shift of zero needs no fit and
has no impact: the pre-fit impacts of free parameters (normfactors, shapefactors) are 0,
as in cabinetry. A held value outside a parameter's bounds is held at the bound.

``method="covariance"`` needs no fits at all: to first order the fit with θ held at
θ̂ + δ moves μ̂ by δ · C_μθ / C_θθ, so the post-fit impacts are ±C_μθ/σ_θ and the
pre-fit ones ±σ_pre · C_μθ/σ_θ² (symmetric; exact for a Gaussian likelihood), for very
large models where even one batched fit per parameter is too much.

The pull of a constrained parameter is (θ̂ − θ₀)/σ_pre with the uncertainty
σ_post/σ_pre; free parameters have no pull (their best fit and uncertainty are given).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.errors import InvalidSettings
from hfpipe.infer.bestfit import BestFit, best_fit
from hfpipe.infer.fit import DEFAULT_OPTIONS, LOCAL_MINIMUM_TOLERANCE, FitOptions, fit_batch
from hfpipe.infer.prefit import (
    FREE_TYPES,
    GAMMA_TYPES,
    modifier_types,
    prefit_uncertainties,
    prefit_values,
)
from hfpipe.model.model import Model

__all__ = ["IMPACTS", "METHODS", "pulls", "ranked_parameters", "ranking"]

#: the four impact columns, in cabinetry's order
IMPACTS = ("prefit_up", "prefit_down", "postfit_up", "postfit_down")
METHODS = ("fits", "covariance")


def ranked_parameters(
    model: Model, fixed, *, include_free: bool = True, include_gammas: bool = True
) -> np.ndarray:
    """Indices of the parameters a ranking or pull table lists: every parameter but the
    POI and the ``fixed`` ones; without free parameters (normfactors, shapefactors) if
    not ``include_free``, without staterror/shapesys γs if not ``include_gammas``."""
    types = modifier_types(model.structure)
    keep = ~np.asarray(fixed, dtype=bool)
    keep[model.poi_index] = False
    for p, kind in enumerate(types):
        if (kind in FREE_TYPES and not include_free) or (
            kind in GAMMA_TYPES and not include_gammas
        ):
            keep[p] = False
    return np.flatnonzero(keep)


def pulls(
    model: Model,
    bestfit,
    uncertainties,
    *,
    fixed=None,
    include_free: bool = True,
    include_gammas: bool = True,
) -> pd.DataFrame:
    """One row per parameter (see :func:`ranked_parameters`): ``parameter``, ``type``,
    ``bestfit``, ``uncertainty``, ``prefit_value``, ``prefit_uncertainty``, ``pull`` =
    (θ̂ − θ₀)/σ_pre and ``pull_uncertainty`` = σ_post/σ_pre (NaN for free parameters).
    ``bestfit`` and ``uncertainties`` are per parameter, in model order."""
    structure, numbers = model.structure, model.numbers
    fixed = numbers.fixed if fixed is None else fixed
    chosen = ranked_parameters(
        model, fixed, include_free=include_free, include_gammas=include_gammas
    )
    bestfit, uncertainties = np.asarray(bestfit, float), np.asarray(uncertainties, float)
    centre = prefit_values(structure, numbers)
    width = prefit_uncertainties(structure, numbers)
    constrained = width > 0
    safe = np.where(constrained, width, 1.0)
    frame = pd.DataFrame(
        {
            "parameter": np.asarray(model.parameter_names, dtype=object),
            "type": np.asarray(modifier_types(structure), dtype=object),
            "bestfit": bestfit,
            "uncertainty": uncertainties,
            "prefit_value": centre,
            "prefit_uncertainty": width,
            "pull": np.where(constrained, (bestfit - centre) / safe, np.nan),
            "pull_uncertainty": np.where(constrained, uncertainties / safe, np.nan),
        }
    )
    return frame.iloc[chosen].reset_index(drop=True)


def ranking(
    model: Model,
    *,
    fit: BestFit | None = None,
    method: str = "fits",
    include_free: bool = True,
    include_gammas: bool = True,
    options: FitOptions = DEFAULT_OPTIONS,
) -> pd.DataFrame:
    """The impact of every parameter on the POI, with its pull: one row per parameter.

    Columns: those of :func:`pulls`, then ``prefit_up``, ``prefit_down``,
    ``postfit_up``, ``postfit_down`` (μ̂ with θ held at θ̂ ± σ minus μ̂), ``rank`` (1: the
    largest post-fit impact |Δμ|), ``status`` (``ok``, or ``failed`` where a held fit did
    not converge, or ended below the best fit, which then was a local minimum: that
    impact is NaN) and ``message``. ``fit`` is the model's best fit
    (computed if not given); ``method`` ``"fits"`` or ``"covariance"`` (see the module
    docstring). ``frame.attrs`` holds the POI's name, best fit and uncertainty.
    """
    if method not in METHODS:
        raise InvalidSettings(f"ranking method must be one of {METHODS}, not {method!r}")
    fit = best_fit(model, options=options) if fit is None else fit
    frame = pulls(
        model,
        fit.pars,
        fit.uncertainties,
        fixed=fit.fixed,
        include_free=include_free,
        include_gammas=include_gammas,
    )
    chosen = ranked_parameters(
        model, fit.fixed, include_free=include_free, include_gammas=include_gammas
    )
    shifts = _shifts(model, fit, chosen)
    if method == "fits":
        impacts, failures = _impacts_from_fits(model, fit, chosen, shifts, options)
    else:
        impacts, failures = _impacts_from_covariance(model, fit, chosen, shifts), {}
    for k, column in enumerate(IMPACTS):
        frame[column] = impacts[:, k]
    largest = np.fmax(np.abs(impacts[:, 2]), np.abs(impacts[:, 3]))
    order = np.argsort(-np.nan_to_num(largest, nan=-1.0), kind="stable")
    rank = np.empty(len(chosen), dtype=int)
    rank[order] = np.arange(1, len(chosen) + 1)
    frame["rank"] = rank
    frame["status"] = ["failed" if k in failures else "ok" for k in range(len(chosen))]
    frame["message"] = [failures.get(k, "") for k in range(len(chosen))]
    poi = model.poi_index
    frame.attrs.update(
        poi=model.poi_name,
        poi_bestfit=float(fit.pars[poi]),
        poi_uncertainty=float(fit.uncertainties[poi]),
        twice_nll=fit.twice_nll,
        method=method,
    )
    return frame


def _shifts(model: Model, fit: BestFit, chosen: np.ndarray) -> np.ndarray:
    """(K, 4) the signed shifts of each chosen parameter: +σ_pre, −σ_pre, +σ, −σ."""
    width = prefit_uncertainties(model.structure, model.numbers)[chosen]
    post = fit.uncertainties[chosen]
    return np.stack([width, -width, post, -post], axis=1)


def _impacts_from_fits(
    model: Model, fit: BestFit, chosen: np.ndarray, shifts: np.ndarray, options: FitOptions
) -> tuple[np.ndarray, dict[int, str]]:
    """Impacts (K, 4) from one batched fit per non-zero shift, and for each parameter
    (by position in ``chosen``) whose fits failed, why."""
    parameter, column = np.nonzero(shifts)
    held = chosen[parameter]
    rows = len(held)
    impacts = np.zeros(shifts.shape)
    if rows == 0:
        return impacts, {}
    init = np.tile(fit.pars, (rows, 1))
    init[np.arange(rows), held] += shifts[parameter, column]
    fixed = np.tile(fit.fixed, (rows, 1))
    fixed[np.arange(rows), held] = True
    data = jnp.broadcast_to(jnp.asarray(fit.data), (rows, len(fit.data)))
    found = fit_batch(model.structure, model.numbers, data, init=init, fixed=fixed, options=options)
    poi = model.poi_index
    impacts[parameter, column] = found.pars[:, poi] - fit.pars[poi]
    failures: dict[int, str] = {}
    names = model.parameter_names
    for row in np.flatnonzero(~found.converged):
        impacts[parameter[row], column[row]] = np.nan
        failures.setdefault(
            parameter[row], f"fit with {names[held[row]]} held: {found.message[row]}"
        )
    below = found.converged & (found.twice_nll < fit.twice_nll - LOCAL_MINIMUM_TOLERANCE)
    for row in np.flatnonzero(below):
        failures.setdefault(
            parameter[row],
            f"fit with {names[held[row]]} held ends {fit.twice_nll - found.twice_nll[row]:.3g} "
            "below the best fit in -2 log L: the best fit is a local minimum",
        )
        impacts[parameter[row], column[row]] = np.nan
    return impacts, failures


def _impacts_from_covariance(
    model: Model, fit: BestFit, chosen: np.ndarray, shifts: np.ndarray
) -> np.ndarray:
    """Impacts (K, 4) to first order: a shift δ of θ moves μ̂ by δ · C_μθ / C_θθ."""
    variance = fit.covariance[chosen, chosen]
    slope = fit.covariance[model.poi_index, chosen] / np.where(variance > 0, variance, np.inf)
    return shifts * slope[:, None]
