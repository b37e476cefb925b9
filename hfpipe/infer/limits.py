"""Upper limits on the POI: CLs(μ) = 1 - CL for the observed and the 5 expected curves.

All curves of all models are solved together. The root of ``log CLs(μ) - log(1 - CL)``
is bracketed from μ = 0 (CLs = 1) by doubling, then found with the Illinois variant of
regula falsi, which keeps a bracket (never diverges) and converges superlinearly.

Most of an asymptotic hypothesis test does not depend on μ: the free fit to the
observed data, the Asimov data set and its free fit. They are taken once from a
hypothesis test of each model (:class:`CLsCurves`); every root-finding step then costs
two fits per model and curve at most — the fit with the POI fixed at the curve's μ on
the Asimov data (all six curves) and on the observed data (the observed curve) — each
warm-started from the same row's fit of the step before. The POI's upper bound is
raised where a tested μ needs it; the free fits keep the model's bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import numpy as np
from jaxtyping import Bool, Float, Shaped

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.infer.asymptotic import HypotestResult, asimov_data, hypotest_batch
from hfpipe.infer.calculators import cls_asymptotic
from hfpipe.infer.fit import (
    DEFAULT_OPTIONS,
    FitOptions,
    FitResult,
    batched,
    fit_batch,
    fit_datasets,
)
from hfpipe.infer.teststats import LIMIT_TEST_STATISTICS, check_test_statistic, test_statistic
from hfpipe.model.structure import Numbers, Structure

__all__ = ["CLsCurves", "UpperLimits", "upper_limits_batch"]

_CURVES = 6  # observed, then expected -2σ … +2σ


@dataclass
class UpperLimits:
    values: Float[np.ndarray, "models 6"]  # observed, expected -2σ, -1σ, median, +1σ, +2σ
    converged: Bool[np.ndarray, " models"]
    message: Shaped[np.ndarray, " models"]


class CLsCurves:
    """CLs at any μ of the observed and the 5 expected curves of a batch of models.

    Built from a hypothesis test of the same models (any tested μ), whose μ-independent
    fits it reuses. Calling it with μ of shape (n, 6) — one value per model and curve —
    runs one batched fit call and returns the CLs values (n, 6) and whether every fit
    they rest on converged (n, 6).
    """

    def __init__(
        self,
        structure: Structure,
        numbers: Numbers,
        reference: HypotestResult,
        *,
        test_stat: str,
        options: FitOptions = DEFAULT_OPTIONS,
    ):
        check_test_statistic(test_stat, LIMIT_TEST_STATISTICS)
        n = len(reference.cls_obs)
        numbers = batched(numbers, n)
        fits = reference.fits
        # the curves' fits enter through their -2 log L only: no polishing step needed
        options = replace(options, polish=False)
        self.structure, self.test_stat, self.options, self.n = structure, test_stat, options, n
        self.free, self.asimov_free = fits["free"], fits["asimov_free"]
        observed = np.concatenate([numbers.observed, numbers.auxdata], axis=1)
        asimov = np.asarray(asimov_data(structure, numbers, fits["asimov_generation"].pars))
        # rows: (model, curve) on the Asimov data, model-major; then each model's
        # observed data for the observed curve
        repeat = np.repeat(np.arange(n), _CURVES)
        self.rows = np.concatenate([repeat, np.arange(n)])
        self.numbers = Numbers(*(np.asarray(field)[self.rows] for field in numbers))
        self.data = np.concatenate([asimov[repeat], observed])
        self.start = np.concatenate([fits["asimov_generation"].pars[repeat], self.free.pars])
        self.reference_ok = np.all([f.converged for f in fits.values()], axis=0)

    def _fit(self, init, fixed, upper) -> FitResult:
        """The fits of every row with the POI held (bounds ``upper``): one model's on one
        lane, where they start by Fisher scoring (the POI is held, so one upper bound
        that admits every row's μ serves them all); several models' in one vmapped
        call, as :class:`~hfpipe.infer.asymptotic.TestBatch` does."""
        if self.n == 1:
            model = jax.tree.map(lambda a: np.asarray(a)[0], self.numbers)
            model = model._replace(upper=upper.max(axis=0))
            return fit_datasets(
                self.structure,
                model,
                self.data,
                init=init,
                fixed=fixed,
                lanes=1,
                queue=_CURVES + 2,
                options=self.options,
            )
        numbers = self.numbers._replace(upper=upper)
        return fit_batch(
            self.structure, numbers, self.data, init=init, fixed=fixed, options=self.options
        )

    def __call__(self, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, poi = self.n, self.structure.poi_index
        mu = np.broadcast_to(np.asarray(mu, dtype=float), (n, _CURVES))
        row_mu = np.concatenate([mu.ravel(), mu[:, 0]])
        init = self.start.copy()
        init[:, poi] = row_mu
        fixed = np.asarray(self.numbers.fixed).copy()
        fixed[:, poi] = True
        upper = np.asarray(self.numbers.upper).copy()
        upper[:, poi] = np.maximum(upper[:, poi], 2.0 * row_mu)
        fits = self._fit(init, fixed, upper)
        # the next step's μ is close: start there
        self.start = np.where(fits.converged[:, None], fits.pars, self.start)

        k = n * _CURVES
        asimov_fixed, observed_fixed = fits.twice_nll[:k].reshape(n, _CURVES), fits.twice_nll[k:]
        q_asimov = test_statistic(
            self.test_stat,
            mu,
            self.asimov_free.pars[:, poi, None],
            asimov_fixed,
            self.asimov_free.twice_nll[:, None],
        )
        q_observed = test_statistic(
            self.test_stat, mu[:, 0], self.free.pars[:, poi], observed_fixed, self.free.twice_nll
        )
        observed_cls = cls_asymptotic(q_observed, q_asimov[:, 0], self.test_stat)[0]
        # expected curve j (1…5) is band entry j-1 of its own μ's Asimov test statistic
        band = cls_asymptotic(q_asimov[:, 1:], q_asimov[:, 1:], self.test_stat)[3]
        expected_cls = band[:, np.arange(5), np.arange(5)]
        converged = fits.converged[:k].reshape(n, _CURVES) & self.reference_ok[:, None]
        converged[:, 0] &= fits.converged[k:]
        return np.column_stack([observed_cls, expected_cls]), converged


def upper_limits_batch(
    structure: Structure,
    numbers: Numbers,
    *,
    cl: float = 0.95,
    test_stat: str = "qtilde",
    tolerance: float = 1e-4,
    max_iterations: int = 40,
    options: FitOptions = DEFAULT_OPTIONS,
    reference: HypotestResult | None = None,
) -> UpperLimits:
    """Upper limits for every model of a batch (``numbers`` with a leading axis).

    ``tolerance`` is relative on μ (absolute below μ = 1): the returned limit lies
    within it of the root of CLs(μ) = 1 - CL. ``reference``: a hypothesis test of the
    same models (at any μ), whose μ-independent fits are reused; by default one at
    μ = 1 is run here.
    """
    if reference is None:
        reference = hypotest_batch(structure, numbers, 1.0, test_stat=test_stat, options=options)
    curves = CLsCurves(structure, numbers, reference, test_stat=test_stat, options=options)
    n = curves.n
    alpha = 1.0 - cl

    def log_excess(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cls, ok = curves(mu.reshape(n, _CURVES))
        with np.errstate(divide="ignore"):
            return np.log(np.clip(cls.ravel(), 1e-300, None)) - np.log(alpha), ok.ravel()

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
