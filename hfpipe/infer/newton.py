"""A bounded Newton minimiser with line search, in pure JAX.

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
   holds and no parameter was put on a bound that the gradient there pulls it away
   from (an overshoot: a shapesys γ sent to 1e-10, inside the log barrier of its
   Poisson constraint, climbs back by doublings, ~30 evaluations), evaluating value,
   gradient and curvature at each trial point; a rejected trial's step is shortened
   to the minimum of a parabola fitted along it (by a factor 0.1 to 0.5);
4. on acceptance adapts each fit's
   Marquardt damping λ (Levenberg–Marquardt): it shrinks tenfold after a full Newton
   step and grows tenfold when the step had to be shortened or the Hessian was
   indefinite. Easy fits thus take pure Newton steps; hard ones become more cautious
   on their own, without a data-dependent inner loop.

Convergence is judged here, not taken on trust: the estimated distance to the minimum
``EDM = ½ gᵀ H⁻¹ g`` over the free parameters must fall below ``edm_tolerance`` with a
positive-definite Hessian. With ``polish``, a fit that got there takes one more Newton
step before it stops (Newton converges quadratically there: an EDM of 1e-9 becomes
~1e-18, and the parameters, which the EDM leaves ~sqrt(2 EDM) standard deviations from
the minimum, exact to ~1e-9 σ), unless its EDM is already below ``edm_tolerance`` ×
:data:`_POLISHED`. The polishing step may raise -2 log L by up to the tolerance (at
its rounding floor a true decrease can look like a rise); one rejected beyond that ends
the fit where it was.

Optionally (``step(..., scoring=...)`` with ``initial_state(..., scoring=True)``, used
for fits run one at a time), fits take their first steps by Fisher scoring: the
expected curvature of the main counts ``2 Jᵀ diag(1/ν) J`` plus the constraint terms'
curvature needs no second derivatives of the yields and, being a diagonal plus one
outer product a bin, is solved by the Woodbury identity without any (P, P) matrix.
Scoring converges linearly but fast while far from the minimum; once its EDM is within
100× the tolerance the fit goes on with Newton steps, whose EDM decides convergence.

The minimiser comes in pieces that work on a batch of fits (leading axis):
:func:`initial_state`, :func:`step` (one evaluation for every fit), :func:`finished`
and :func:`result`. :func:`newton_minimize` is one fit, a while loop over them (vmap
it: the batch then runs until its slowest fit is done); ``fit.fit_datasets`` instead
keeps a fixed number of lanes busy, loading a new fit into a lane as soon as its fit
is finished.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Bool, Float, Int

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)

__all__ = [
    "MinimizeResult",
    "NewtonState",
    "Scoring",
    "bounded_edm",
    "finished",
    "initial_state",
    "newton_minimize",
    "result",
    "step",
]

Derivatives = tuple[jax.Array, jax.Array, jax.Array, jax.Array]


class MinimizeResult(NamedTuple):
    """Outcome of one minimisation (fields gain a batch axis under vmap)."""

    x: Float[jax.Array, "*fits parameters"]
    fun: Float[jax.Array, "*fits"]
    edm: Float[jax.Array, "*fits"]
    converged: Bool[jax.Array, "*fits"]
    iterations: Int[jax.Array, "*fits"]  # evaluations of value, gradient and curvature


class NewtonState(NamedTuple):
    """Where a batch of fits stands between two evaluations (leading axis = batch).

    Only O(P) numbers a fit: the curvature at a point is used right where it is
    evaluated (for the next direction and the EDM) and is not carried along.
    """

    x: Float[jax.Array, "fits parameters"]
    value: Float[jax.Array, " fits"]  # -2 log L at x (+inf before the first evaluation)
    gradient: Float[jax.Array, "fits parameters"]  # at x
    edm: Float[jax.Array, " fits"]
    direction: Float[jax.Array, "fits parameters"]  # of the step under way
    newton_ok: Bool[jax.Array, " fits"]  # its matrix was the (damped) exact Hessian
    step_length: Float[jax.Array, " fits"]  # the next trial: clip(x + step_length · direction)
    halvings: Int[jax.Array, " fits"]  # shortenings of the step under way (each by 0.1–0.5)
    damping: Float[jax.Array, " fits"]  # Marquardt λ for the next direction
    evaluations: Int[jax.Array, " fits"]
    #: the fit still steps with the Fisher information (Fisher scoring), and has no
    #: EDM from the Hessian yet (see :func:`step`)
    scoring: Bool[jax.Array, " fits"]
    #: EDM of the point accepted before x (+inf at first): a fit whose last two points
    #: are both below the tolerance has taken its polishing step
    previous_edm: Float[jax.Array, " fits"]


def _held(x, g, lower, upper, fixed):
    """Parameters that do not move this step: fixed, or at a bound and pushed outward."""
    return fixed | ((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0))


def _reduced(g, h, held):
    """Gradient and matrix with held parameters decoupled (unit diagonal, zero gradient)."""
    g = jnp.where(held, 0.0, g)
    keep = ~held
    h = jnp.where(keep[:, None] & keep[None, :], h, 0.0) + jnp.diag(jnp.where(held, 1.0, 0.0))
    return g, h


def _cholesky(matrix):
    """Cholesky factor of a (batch of) symmetric matrices, from the lower triangle only:
    every matrix here is symmetric by construction, so the averaging with its
    transpose that ``jnp.linalg.cholesky`` does first is a wasted pass."""
    return jax.lax.linalg.cholesky(matrix, symmetrize_input=False)


def _edm(g, h):
    """½ gᵀ H⁻¹ g via Cholesky; +inf when H is not positive definite."""
    return _edm_from_factor(g, _cholesky(h))


def _edm_from_factor(g, chol):
    """½ gᵀ H⁻¹ g from H's Cholesky factor; +inf when that is not finite (H not
    positive definite)."""
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
    return _diagonal_scale(jnp.diag(matrix))


def _diagonal_scale(diagonal):
    diagonal = jnp.abs(diagonal)
    return jnp.maximum(diagonal, _SCALE_FLOOR * jnp.max(diagonal))


def _marquardt(matrix, damping):
    """``M + λ diag(scale)``: scale-invariant damping towards a diagonal step."""
    return matrix + damping * jnp.diag(_scale(matrix))


def _factor_ok(factor):
    """Whether a Cholesky factorisation succeeded: JAX returns NaNs where it fails, and
    a non-finite input entry reaches a later diagonal entry, so the diagonal tells."""
    return jnp.all(jnp.isfinite(jnp.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)


def _solve(factor, b):
    """``(L, L⁻¹ b)`` and ``Lᵀ⁻¹ L⁻¹ b`` for a batch of Cholesky factors ``L``: the
    half-way solution gives the EDM, the full one the direction (``cho_solve``)."""

    def triangular(transpose, a, v):
        return jax.lax.linalg.triangular_solve(
            a, v, left_side=True, lower=True, transpose_a=transpose, conjugate_a=transpose
        )

    half = jax.vmap(lambda a, v: triangular(False, a, v))(factor, b)
    return half, jax.vmap(lambda a, v: triangular(True, a, v))(factor, half)


def _directions(g, h, gauss_newton, held, damping, needed):
    """Next direction, whether its matrix was the damped Hessian, and the EDM, for a
    batch of points (leading axis); ``needed`` (B,) marks the rows whose results count.

    The direction solves ``(H + λ diag|H|) d = -g`` over the parameters not held, or
    the damped Gauss–Newton system where that matrix is not positive definite (the
    last resort, should both fail: a diagonal Newton step). The EDM ``½ gᵀ H⁻¹ g``
    needs the factor of the undamped H: with λ = 0 (easy fits, and every fit near its
    minimum) that is the direction's own factor and half of its solve, so the common
    evaluation costs one Cholesky factorisation. The Gauss–Newton and the undamped
    factors are made in conditionals, only where some row of the batch needs them;
    under an outer ``vmap`` (``newton_minimize`` in a batch) both branches run, as
    every row's result depends on its own inputs only.
    """
    g, h = jax.vmap(_reduced)(g, h, held)
    factor = _cholesky(jax.vmap(_marquardt)(h, damping))
    newton_ok = _factor_ok(factor)
    half, direction = _solve(factor, -g)
    stand_in_damping = jnp.maximum(damping, _GAUSS_NEWTON_DAMPING)

    def with_stand_in(direction):
        stand_in = jax.vmap(_reduced)(g, gauss_newton, held)[1]
        stand_in = _cholesky(jax.vmap(_marquardt)(stand_in, stand_in_damping))
        return jnp.where(newton_ok[:, None], direction, _solve(stand_in, -g)[1])

    # the conditional carries directions, not the (P, P) factor: a matrix passed through
    # it is copied on every evaluation
    direction = jax.lax.cond(jnp.any(needed & ~newton_ok), with_stand_in, lambda d: d, direction)
    # the diagonal step's scale: that of the Gauss–Newton stand-in (its diagonal alone)
    stand_in_diagonal = jnp.where(held, 1.0, jnp.diagonal(gauss_newton, axis1=-2, axis2=-1))
    scale = jax.vmap(_diagonal_scale)(stand_in_diagonal)
    diagonal_step = -g / jax.vmap(_diagonal_scale)(
        stand_in_diagonal + stand_in_damping[:, None] * scale
    )
    direction = jnp.where(jnp.isfinite(direction), direction, diagonal_step)

    damped = damping > 0
    edm = jnp.where(newton_ok, 0.5 * jnp.sum(half**2, axis=-1), jnp.inf)

    def undamped_edm(edm):
        return jnp.where(damped, jax.vmap(_edm)(g, h), edm)

    edm = jax.lax.cond(jnp.any(needed & damped), undamped_edm, lambda e: e, edm)
    return jnp.where(held, 0.0, direction), newton_ok, edm


def initial_state(x0, lower, upper, scoring: bool = False) -> NewtonState:
    """Fresh state of a batch of fits starting at ``x0`` (B, P), clipped to the bounds;
    with ``scoring``, the fits begin with Fisher scoring (see :func:`step`).

    The first step "accepts" x0 (the previous value is +inf) and evaluates it there:
    a compiled loop over :func:`step` then holds a single copy of the (large)
    evaluation.
    """
    x0 = jnp.clip(x0, lower, upper)
    batch, dtype = x0.shape[:1], x0.dtype
    return NewtonState(
        x=x0,
        value=jnp.full(batch, jnp.inf, dtype),
        gradient=jnp.zeros_like(x0),
        edm=jnp.full(batch, jnp.inf, dtype),
        direction=jnp.zeros_like(x0),
        newton_ok=jnp.ones(batch, bool),  # so that the first acceptance leaves λ at 0
        step_length=jnp.ones(batch, dtype),
        halvings=jnp.zeros(batch, int),
        damping=jnp.zeros(batch, dtype),
        evaluations=jnp.zeros(batch, int),
        scoring=jnp.full(batch, scoring),
        previous_edm=jnp.full(batch, jnp.inf, dtype),
    )


#: A step overshoots a bound when, at the bound, the gradient pulls the parameter back
#: by more than this (in -2 log L, to first order over the distance it moved).
_OVERSHOOT = 1.0


def _overshot(x, trial, gradient, lower, upper, fixed):
    """Whether the step put a parameter on a bound that the objective pulls it away
    from: the clipped path went past the minimum along that parameter (typically a
    shapesys γ sent to its lower bound of 1e-10, where its Poisson constraint is a
    log barrier that Newton steps then climb out of by doublings, ~30 evaluations)."""
    onto_lower = (trial <= lower) & (x > lower) & (gradient < 0)
    onto_upper = (trial >= upper) & (x < upper) & (gradient > 0)
    pulled_back = jnp.abs(gradient * (x - trial)) > _OVERSHOOT
    return jnp.any((onto_lower | onto_upper) & pulled_back & ~fixed)


#: Bounds of the factor by which a rejected trial's step is shortened.
_SHORTEST, _LONGEST = 0.1, 0.5


def _shortening(f0, slope, f1):
    """Factor for the next trial after a rejected one: the minimum of the parabola
    through ``f0`` with ``slope`` at the start of the step and ``f1`` at the rejected
    trial, within [0.1, 0.5] (safeguarded quadratic backtracking, Nocedal & Wright
    §3.5). A trial that overshot by far is thus shortened in one go instead of by
    repeated halvings; where the parabola says nothing (no finite value, no upward
    curvature), the step is halved."""
    curvature = f1 - f0 - slope
    fraction = -slope / (2 * jnp.where(curvature > 0, curvature, 1.0))
    usable = jnp.isfinite(fraction) & (curvature > 0)
    return jnp.where(usable, jnp.clip(fraction, _SHORTEST, _LONGEST), _LONGEST)


def _accept(s: NewtonState, trial, value, gradient, lower, upper, fixed, edm_tolerance):
    """Whether one fit's trial point passes the Armijo test and overshoots no bound,
    its next damping, and the factor that shortens the step should it be rejected.

    A fit already converged (EDM below ``edm_tolerance``: its polishing step) accepts a
    rise of up to the tolerance: the decrease left is below it, and at the rounding
    floor of -2 log L (~1e-14 of its value) a true decrease can look like a rise."""
    held = _held(s.x, s.gradient, lower, upper, fixed)
    decrease = jnp.where(held, 0.0, s.gradient) @ (trial - s.x)
    rounding = 4 * jnp.finfo(value.dtype).eps * jnp.abs(s.value)
    rounding = rounding + jnp.where(s.edm < edm_tolerance, edm_tolerance, 0.0)
    accepted = jnp.isfinite(value) & (value <= s.value + 1e-4 * decrease + rounding)
    accepted = accepted & ~_overshot(s.x, trial, gradient, lower, upper, fixed)
    full_step = s.newton_ok & (s.halvings == 0)
    damping = jnp.where(
        full_step,
        jnp.where(s.damping > _DAMPING_FLOOR, s.damping / 10, 0.0),
        jnp.clip(s.damping * 10, _DAMPING_FLOOR, _DAMPING_CEILING),
    )
    return accepted, jnp.where(accepted, damping, s.damping), _shortening(s.value, decrease, value)


class _Update(NamedTuple):
    """What one evaluation at the trial points gives each fit of a batch."""

    value: jax.Array
    gradient: jax.Array
    accepted: jax.Array
    damping: jax.Array
    shortening: jax.Array
    direction: jax.Array
    newton_ok: jax.Array
    edm: jax.Array
    scoring: jax.Array


def _judge(state: NewtonState, trial, value, gradient, lower, upper, fixed, edm_tolerance):
    """Per fit of a batch, from value and gradient at its trial point: accepted, next
    damping, shortening should it be rejected (:func:`_accept`), and the parameters
    held there."""
    accepted, damping, shortening = jax.vmap(_accept, in_axes=(0,) * 7 + (None,))(
        state, trial, value, gradient, lower, upper, fixed, edm_tolerance
    )
    held = jax.vmap(_held)(trial, gradient, lower, upper, fixed)
    return accepted, damping, shortening, held


def _hessian_update(
    evaluate, state: NewtonState, trial, lower, upper, fixed, edm_tolerance, active
):
    """Evaluate value, gradient and curvature at the trial points; on acceptance, the
    next Newton direction and the EDM (a fit accepted here has left Fisher scoring)."""
    value, gradient, hessian, gauss_newton = evaluate(trial)
    accepted, damping, shortening, held = _judge(
        state, trial, value, gradient, lower, upper, fixed, edm_tolerance
    )
    needed = accepted if active is None else accepted & active
    direction, newton_ok, edm = _directions(gradient, hessian, gauss_newton, held, damping, needed)
    scoring = jnp.where(accepted, False, state.scoring)
    return _Update(
        value, gradient, accepted, damping, shortening, direction, newton_ok, edm, scoring
    )


def _scoring_direction(g, information, unconstrained, held, damping):
    """Fisher-scoring direction of one fit and the EDM it predicts: solves
    ``(F + λ diag(scale)) d = -g`` over the parameters not held, with the Fisher matrix
    ``F = 2 (Jᵀ W J + diag c)`` (see ``likelihood.Information``).

    F is a diagonal plus B outer products (one a bin), so the Woodbury identity solves
    it through a (B + K, B + K) system instead of a (P, P) factorisation. The K
    ``unconstrained`` parameters (normfactors: no constraint term, c = 0) would leave
    that diagonal singular; each gets its own Fisher diagonal added to the diagonal and
    taken off again as one more outer product. Returns a zero direction and an infinite
    EDM where the system is unusable (a bin with a non-positive expected yield, a
    parameter without any information).
    """
    jacobian = jnp.where(held, 0.0, information.jacobian)  # (B, P)
    constraint = jnp.where(held, 0.0, information.constraint)
    fisher_diagonal = 2.0 * (information.weight @ jacobian**2 + constraint)  # 0 if held
    own = fisher_diagonal[unconstrained]  # (K,)
    diagonal = 2.0 * constraint + damping * _diagonal_scale(fisher_diagonal)
    diagonal = jnp.where(held, 1.0, diagonal.at[unconstrained].add(own))
    columns = jnp.concatenate(
        [
            (jnp.sqrt(2.0 * information.weight)[:, None] * jacobian).T,
            jnp.zeros((g.shape[0], unconstrained.shape[0]), g.dtype)
            .at[unconstrained, jnp.arange(unconstrained.shape[0])]
            .set(jnp.sqrt(own)),
        ],
        axis=1,
    )  # (P, B + K): F + damping = diag(diagonal) + columns · diag(signs) · columnsᵀ
    signs = jnp.concatenate(
        [jnp.ones(jacobian.shape[0], g.dtype), -jnp.ones(unconstrained.shape[0], g.dtype)]
    )
    g = jnp.where(held, 0.0, g)
    scaled = columns / diagonal[:, None]
    inner = jnp.diag(signs) + columns.T @ scaled
    newton = g / diagonal - scaled @ jnp.linalg.solve(inner, columns.T @ (g / diagonal))
    direction = jnp.where(held, 0.0, -newton)
    edm = -0.5 * g @ direction
    usable = jnp.all(jnp.isfinite(direction)) & (edm >= 0.0)
    return jnp.where(usable, direction, 0.0), jnp.where(usable, edm, jnp.inf)


#: Evaluations after which a fit leaves Fisher scoring for Newton steps, whatever its
#: Fisher EDM (scoring converges linearly, and only near the minimum is that fast).
_MAX_SCORING_EVALUATIONS = 12
#: A fit leaves scoring once its Fisher EDM is below this many times its tolerance:
#: Newton steps (quadratic convergence) finish from there in about one evaluation,
#: where scoring (linear convergence) takes several (the choice: docs/performance.md).
_SCORING_SWITCH = 100.0


class Scoring(NamedTuple):
    """How a batch of fits steps by Fisher scoring (see :func:`step`)."""

    #: points (B, P) -> value, gradient and the scoring matrix in factored form
    #: (``likelihood.twice_nll_information``, batched)
    evaluate: Callable
    #: indices of the parameters without a constraint term
    unconstrained: jax.Array
    #: the fits' EDM tolerance (scoring ends within :data:`_SCORING_SWITCH` times it)
    edm_tolerance: jax.Array


def _scoring_update(scoring: Scoring, state, trial, lower, upper, fixed, edm_tolerance):
    """Evaluate value, gradient and Fisher information at the trial points; on
    acceptance, the next Fisher-scoring direction. A fit whose Fisher EDM is below
    :data:`_SCORING_SWITCH` times the tolerance (or whose scoring is unusable, or
    has gone on for :data:`_MAX_SCORING_EVALUATIONS`) leaves scoring: its next trial
    point is evaluated with the Hessian, which judges convergence."""
    value, gradient, information = scoring.evaluate(trial)
    accepted, damping, shortening, held = _judge(
        state, trial, value, gradient, lower, upper, fixed, edm_tolerance
    )
    direction, fisher_edm = jax.vmap(_scoring_direction, in_axes=(0, 0, None, 0, 0))(
        gradient, information, scoring.unconstrained, held, damping
    )
    leave = (
        (fisher_edm < _SCORING_SWITCH * scoring.edm_tolerance)
        | ~jnp.isfinite(fisher_edm)
        | (state.evaluations + 1 >= _MAX_SCORING_EVALUATIONS)
    )
    return _Update(
        value,
        gradient,
        accepted,
        damping,
        shortening,
        direction,
        newton_ok=jnp.isfinite(fisher_edm),
        edm=jnp.full_like(value, jnp.inf),  # no EDM until the Hessian has been seen
        scoring=jnp.where(accepted, ~leave, state.scoring),
    )


def step(
    evaluate: Callable[[jax.Array], Derivatives],
    state: NewtonState,
    lower: jax.Array,
    upper: jax.Array,
    fixed: jax.Array,
    active: jax.Array | None = None,
    *,
    scoring: Scoring | None = None,
    edm_tolerance=0.0,
) -> NewtonState:
    """One evaluation for every fit of a batch (leading axis of ``state``, ``lower``,
    ``upper``, ``fixed``).

    Each fit evaluates the trial point ``clip(x + t d)`` of its step under way
    (``evaluate`` maps points (B, P) to batched derivatives). A point that passes
    the Armijo test is accepted with the derivatives already computed there, and the
    next direction and the EDM are computed from them; one that fails shortens the step
    for the next pass. No nested loops, so every fit of the batch does the same work.
    ``active`` (B,) marks the fits whose outcome matters (default: all); the others
    are stepped too, but no factorisation is made for them alone. A fit's result
    never depends on the other rows of the batch.

    ``scoring`` (a :class:`Scoring`) lets fits that start with
    ``initial_state(..., scoring=True)`` take their first steps by Fisher scoring: its
    ``evaluate`` gives value, gradient and the scoring matrix without second
    derivatives of the yields (``likelihood.twice_nll_information``), solved without a
    (P, P) factorisation (:func:`_scoring_direction`): about a quarter
    of the cost of a Newton evaluation, and nearly as fast a convergence while the fit
    is still far from the minimum. Once a fit's Fisher EDM is below
    :data:`_SCORING_SWITCH` times the tolerance, its next point is evaluated with
    the Hessian, as every point is after that: convergence is only ever judged with the
    Hessian's EDM. A pass runs Fisher scoring only when no active fit of the batch needs
    the Hessian; otherwise every fit takes a Newton step.

    ``edm_tolerance`` (may be traced): the fits' tolerance, within which a converged
    fit's polishing step is accepted (see :func:`_accept`).
    """
    trial = jax.vmap(lambda s, lo, hi: jnp.clip(s.x + s.step_length * s.direction, lo, hi))(
        state, lower, upper
    )
    args = (state, trial, lower, upper, fixed, edm_tolerance)
    if scoring is None:
        update = _hessian_update(evaluate, *args, active)
    else:
        hessian_needed = ~state.scoring if active is None else active & ~state.scoring
        update = jax.lax.cond(
            jnp.any(hessian_needed),
            lambda: _hessian_update(evaluate, *args, active),
            lambda: _scoring_update(scoring, *args),
        )
    accepted = update.accepted

    def where(new, old):
        return jnp.where(accepted.reshape(accepted.shape + (1,) * (new.ndim - 1)), new, old)

    return NewtonState(
        x=where(trial, state.x),
        value=where(update.value, state.value),
        gradient=where(update.gradient, state.gradient),
        edm=where(update.edm, state.edm),
        direction=where(update.direction, state.direction),
        newton_ok=where(update.newton_ok, state.newton_ok),
        step_length=where(jnp.ones_like(state.step_length), state.step_length * update.shortening),
        halvings=where(jnp.zeros_like(state.halvings), state.halvings + 1),
        damping=update.damping,
        evaluations=state.evaluations + 1,
        scoring=update.scoring,
        previous_edm=where(state.edm, state.previous_edm),
    )


#: With ``polish``, a fit whose EDM is below this fraction of the tolerance needs no
#: polishing step.
_POLISHED = 1e-9


def finished(
    state: NewtonState,
    *,
    max_iterations: int,
    edm_tolerance: float,
    max_halvings: int,
    polish=False,
) -> jax.Array:
    """Per fit: converged (EDM below tolerance; with ``polish``, and then one more Newton
    step tried, see the module docstring), out of evaluations, or out of step
    shortenings. ``polish`` may be a traced boolean."""
    converged = state.edm < edm_tolerance
    polished = (
        (state.previous_edm < edm_tolerance)
        | (state.halvings > 0)
        | (state.edm < _POLISHED * edm_tolerance)
    )
    return (
        (state.evaluations >= max_iterations)
        | (converged & (polished | ~jnp.asarray(polish)))
        | (state.halvings > max_halvings)
    )


def result(state: NewtonState, edm_tolerance: float) -> MinimizeResult:
    """The outcome of the fits of a (finished) state."""
    return MinimizeResult(
        state.x, state.value, state.edm, state.edm < edm_tolerance, state.evaluations
    )


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
    polish=False,
) -> MinimizeResult:
    """Minimise within ``[lower, upper]`` holding ``fixed`` parameters: one fit (vmap it
    for a batch that runs until its slowest fit is done), a while loop over
    :func:`step` until :func:`finished`.

    ``evaluate(x)`` returns the objective (a -2 log-likelihood), its gradient, its
    Hessian and a positive semi-definite stand-in (Gauss–Newton) used where the Hessian
    is not positive definite. ``x0`` is clipped to the bounds; fixed parameters keep
    their ``x0`` values. ``max_iterations`` counts evaluations (trial points).
    ``polish`` (a bool, or a traced one): one more Newton step after convergence (see
    the module docstring).
    """
    bounds = (lower[None], upper[None], fixed[None])

    def evaluate_one(x):
        return jax.tree.map(lambda a: a[None], evaluate(x[0]))

    def keep_going(s):
        return ~finished(
            s,
            max_iterations=max_iterations,
            edm_tolerance=edm_tolerance,
            max_halvings=max_halvings,
            polish=polish,
        )[0]

    final = jax.lax.while_loop(
        keep_going,
        lambda s: step(evaluate_one, s, *bounds, edm_tolerance=edm_tolerance),
        initial_state(x0[None], lower[None], upper[None]),
    )
    return jax.tree.map(lambda a: a[0], result(final, edm_tolerance))
