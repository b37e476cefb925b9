"""A bounded Newton minimiser with line search, in pure JAX (vmap it for batches).

Why Newton: real HistFactory likelihoods are badly conditioned (a Poisson constraint
with τ ≈ 2e11 next to normfactors of curvature ~1), which stalls first-order optimisers
at their start. With exact gradients and curvature, a Newton step is invariant to
parameter scaling and converges in a handful of iterations.

Each iteration:

1. holds the parameters that are fixed, or at a bound with the gradient pushing
   outward (projected Newton);
2. solves ``(H + λ diag|H|) d = -g`` on the others with the exact Hessian, or with
   the Gauss–Newton matrix where that is not positive definite (non-convex regions:
   one-sided normsys variations make -log L locally concave);
3. backtracks along the projected path ``clip(x + t d)`` until the Armijo condition
   holds, evaluating value, gradient and curvature at each trial point;
4. on acceptance adapts each fit's
   Marquardt damping λ (Levenberg–Marquardt): it shrinks tenfold after a full Newton
   step and grows tenfold when the step had to be shortened or the Hessian was
   indefinite. Easy fits thus take pure Newton steps; hard ones become more cautious
   on their own, without a data-dependent inner loop.

Convergence is judged here, not taken on trust: the estimated distance to the minimum
``EDM = ½ gᵀ H⁻¹ g`` over the free parameters must fall below ``edm_tolerance`` with a
positive-definite Hessian.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["MinimizeResult", "bounded_edm", "newton_minimize"]

Derivatives = tuple[jax.Array, jax.Array, jax.Array, jax.Array]


class MinimizeResult(NamedTuple):
    """Outcome of one minimisation (fields gain a batch axis under vmap)."""

    x: jax.Array
    fun: jax.Array
    edm: jax.Array
    converged: jax.Array
    iterations: jax.Array  # evaluations of value, gradient and curvature


class _State(NamedTuple):
    x: jax.Array
    derivatives: Derivatives  # value, gradient, Hessian, Gauss–Newton matrix at x
    edm: jax.Array
    direction: jax.Array  # of the step under way
    newton_ok: jax.Array  # its matrix was the (damped) exact Hessian
    step_length: jax.Array  # the next trial is clip(x + step_length * direction)
    halvings: jax.Array  # of the step under way
    damping: jax.Array  # Marquardt λ for the next direction
    evaluations: jax.Array


def _held(x, g, lower, upper, fixed):
    """Parameters that do not move this step: fixed, or at a bound and pushed outward."""
    return fixed | ((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0))


def _reduced(g, h, held):
    """Gradient and matrix with held parameters decoupled (unit diagonal, zero gradient)."""
    g = jnp.where(held, 0.0, g)
    keep = ~held
    h = jnp.where(keep[:, None] & keep[None, :], h, 0.0) + jnp.diag(jnp.where(held, 1.0, 0.0))
    return g, h


def _edm(g, h):
    """½ gᵀ H⁻¹ g via Cholesky; +inf when H is not positive definite."""
    chol = jnp.linalg.cholesky(h)
    y = jax.scipy.linalg.solve_triangular(chol, g, lower=True)
    return jnp.where(jnp.all(jnp.isfinite(chol)), 0.5 * jnp.sum(y**2), jnp.inf)


#: Bounds of the adaptive Marquardt damping λ (below the floor it is switched off).
_DAMPING_FLOOR, _DAMPING_CEILING = 1e-4, 1e4


def bounded_edm(x, g, h, lower, upper, fixed):
    """EDM over the parameters that may move at ``x``: the convergence measure of every
    fit, whichever method produced ``x``."""
    return _edm(*_reduced(g, h, _held(x, g, lower, upper, fixed)))


#: Floor of the damping scale, relative to the largest curvature: a parameter without
#: curvature (a shapesys γ whose auxiliary count is 0 in a toy) still gets some.
_SCALE_FLOOR = 1e-8
#: Least damping of the Gauss–Newton stand-in, which is only semi-definite by itself.
_GAUSS_NEWTON_DAMPING = 1e-6


def _scale(matrix):
    """Diagonal damping scale: ``|diag M|``, floored relative to its largest entry."""
    diagonal = jnp.abs(jnp.diag(matrix))
    return jnp.maximum(diagonal, _SCALE_FLOOR * jnp.max(diagonal))


def _marquardt(matrix, damping):
    """``M + λ diag(scale)``: scale-invariant damping towards a diagonal step."""
    return matrix + damping * jnp.diag(_scale(matrix))


def _newton_direction(g, h, gauss_newton, damping):
    """Direction from ``(H + λ diag|H|) d = -g``, and whether that matrix was positive
    definite; where it is not, the damped Gauss–Newton matrix stands in (damped at least
    a little, so that it is positive definite where it is only semi-definite)."""
    stand_in = _marquardt(gauss_newton, jnp.maximum(damping, _GAUSS_NEWTON_DAMPING))
    factors = jnp.linalg.cholesky(jnp.stack([_marquardt(h, damping), stand_in]))
    newton_ok = jnp.all(jnp.isfinite(factors[0]))
    chol = jnp.where(newton_ok, factors[0], factors[1])
    direction = jax.scipy.linalg.cho_solve((chol, True), -g)
    # last resort, should both fail: a diagonal Newton step
    return jnp.where(jnp.isfinite(direction), direction, -g / _scale(stand_in)), newton_ok


def newton_minimize(
    evaluate: Callable[[jax.Array], Derivatives],
    x0: jax.Array,
    lower: jax.Array,
    upper: jax.Array,
    fixed: jax.Array,
    *,
    max_iterations: int = 200,
    edm_tolerance: float = 1e-9,
    max_halvings: int = 30,
) -> MinimizeResult:
    """Minimise within ``[lower, upper]`` holding ``fixed`` parameters.

    ``evaluate(x)`` returns the objective (a -2 log-likelihood), its gradient, its
    Hessian and a positive semi-definite stand-in (Gauss–Newton) used where the Hessian
    is not positive definite. ``x0`` is clipped to the bounds; fixed parameters keep
    their ``x0`` values. ``max_iterations`` counts evaluations (trial points).

    One loop, one evaluation per pass: a trial point that passes the Armijo test is
    accepted with the derivatives already computed there (the common case costs no
    separate line-search evaluation); one that fails halves the step for the next
    pass. No nested loops, so every row of a vmapped batch does the same work per pass.
    """

    def edm_at(x, derivatives):
        _, g, h, _ = derivatives
        return bounded_edm(x, g, h, lower, upper, fixed)

    def direction_at(x, derivatives, damping):
        _, g, h, gn = derivatives
        held = _held(x, g, lower, upper, fixed)
        g_held, h_held = _reduced(g, h, held)
        direction, newton_ok = _newton_direction(g_held, h_held, _reduced(g, gn, held)[1], damping)
        return jnp.where(held, 0.0, direction), newton_ok

    # The first pass "accepts" x0 (the previous value is +inf) and evaluates it there:
    # the compiled loop then holds a single copy of the (large) evaluation.
    x0 = jnp.clip(x0, lower, upper)
    n = x0.shape[0]
    unknown = (jnp.asarray(jnp.inf, x0.dtype), jnp.zeros_like(x0), jnp.eye(n), jnp.eye(n))
    one = jnp.asarray(1.0, x0.dtype)
    state = _State(
        x0,
        unknown,
        jnp.asarray(jnp.inf, x0.dtype),
        jnp.zeros_like(x0),
        jnp.asarray(True),  # so that the first acceptance leaves the damping at 0
        one,
        jnp.asarray(0),
        jnp.asarray(0.0, x0.dtype),
        jnp.asarray(0),
    )

    def keep_going(s: _State):
        return (
            (s.evaluations < max_iterations)
            & ~(s.edm < edm_tolerance)
            & (s.halvings <= max_halvings)
        )

    def step(s: _State) -> _State:
        f, g, _, _ = s.derivatives
        held = _held(s.x, g, lower, upper, fixed)
        trial = jnp.clip(s.x + s.step_length * s.direction, lower, upper)
        at_trial = evaluate(trial)
        decrease = jnp.where(held, 0.0, g) @ (trial - s.x)
        rounding = 4 * jnp.finfo(f.dtype).eps * jnp.abs(f)
        accepted = jnp.isfinite(at_trial[0]) & (at_trial[0] <= f + 1e-4 * decrease + rounding)

        full_step = s.newton_ok & (s.halvings == 0)
        damping = jnp.where(
            full_step,
            jnp.where(s.damping > _DAMPING_FLOOR, s.damping / 10, 0.0),
            jnp.clip(s.damping * 10, _DAMPING_FLOOR, _DAMPING_CEILING),
        )
        x = jnp.where(accepted, trial, s.x)
        derivatives = jax.tree.map(lambda a, b: jnp.where(accepted, a, b), at_trial, s.derivatives)
        damping = jnp.where(accepted, damping, s.damping)
        direction, newton_ok = direction_at(x, derivatives, damping)
        return _State(
            x,
            derivatives,
            jnp.where(accepted, edm_at(x, derivatives), s.edm),
            jnp.where(accepted, direction, s.direction),
            jnp.where(accepted, newton_ok, s.newton_ok),
            jnp.where(accepted, one, s.step_length * 0.5),
            jnp.where(accepted, 0, s.halvings + 1),
            damping,
            s.evaluations + 1,
        )

    final = jax.lax.while_loop(keep_going, step, state)
    return MinimizeResult(
        final.x, final.derivatives[0], final.edm, final.edm < edm_tolerance, final.evaluations
    )
