"""Hypothesis tests of a batch of models of one structure in a few compiled calls.

For each row (a signal point, say) and its tested POI value ``mu``, the asymptotic test
runs five fits, as pyhf's ``AsymptoticCalculator`` does:

* on the observed data: the free fit, the fit with the POI fixed at ``mu``, and the fit
  with the POI fixed at the Asimov value (0; 1 for q0) whose parameters generate the
  Asimov data set;
* on the Asimov data: the free fit and the fit with the POI fixed at ``mu``.

The three observed-data fits of every row go through one batched Newton call, the two
Asimov fits through another. Test statistics are differences of ``twice_nll``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from hfpipe.infer.asymptotics import cls_asymptotic
from hfpipe.infer.fit import DEFAULT_OPTIONS, FitOptions, FitResult, batched, fit_batch
from hfpipe.model.likelihood import expected_data, prepare
from hfpipe.model.structure import Layout, Numbers, Structure

__all__ = ["TEST_STATISTICS", "HypotestResult", "hypotest", "hypotest_batch", "test_statistic"]

TEST_STATISTICS = ("qtilde", "q", "q0", "tmu", "tmu_tilde")


def test_statistic(name: str, mu, mu_hat, twice_nll_fixed, twice_nll_free) -> np.ndarray:
    """q~_μ, q_μ, q0, t_μ or t~_μ from a fixed-POI and a free fit.

    The tilde variants differ from the plain ones through the POI's lower bound (0 for
    tilde), which the fits take from the model; like pyhf, the value is the clipped
    log-likelihood ratio, set to 0 for μ̂ > μ (q, q~) or μ̂ < 0 (q0).
    """
    ratio = np.clip(np.asarray(twice_nll_fixed) - np.asarray(twice_nll_free), 0.0, None)
    if name in ("qtilde", "q"):
        return np.where(np.asarray(mu_hat) > mu, 0.0, ratio)
    if name == "q0":
        return np.where(np.asarray(mu_hat) < 0.0, 0.0, ratio)
    if name in ("tmu", "tmu_tilde"):
        return ratio
    raise ValueError(f"unknown test statistic {name!r}; choose from {TEST_STATISTICS}")


@dataclass
class HypotestResult:
    """Per-row results of a batch of asymptotic hypothesis tests."""

    mu: np.ndarray  # (n,) tested POI value
    cls_obs: np.ndarray  # (n,) CLs (p0 for q0)
    cls_exp: np.ndarray  # (n, 5) -2σ … +2σ
    clsb_obs: np.ndarray
    clb_obs: np.ndarray
    q_obs: np.ndarray
    q_asimov: np.ndarray
    mu_hat: np.ndarray
    twice_nll: np.ndarray  # free fit to the observed data
    bestfit: np.ndarray  # (n, P) free fit to the observed data
    converged: np.ndarray  # (n,) all five fits converged
    message: np.ndarray  # (n,) why not, if not
    fits: dict[str, FitResult]  # free, fixed, asimov_generation, asimov_free, asimov_fixed
    #: (n,) '' or what makes the fits to the observed data suspicious though converged
    warning: np.ndarray | None = None


@functools.cache
def _asimov_data(structure: Layout):
    return jax.jit(
        jax.vmap(lambda numbers, pars: expected_data(structure, prepare(structure, numbers), pars))
    )


def _stack(*parts):
    return jax.tree.map(lambda *a: jnp.concatenate(a), *parts)


def _with_poi(init, fixed, poi: int, values) -> tuple[jax.Array, jax.Array]:
    return init.at[:, poi].set(values), fixed.at[:, poi].set(True)


def hypotest_batch(
    structure: Structure,
    numbers: Numbers,
    mu,
    *,
    data=None,
    test_stat: str = "qtilde",
    options: FitOptions = DEFAULT_OPTIONS,
) -> HypotestResult:
    """Asymptotic CLs for every row of a batch (``numbers`` with or without batch axis).

    ``mu`` is a scalar or one value per row; ``data`` defaults to each model's observed
    data (main counts then auxiliary data).
    """
    if test_stat not in ("qtilde", "q", "q0"):
        raise ValueError(
            f"asymptotic CLs supports test statistics qtilde, q and q0, not {test_stat!r}"
        )
    mu = np.atleast_1d(np.asarray(mu, dtype=float))
    n = max(len(mu), 1 if np.ndim(numbers.nominal) == 1 else np.shape(numbers.nominal)[0])
    mu = np.broadcast_to(mu, (n,))
    numbers = batched(numbers, n)
    if data is None:
        data = jnp.concatenate([numbers.observed, numbers.auxdata], axis=1)
    data = jnp.broadcast_to(jnp.asarray(data, dtype=float), (n, structure.n_bins + structure.n_aux))
    poi = structure.poi_index
    asimov_mu = 1.0 if test_stat == "q0" else 0.0
    tested = np.zeros(n) if test_stat == "q0" else mu

    init, fixed = jnp.asarray(numbers.init), jnp.asarray(numbers.fixed)
    fixed_init, fixed_fixed = _with_poi(init, fixed, poi, tested)
    gen_init, gen_fixed = _with_poi(init, fixed, poi, asimov_mu)
    observed = fit_batch(
        structure,
        _stack(numbers, numbers, numbers),
        jnp.concatenate([data, data, data]),
        init=jnp.concatenate([init, fixed_init, gen_init]),
        fixed=jnp.concatenate([fixed, fixed_fixed, gen_fixed]),
        options=options,
    )
    free, fixed_fit, generation = (_slice(observed, k * n, (k + 1) * n) for k in range(3))
    generated = jnp.asarray(generation.pars)
    asimov = _asimov_data(structure.layout)(numbers, generated)
    # The Asimov data set's free fit has its minimum at the parameters that generated
    # it, and its fixed-POI fit lies close: both start there. They are padded to the
    # batch shape of the observed fits (the free fit twice), so both calls share one
    # compiled function.
    warm_init, _ = _with_poi(generated, fixed, poi, tested)
    on_asimov = fit_batch(
        structure,
        _stack(numbers, numbers, numbers),
        jnp.concatenate([asimov, asimov, asimov]),
        init=jnp.concatenate([generated, warm_init, generated]),
        fixed=jnp.concatenate([fixed, fixed_fixed, fixed]),
        options=options,
    )
    asimov_free, asimov_fixed = _slice(on_asimov, 0, n), _slice(on_asimov, n, 2 * n)

    mu_hat = free.pars[:, poi]
    q = test_statistic(test_stat, tested, mu_hat, fixed_fit.twice_nll, free.twice_nll)
    q_asimov = test_statistic(
        test_stat, tested, asimov_free.pars[:, poi], asimov_fixed.twice_nll, asimov_free.twice_nll
    )
    cls, clsb, clb, cls_exp, clsb_exp = cls_asymptotic(q, q_asimov, test_stat)
    fits = {
        "free": free,
        "fixed": fixed_fit,
        "asimov_generation": generation,
        "asimov_free": asimov_free,
        "asimov_fixed": asimov_fixed,
    }
    converged = np.all([f.converged for f in fits.values()], axis=0)
    message = np.array(
        [
            "; ".join(f"{k} fit {f.message[i]}" for k, f in fits.items() if not f.converged[i])
            for i in range(n)
        ],
        dtype=object,
    )
    warning = np.array(
        [
            "; ".join(
                f"{k} fit: {fits[k].warning[i]}" for k in ("free", "fixed") if fits[k].warning[i]
            )
            for i in range(n)
        ],
        dtype=object,
    )
    is_q0 = test_stat == "q0"
    return HypotestResult(
        mu=np.asarray(tested),
        cls_obs=clsb if is_q0 else cls,
        cls_exp=clsb_exp if is_q0 else cls_exp,
        clsb_obs=clsb,
        clb_obs=clb,
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


def _slice(result: FitResult, start: int, stop: int) -> FitResult:
    return FitResult(**{k: v[start:stop] for k, v in vars(result).items()})


def hypotest(model, mu: float = 1.0, **options) -> HypotestResult:
    """Asymptotic CLs of one compiled :class:`~hfpipe.model.Model` (a batch of one).

    Fields of the result are arrays of length 1: ``result.cls_obs[0]``.
    """
    return hypotest_batch(model.structure, model.numbers, mu, **options)
