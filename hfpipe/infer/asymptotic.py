"""Asymptotic hypothesis tests of a batch of models of one structure, in named steps.

For each row (a signal point, say) and its tested POI value ``mu``, the test runs five
fits, as pyhf's ``AsymptoticCalculator`` does:

* :func:`observed_fits`: on the observed data, the free fit, the fit with the POI fixed
  at ``mu``, and the fit with the POI fixed at the Asimov value (0; 1 for q0) whose
  parameters generate the Asimov data set — one batched Newton call;
* :func:`asimov_fits`: on the Asimov data, the free fit and the fit with the POI fixed
  at ``mu`` — another;
* after each, :func:`repair_local_minima`: a free fit that ended above one of the
  POI-fixed fits of the same data is stuck in a local minimum and is fitted again from
  the lower fit's minimum (:func:`~hfpipe.infer.fit.local_minima`);

then the test statistics (:mod:`hfpipe.infer.teststats`) go through the asymptotic
calculator (:mod:`hfpipe.infer.calculators`), and :func:`fit_messages` says which fits
failed or are suspicious. Toy-based tests of the same shape: :mod:`hfpipe.infer.toys`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Bool, Float, Int, Shaped

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.errors import InvalidSettings
from hfpipe.infer.calculators import AsymptoticCalculator
from hfpipe.infer.fit import (
    DEFAULT_OPTIONS,
    FitOptions,
    FitResult,
    batched,
    bound_warnings,
    fit_batch,
    fit_datasets,
    local_minima,
)
from hfpipe.infer.teststats import (
    asimov_value,
    check_test_statistic,
    test_statistic,
    tested_value,
)
from hfpipe.model.layout_cache import per_layout
from hfpipe.model.likelihood import expected_data, prepare
from hfpipe.model.structure import Array, Layout, Numbers, Structure

__all__ = [
    "HypotestResult",
    "TestBatch",
    "asimov_data",
    "asimov_fits",
    "check_poi_values",
    "fit_messages",
    "hypotest",
    "hypotest_batch",
    "observed_fits",
    "repair_local_minima",
]


def check_poi_values(structure: Structure, numbers: Numbers, values) -> None:
    """Raise :class:`~hfpipe.errors.InvalidSettings` if the POI is fixed, or a POI value
    to test lies outside the POI's bounds (of any row of ``numbers``).

    A test compares fits with the POI free and held: a POI fixed by the measurement
    leaves no free fit (pyhf refuses: "makes profile likelihood ratio based inference
    impossible"). A fit holds the POI at the tested value and starts inside the bounds:
    pyhf refuses a value outside them, and clipping it to the bound would test another
    hypothesis than the one asked for.
    """
    poi = structure.poi_index
    if np.any(np.asarray(numbers.fixed)[..., poi]):
        raise InvalidSettings(
            f"the POI '{structure.poi_name}' is fixed by the measurement: a hypothesis "
            "test needs it free (remove its 'fixed' setting)"
        )
    lower = np.asarray(numbers.lower)[..., poi]
    upper = np.asarray(numbers.upper)[..., poi]
    values = np.asarray(values, dtype=float)
    outside = (values < lower) | (values > upper)
    if np.any(outside):
        value = np.broadcast_to(values, np.broadcast(values, lower).shape)[outside].flat[0]
        low = np.broadcast_to(lower, outside.shape)[outside].flat[0]
        high = np.broadcast_to(upper, outside.shape)[outside].flat[0]
        raise InvalidSettings(
            f"POI value {value:g} lies outside the bounds [{low:g}, {high:g}] of the POI "
            f"'{structure.poi_name}'; widen them in the measurement's parameters to test it"
        )


@dataclass(frozen=True)
class HypotestResult:
    """Per-row results of a batch of hypothesis tests (asymptotic or toy-based)."""

    mu: Float[np.ndarray, " models"]  # tested POI value
    cls_obs: Float[np.ndarray, " models"]  # CLs (p0 for q0)
    cls_exp: Float[np.ndarray, "models 5"]  # -2σ … +2σ
    clsb_obs: Float[np.ndarray, " models"]
    clb_obs: Float[np.ndarray, " models"]
    q_obs: Float[np.ndarray, " models"]
    q_asimov: Float[np.ndarray, " models"]  # NaN for toys
    mu_hat: Float[np.ndarray, " models"]
    twice_nll: Float[np.ndarray, " models"]  # free fit to the observed data
    bestfit: Float[np.ndarray, "models parameters"]  # free fit to the observed data
    converged: Bool[np.ndarray, " models"]  # every fit it rests on converged
    message: Shaped[np.ndarray, " models"]  # why not, if not
    #: the fits (asymptotic: free, fixed, asimov_generation, asimov_free, asimov_fixed;
    #: toys: the fits to the observed data)
    fits: dict[str, FitResult]
    #: (n,) '' or what makes the fits to the observed data suspicious though converged
    warning: Shaped[np.ndarray, " models"]
    ntoys: Int[np.ndarray, " models"] | None = None  # toys a hypothesis (toys only)
    n_failed: Int[np.ndarray, " models"] | None = None  # toy fits that failed (toys only)


@per_layout
def _asimov_data(structure: Layout):
    return jax.jit(
        jax.vmap(lambda numbers, pars: expected_data(structure, prepare(structure, numbers), pars))
    )


def asimov_data(
    structure: Structure, numbers: Numbers, pars: Float[Array, "models parameters"]
) -> Float[jax.Array, "models data"]:
    """Expected data (main counts then auxiliary data) of every row of a batch at
    ``pars`` (n, P): the Asimov data sets generated by those parameters."""
    return _asimov_data(structure)(numbers, jnp.asarray(pars))


#: Fits a call of a one-model test takes (three a test, padded): one compilation for all.
_QUEUE = 4


@dataclass(frozen=True)
class TestBatch:
    """What every step of the test of a batch works on: the models (one a row), their
    data (main counts then auxiliary data), the tested POI values and the settings."""

    structure: Structure
    numbers: Numbers  # batched
    data: Float[np.ndarray, "models data"]  # main counts, then auxiliary data
    tested: Float[np.ndarray, " models"]  # POI value of the fixed fits
    test_stat: str
    options: FitOptions

    @classmethod
    def of(cls, structure, numbers, mu, data, test_stat, options) -> TestBatch:
        check_test_statistic(test_stat)
        mu = np.atleast_1d(np.asarray(mu, dtype=float))
        n = max(len(mu), 1 if np.ndim(numbers.nominal) == 1 else np.shape(numbers.nominal)[0])
        numbers = batched(numbers, n)
        if data is None:
            data = np.concatenate([numbers.observed, numbers.auxdata], axis=1)
        shape = (n, structure.n_bins + structure.n_aux)
        data = np.broadcast_to(np.asarray(data, dtype=float), shape)
        tested = tested_value(test_stat, np.broadcast_to(mu, (n,)))
        check_poi_values(structure, numbers, tested)
        return cls(structure, numbers, data, tested, test_stat, options)

    def __len__(self) -> int:
        return len(self.tested)

    @property
    def fixed(self) -> Bool[np.ndarray, "models parameters"]:
        return np.asarray(self.numbers.fixed)

    def held(self, init, values) -> tuple[np.ndarray, np.ndarray]:
        """Starts ``init`` and the fixed parameters, with the POI held at ``values``."""
        poi = self.structure.poi_index
        init, fixed = np.array(init, dtype=float), np.array(self.fixed)
        init[:, poi], fixed[:, poi] = values, True
        return init, fixed

    def fit(self, models, data, init, fixed, options: FitOptions) -> FitResult:
        """Fits of the rows of ``data``, row ``i`` with model ``models[i]``.

        A batch of one model fits its rows one after the other on one lane
        (:func:`~hfpipe.infer.fit.fit_datasets`), where its fits start by Fisher
        scoring, cheaper than Newton steps; several models go through one vmapped
        call (:func:`~hfpipe.infer.fit.fit_batch`), whose rows run side by side on an
        accelerator. Either way a row's fit depends on its own inputs only.
        """
        if len(self) == 1:
            model = jax.tree.map(lambda a: a[0], self.numbers)
            found = fit_datasets(
                self.structure,
                model,
                data,
                init=init,
                fixed=fixed,
                lanes=1,
                queue=_QUEUE,
                options=options,
            )
            return replace(found, warning=bound_warnings(self.structure, model, found.pars, fixed))
        numbers = jax.tree.map(lambda a: a[np.asarray(models)], self.numbers)
        return fit_batch(self.structure, numbers, data, init=init, fixed=fixed, options=options)

    def rows(self, repeat: int) -> np.ndarray:
        """The model of each row of ``repeat`` copies of the batch, one after the other."""
        return np.tile(np.arange(len(self)), repeat)


def observed_fits(batch: TestBatch) -> dict[str, FitResult]:
    """Free, POI-fixed and Asimov-generating fits to the observed data, the free fit
    repaired against the other two."""
    n, init = len(batch), np.asarray(batch.numbers.init, dtype=float)
    fixed_init, fixed_fixed = batch.held(init, batch.tested)
    gen_init, gen_fixed = batch.held(init, asimov_value(batch.test_stat))
    fits = batch.fit(
        batch.rows(3),
        np.concatenate([batch.data, batch.data, batch.data]),
        np.concatenate([init, fixed_init, gen_init]),
        np.concatenate([batch.fixed, fixed_fixed, gen_fixed]),
        batch.options,
    )
    free, fixed_fit, generation = (fits.take(slice(k * n, (k + 1) * n)) for k in range(3))
    free = repair_local_minima(batch, batch.data, free, [fixed_fit, generation])
    return {"free": free, "fixed": fixed_fit, "asimov_generation": generation}


def asimov_fits(batch: TestBatch, generation: FitResult) -> dict[str, FitResult]:
    """Free and POI-fixed fits to the Asimov data generated by ``generation``'s
    parameters, the free fit repaired against the fixed one.

    The Asimov data set's free fit has its minimum at the parameters that generated it,
    and its fixed-POI fit lies close: both start there. They are padded to the batch
    shape of the observed fits (the free fit twice), so both calls share one compiled
    function. Only their -2 log L enter (an error of about the EDM), so they take no
    polishing step: the observed free fit's parameters are reported and the generating
    fit's make the Asimov data, and those are polished.
    """
    n, generated = len(batch), np.asarray(generation.pars)
    asimov = np.asarray(asimov_data(batch.structure, batch.numbers, generated))
    warm_init, fixed_fixed = batch.held(generated, batch.tested)
    fits = batch.fit(
        batch.rows(3),
        np.concatenate([asimov, asimov, asimov]),
        np.concatenate([generated, warm_init, generated]),
        np.concatenate([batch.fixed, fixed_fixed, batch.fixed]),
        replace(batch.options, polish=False),
    )
    free, fixed_fit = fits.take(slice(0, n)), fits.take(slice(n, 2 * n))
    free = repair_local_minima(batch, asimov, free, [fixed_fit])
    return {"asimov_free": free, "asimov_fixed": fixed_fit}


def repair_local_minima(batch: TestBatch, data, free: FitResult, constrained) -> FitResult:
    """``free`` with every fit of ``data`` that ended above a fit of the same data with
    the POI held (a local minimum, see :func:`~hfpipe.infer.fit.local_minima`) fitted
    again from the lowest constrained fit's minimum, where that ends lower. The rows
    are padded to three times the batch, the shape of the other fits (one
    compilation)."""
    stuck, starts = local_minima(free, constrained)
    if not len(stuck):
        return free
    n = len(free)
    take = np.resize(stuck, 3 * n)
    again = batch.fit(
        take,
        data[take],
        np.resize(starts, (3 * n, batch.structure.n_parameters)),
        batch.fixed[take],
        batch.options,
    )
    return free.keep_lower(stuck, again.take(slice(0, len(stuck))))


def fit_messages(fits: dict[str, FitResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: whether every fit converged, which did not (``"free fit not converged:
    ..."``), and the warnings of the fits to the observed data."""
    n = len(next(iter(fits.values())))
    converged = np.all([f.converged for f in fits.values()], axis=0)
    message = np.array(
        [
            "; ".join(f"{k} fit {f.message[i]}" for k, f in fits.items() if not f.converged[i])
            for i in range(n)
        ],
        dtype=object,
    )
    observed = [k for k in ("free", "fixed") if k in fits and fits[k].warning is not None]
    warning = np.array(
        [
            "; ".join(f"{k} fit: {w}" for k in observed if (w := fits[k].warning[i]))
            for i in range(n)
        ],
        dtype=object,
    )
    return converged, message, warning


def hypotest_batch(
    structure: Structure,
    numbers: Numbers,
    mu: float | Float[Array, " models"],
    *,
    data: Float[Array, "*models data"] | None = None,
    test_stat: str = "qtilde",
    options: FitOptions = DEFAULT_OPTIONS,
) -> HypotestResult:
    """Asymptotic CLs for every row of a batch (``numbers`` with or without batch axis).

    ``mu`` is a scalar or one value per row; ``data`` defaults to each model's observed
    data (main counts then auxiliary data).
    """
    batch = TestBatch.of(structure, numbers, mu, data, test_stat, options)
    fits = observed_fits(batch)
    fits |= asimov_fits(batch, fits["asimov_generation"])
    poi = structure.poi_index
    free, fixed, asimov_free = fits["free"], fits["fixed"], fits["asimov_free"]
    mu_hat = free.pars[:, poi]
    q = test_statistic(test_stat, batch.tested, mu_hat, fixed.twice_nll, free.twice_nll)
    q_asimov = test_statistic(
        test_stat,
        batch.tested,
        asimov_free.pars[:, poi],
        fits["asimov_fixed"].twice_nll,
        asimov_free.twice_nll,
    )
    observed, expected = AsymptoticCalculator(test_stat).hypotest(q, q_asimov)
    converged, message, warning = fit_messages(fits)
    return HypotestResult(
        mu=np.asarray(batch.tested),
        cls_obs=observed.reported,
        cls_exp=expected.reported,
        clsb_obs=observed.clsb,
        clb_obs=observed.clb,
        q_obs=q,
        q_asimov=q_asimov,
        mu_hat=mu_hat,
        twice_nll=free.twice_nll,
        bestfit=free.pars,
        converged=converged,
        message=message,
        fits=fits,
        warning=warning,
    )


def hypotest(model, mu: float = 1.0, **options) -> HypotestResult:
    """Asymptotic CLs of one compiled :class:`~hfpipe.model.Model` (a batch of one).

    Fields of the result are arrays of length 1: ``result.cls_obs[0]``.
    """
    return hypotest_batch(model.structure, model.numbers, mu, **options)
