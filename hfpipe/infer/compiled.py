"""The compiled kernels of fits, built once per layout
(:func:`~hfpipe.model.layout_cache.per_layout`).

* :func:`newton_batch`: the vmapped Newton fit of a batch of models of one layout;
* :func:`objective` and :func:`derivatives`: -2 log L of one model with its gradient,
  or with its Hessian and Gauss–Newton matrix (for MIGRAD retries, EDMs, Hesse);
* :func:`batch_yields`: expected bin yields of a batch of points.
"""

from __future__ import annotations

import jax

from hfpipe import _jax  # noqa: F401  (double precision)
from hfpipe.infer.newton import newton_minimize
from hfpipe.model.layout_cache import per_layout
from hfpipe.model.likelihood import expected_main, prepare, twice_nll, twice_nll_derivatives
from hfpipe.model.structure import Layout, Numbers

__all__ = ["MAX_HALVINGS", "batch_yields", "derivatives", "newton_batch", "objective"]

#: Halvings of one step after which a fit gives up (newton_minimize's default).
MAX_HALVINGS = 30


@per_layout
def newton_batch(structure: Layout, max_iterations: int, edm_tolerance: float):
    """``(numbers, data, init, fixed, polish) -> MinimizeResult``, one fit per row (the
    batch runs until its slowest fit is done); ``polish`` is one flag for the batch,
    an argument of the call so that both kinds of fit share one compilation."""

    def one(numbers: Numbers, data, init, fixed, polish):
        prepared = prepare(structure, numbers)
        return newton_minimize(
            lambda x: twice_nll_derivatives(structure, prepared, x, data),
            init,
            numbers.lower,
            numbers.upper,
            fixed,
            max_iterations=max_iterations,
            edm_tolerance=edm_tolerance,
            max_halvings=MAX_HALVINGS,
            polish=polish,
        )

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, None)))


@per_layout
def objective(structure: Layout):
    """``(numbers, x, data) -> (-2 log L, gradient)`` of one model."""

    def value(numbers, x, data):
        return twice_nll(structure, prepare(structure, numbers), x, data)

    return jax.jit(jax.value_and_grad(value, argnums=1))


@per_layout
def derivatives(structure: Layout):
    """``(numbers, x, data) ->`` :func:`~hfpipe.model.likelihood.twice_nll_derivatives`
    of one model."""

    def evaluate(numbers, x, data):
        return twice_nll_derivatives(structure, prepare(structure, numbers), x, data)

    return jax.jit(evaluate)


@per_layout
def batch_yields(structure: Layout, shared_model: bool):
    """``(numbers, pars) ->`` expected bin yields of a batch of points, of one model
    (``shared_model``) or one each."""

    def one(numbers, x):
        return expected_main(structure, prepare(structure, numbers), x)

    return jax.jit(jax.vmap(one, in_axes=(None if shared_model else 0, 0)))
