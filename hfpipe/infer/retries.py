"""What happens to fits that did not converge: runaways are named, the rest retried.

An unconverged fit that ended where an expected bin yield is negative in a bin without
events is a *runaway*: that bin's Poisson term is just ν, so -2 log L can fall without
bound until parameters reach their bounds (histosys extrapolated to large pulls, scaled
up by a free factor), and MIGRAD spends its whole time limit on each such fit (1Lbb
toys have them: docs/toys.md). Runaways get a
message saying so and are not retried. Every other unconverged fit is retried one by
one: iminuit's MIGRAD (strategy 2) from the best point so far, then a Newton polish of
its result, whose EDM judges convergence as for every fit.

Also here: SciPy's L-BFGS-B as a first method (``FitOptions.first_method="lbfgsb"``),
the kind of first-order fit that stalls on ill-conditioned likelihoods, kept so that
the detection and recovery can be shown.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Bool, Float

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.infer import compiled
from hfpipe.infer.fitresult import FitResult, unconverged_message
from hfpipe.infer.newton import bounded_edm
from hfpipe.model.structure import Array, Numbers, Structure

__all__ = ["FitRows", "edm_at", "lbfgsb", "retry_failed"]


class FitRows(NamedTuple):
    """The inputs of a batch of fits: the data and fixed parameters of each row, and the
    model: one shared by all rows (``shared_model``) or one per row."""

    structure: Structure
    numbers: Numbers
    shared_model: bool
    data: Float[Array, "fits data"]  # main counts, then auxiliary data
    fixed: Bool[Array, "fits parameters"]

    def model(self, i: int) -> Numbers:
        """The model of row ``i``."""
        return self.numbers if self.shared_model else jax.tree.map(lambda a: a[i], self.numbers)


def retry_failed(rows: FitRows, result: FitResult, options) -> FitResult:
    """``result`` with its runaways marked and, if ``options.retry``, every other
    unconverged fit retried (the retried ones checked for runaways again)."""
    result, runaway = _mark_runaways(rows, result)
    if not options.retry:
        return result
    retried = np.flatnonzero(~result.converged & ~runaway)
    for i in retried:
        result = _retry(rows, i, options, result)
    if len(retried):
        result, _ = _mark_runaways(rows, result)
    return result


def _retry(rows: FitRows, i: int, options, result: FitResult) -> FitResult:
    """Row ``i`` of ``result`` after MIGRAD from its last point and a Newton polish."""
    model, data, fixed = rows.model(i), rows.data[i], rows.fixed[i]
    start = _minuit(rows.structure, model, data, result.pars[i], fixed, options.retry_seconds)
    newton = compiled.newton_batch(rows.structure, options.max_iterations, options.edm_tolerance)
    found = FitResult.of(
        newton(
            jax.tree.map(lambda a: jnp.asarray(a)[None], model),
            jnp.asarray(data)[None],
            jnp.asarray(start)[None],
            jnp.asarray(fixed)[None],
            options.polish,
        ),
        f"{result.method[i]}>minuit>newton",
    )
    message = (
        ""
        if found.converged[0]
        else unconverged_message(found.edm[0], "not converged after retries")
    )
    found = replace(
        found,
        iterations=found.iterations + result.iterations[i],
        message=np.array([message], dtype=object),
    )
    return result.replace_rows(np.array([i]), found)


#: Points per call of the yields check: every call has this shape, so it compiles once
#: per structure (each new batch shape is a new compilation, and the retried subsets of
#: toys come in all sizes).
_YIELDS_BLOCK = 256


def _expected_yields(rows: FitRows, which: np.ndarray, pars) -> np.ndarray:
    """Expected bin yields of rows ``which`` at ``pars`` (one row each), in blocks of
    :data:`_YIELDS_BLOCK` rows, the last one padded."""
    yields, n = compiled.batch_yields(rows.structure, rows.shared_model), len(pars)
    numbers = rows.numbers if rows.shared_model else jax.tree.map(lambda a: a[which], rows.numbers)
    blocks = []
    for first in range(0, n, _YIELDS_BLOCK):
        block = np.minimum(np.arange(first, first + _YIELDS_BLOCK), n - 1)
        models = numbers if rows.shared_model else jax.tree.map(lambda a, r=block: a[r], numbers)
        blocks.append(np.asarray(yields(models, jnp.asarray(pars[block])))[: n - first])
    return np.concatenate(blocks)


def _mark_runaways(rows: FitRows, result: FitResult) -> tuple[FitResult, np.ndarray]:
    """``result`` with the runaways among its unconverged fits named (see the module
    docstring), and which rows they are."""
    structure = rows.structure
    runaway = np.zeros(len(result), dtype=bool)
    unconverged = np.flatnonzero(~np.asarray(result.converged))
    if not len(unconverged):  # the usual case: no yields to compute
        return result, runaway
    nu = _expected_yields(rows, unconverged, result.pars[unconverged])
    negative = (np.asarray(rows.data)[unconverged, : structure.n_bins] == 0) & (nu < 0)
    ends = np.cumsum(structure.channel_bins)
    message = result.message.copy()
    for k in np.flatnonzero(negative.any(axis=1)):
        i, b = unconverged[k], int(np.flatnonzero(negative[k])[np.argmin(nu[k][negative[k]])])
        channel = int(np.searchsorted(ends, b, side="right"))
        local = b - (int(ends[channel - 1]) if channel else 0)
        message[i] = (
            f"not converged: the expected yield of bin {local} of channel "
            f"'{structure.channels[channel]}' went negative ({nu[k, b]:.3g}) where the data "
            "have no events, and -2 log L can fall without bound there (not retried)"
        )
        runaway[i] = True
    return replace(result, message=message), runaway


class _OutOfTime(Exception):
    """Raised inside MIGRAD's objective to stop a retry at its time limit."""


