"""The best fit of one model with its Hesse covariance: the starting point of every
post-fit product (ranking, pulls, grouped impacts, post-fit yields).

The covariance is twice the inverse of the exact Hessian of -2 log L over the free
parameters (autodiff, :func:`~hfpipe.infer.fit.hesse_uncertainties`), at the best fit.
MINUIT's HESSE, which pyhf and cabinetry report, estimates the same matrix by finite
differences over steps of a fraction of σ; on ATLAS 1Lbb its σ differ from the exact
curvature of pyhf's own likelihood by up to ~1 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.errors import FitFailed
from hfpipe.infer.fit import (
    DEFAULT_OPTIONS,
    FitOptions,
    covariance_warning,
    fit_batch,
    hesse_uncertainties,
)
from hfpipe.model.model import Model

__all__ = ["BestFit", "best_fit"]


@dataclass(frozen=True)
class BestFit:
    """A converged maximum-likelihood fit of one model to ``data``."""

    parameter_names: tuple[str, ...]
    pars: np.ndarray  # (P,)
    uncertainties: np.ndarray  # (P,) 0 for fixed parameters
    covariance: np.ndarray  # (P, P) rows and columns of fixed parameters are 0
    twice_nll: float
    fixed: np.ndarray  # (P,) bool: held in the fit
    data: np.ndarray  # main counts, then auxiliary data
    warning: str  # '' or why the fit or its covariance is suspicious

    def correlation(self) -> np.ndarray:
        """The correlation matrix (identity on the diagonal, fixed parameters included)."""
        scale = np.where(self.uncertainties > 0, self.uncertainties, 1.0)
        correlation = self.covariance / np.outer(scale, scale)
        np.fill_diagonal(correlation, 1.0)
        return correlation


def best_fit(
    model: Model, *, data=None, fixed=None, options: FitOptions = DEFAULT_OPTIONS
) -> BestFit:
    """Fit ``model`` to ``data`` (default: its observed data) with the parameters
    ``fixed`` held (default: the model's) and compute the Hesse covariance.

    Raises :class:`~hfpipe.errors.FitFailed` if the fit does not converge: impacts and
    post-fit uncertainties of an unconverged fit have no meaning.
    """
    structure, numbers = model.structure, model.numbers
    data = np.asarray(model.observed_data() if data is None else data, dtype=float)
    fixed = np.asarray(numbers.fixed if fixed is None else fixed, dtype=bool)
    found = fit_batch(
        structure, numbers, jnp.asarray(data)[None], init=numbers.init, fixed=fixed, options=options
    )
    if not found.converged[0]:
        raise FitFailed(f"the best fit did not converge: {found.message[0]}")
    pars = np.asarray(found.pars[0])
    covariance, uncertainties = hesse_uncertainties(structure, numbers, pars, data, fixed)
    warning = "; ".join(filter(None, [found.warning[0], covariance_warning(covariance, fixed)]))
    return BestFit(
        model.parameter_names,
        pars,
        uncertainties,
        covariance,
        float(found.twice_nll[0]),
        fixed,
        data,
        warning,
    )