def _minuit(structure, numbers, data, start, fixed, seconds: float):
    """MIGRAD (strategy 2) from ``start``; returns its result, or the best point it
    evaluated if it ran past ``seconds`` (a pathological input must not hold a scan)."""
    import iminuit

    value_and_grad = compiled.objective(structure)
    deadline = time.monotonic() + seconds
    best = [np.inf, np.asarray(start, dtype=float)]

    def fun(x):
        if time.monotonic() > deadline:
            raise _OutOfTime
        value = float(value_and_grad(numbers, jnp.asarray(x), data)[0])
        if value < best[0]:
            best[:] = [value, np.array(x)]
        return value

    def grad(x):
        return np.asarray(value_and_grad(numbers, jnp.asarray(x), data)[1])

    minuit = iminuit.Minuit(fun, np.asarray(start, dtype=float), grad=grad)
    minuit.errordef = 1.0  # objective is -2 log L
    minuit.strategy = 2
    minuit.tol = 1e-6
    minuit.limits = list(zip(np.asarray(numbers.lower), np.asarray(numbers.upper), strict=True))
    minuit.fixed = list(np.asarray(fixed, dtype=bool))
    try:
        minuit.migrad(ncall=100_000)
    except _OutOfTime:
        return best[1]
    return np.asarray(minuit.values)


def edm_at(structure, numbers, x, data, fixed) -> float:
    """The convergence measure of :mod:`hfpipe.infer.newton`, for a point found by
    another method."""
    x = jnp.asarray(x)
    _, g, h, _ = compiled.derivatives(structure)(numbers, x, data)
    return float(bounded_edm(x, g, h, numbers.lower, numbers.upper, jnp.asarray(fixed)))


def lbfgsb(structure, numbers, data, init, fixed) -> np.ndarray:
    """SciPy's L-BFGS-B from ``init``, holding ``fixed``; returns its end point."""
    import scipy.optimize

    value_and_grad = compiled.objective(structure)
    free = ~np.asarray(fixed)
    x_all = np.array(init, dtype=float)

    def fun(x_free):
        x_all[free] = x_free
        f, g = value_and_grad(numbers, jnp.asarray(x_all), data)
        return float(f), np.asarray(g)[free]

    bounds = list(
        zip(np.asarray(numbers.lower)[free], np.asarray(numbers.upper)[free], strict=True)
    )
    result = scipy.optimize.minimize(fun, x_all[free], jac=True, method="L-BFGS-B", bounds=bounds)
    x_all[free] = result.x
    return x_all
