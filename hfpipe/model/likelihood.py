"""The HistFactory likelihood as pure JAX functions of (structure, numbers, parameters).

``expected_main`` gives expected counts per bin, ``expected_aux`` the expected auxiliary
data, ``logpdf`` the log-likelihood of data (main counts followed by auxiliary data, as
in pyhf). The main term is a Poisson with the continuous normalisation
``n log ν - ν - lgamma(n + 1)``; constraints are Gaussian (normsys, histosys, lumi,
staterror) or Poisson in ``τ·γ`` (shapesys), with their normalisations, as pyhf.

``twice_nll_derivatives`` returns -2 log L with its exact gradient and the Gauss–Newton
curvature ``2 Jᵀ diag(n/ν²) J`` + exact constraint curvature, built from the model's
structure (every parameter acts through a one-dimensional function per slot) at the cost
of about two likelihood evaluations — where autodiff's full Hessian costs ~P of them.

Everything here is written for one model; a batch axis is added with ``jax.vmap``.
Functions take a :class:`Layout` (``structure.layout``): names play no part here.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, xlogy
from jaxtyping import Float

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.model.interpolation import NormsysTerms, histosys_delta, normsys_factor, normsys_terms
from hfpipe.model.layout_cache import LAYOUTS_KEPT
from hfpipe.model.structure import Layout, Numbers

__all__ = [
    "YIELD_FLOOR",
    "Information",
    "Prepared",
    "expected_aux",
    "expected_data",
    "expected_main",
    "logpdf",
    "prepare",
    "twice_nll",
    "twice_nll_derivatives",
    "twice_nll_information",
    "unconstrained_parameters",
]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)

#: With ``Layout.clip_yields`` (the user's opt-in for unphysical models, see
#: :mod:`hfpipe.model.physical`), expected bin yields below this are set to it.
YIELD_FLOOR = 1e-10


class Prepared(NamedTuple):
    """Numbers plus constants derived from them once per model (not per evaluation)."""

    numbers: Numbers
    normsys: NormsysTerms


def prepare(structure: Layout, numbers: Numbers) -> Prepared:
    return Prepared(
        numbers, normsys_terms(structure.normsys_code, numbers.normsys_hi, numbers.normsys_lo)
    )


def _index(values) -> jax.Array:
    return jnp.asarray(values, dtype=int)


class _Maps(NamedTuple):
    """Routing of slots to bins (a 0/1 matrix: sums become matrix products, which
    vectorise well under ``vmap``) and of effect rows to parameters (index arrays:
    each parameter has at most one multiplicative row and one histosys row; the index
    ``R`` or ``H`` points at an appended zero)."""

    slot_to_bin: np.ndarray  # (B, N)
    row_of_parameter: np.ndarray  # (P,) row in [normsys rows, factor rows], or R
    histosys_of_parameter: np.ndarray  # (P,) histosys row, or H


@functools.lru_cache(maxsize=LAYOUTS_KEPT)
def _maps(structure: Layout) -> _Maps:
    def inverse(rows):
        index = np.full(structure.n_parameters, len(rows))
        index[list(rows)] = np.arange(len(rows))
        return index

    slot_to_bin = np.zeros((structure.n_bins, len(structure.slot_bin)))
    slot_to_bin[list(structure.slot_bin), np.arange(len(structure.slot_bin))] = 1.0
    return _Maps(
        slot_to_bin,
        inverse(structure.normsys_params + structure.factor_params),
        inverse(structure.histosys_params),
    )


def _pad(matrix: jax.Array, axes=(0,)) -> jax.Array:
    """Append a zero row (axis 0) and/or column (axis 1), the target of absent entries."""
    widths = [(0, 1) if axis in axes else (0, 0) for axis in range(matrix.ndim)]
    return jnp.pad(matrix, widths)


class _SlotTerms(NamedTuple):
    """Per-slot effects of every parameter, with first and second derivatives.

    The expected yield of slot n is ``additive[n] * Π_k rows[k, n]``: histosys deltas
    add to the nominal, normsys factors and factor parameters multiply it. Each row, and
    each histosys delta, depends on one parameter only, which makes the derivatives of
    the yields cheap to assemble.
    """

    additive: jax.Array  # (N,) nominal + Σ histosys deltas
    histosys_slope: jax.Array  # (H, N) d delta / d alpha
    histosys_curvature: jax.Array  # (H, N) d² delta / d alpha²
    rows: jax.Array  # (R, N) multiplicative effects: normsys rows, then factor rows
    row_slopes: jax.Array  # (R, N) d row / d parameter
    row_curvatures: jax.Array  # (R, N) d² row / d parameter²


def _with_derivatives(fn, x):
    """Value, first and second derivative of an elementwise-in-parameter function."""
    ones = jnp.ones_like(x)

    def value_and_slope(y):
        return jax.jvp(fn, (y,), (ones,))

    (value, slope), (_, curvature) = jax.jvp(value_and_slope, (x,), (ones,))
    return value, slope, curvature


def _effect_functions(structure: Layout, prepared: Prepared):
    numbers = prepared.numbers

    def normsys(alpha):
        return normsys_factor(structure.normsys_code, alpha, prepared.normsys)

    def histosys(alpha):
        return histosys_delta(
            structure.histosys_code, alpha, numbers.histosys_up, numbers.histosys_down
        )

    return normsys, histosys


def _slot_parameters(structure: Layout, pars: jax.Array):
    return (
        pars[_index(structure.normsys_params)][:, None],
        pars[_index(structure.histosys_params)][:, None],
        pars[_index(structure.factor_params)][:, None],
    )


def _slot_yields(structure: Layout, prepared: Prepared, pars: jax.Array) -> jax.Array:
    """Expected yield of every (channel, sample, bin) slot."""
    normsys, histosys = _effect_functions(structure, prepared)
    alpha_norm, alpha_hist, factors = _slot_parameters(structure, pars)
    numbers = prepared.numbers
    additive = numbers.nominal + jnp.sum(histosys(alpha_hist), axis=0)
    scale = jnp.prod(jnp.where(numbers.factor_mask, factors, 1.0), axis=0)
    return additive * jnp.prod(normsys(alpha_norm), axis=0) * scale


def _slot_terms(structure: Layout, prepared: Prepared, pars: jax.Array) -> _SlotTerms:
    normsys, histosys = _effect_functions(structure, prepared)
    alpha_norm, alpha_hist, factors = _slot_parameters(structure, pars)
    norm, norm_slope, norm_curvature = _with_derivatives(normsys, alpha_norm)
    delta, delta_slope, delta_curvature = _with_derivatives(histosys, alpha_hist)
    mask = prepared.numbers.factor_mask
    return _SlotTerms(
        prepared.numbers.nominal + jnp.sum(delta, axis=0),
        delta_slope,
        delta_curvature,
        jnp.concatenate([norm, jnp.where(mask, factors, 1.0)]),
        jnp.concatenate([norm_slope, mask.astype(pars.dtype)]),
        jnp.concatenate([norm_curvature, jnp.zeros(mask.shape, pars.dtype)]),
    )


def _clipped(structure: Layout, nu: jax.Array) -> jax.Array:
    """Bins whose expected yield is clipped at :data:`YIELD_FLOOR` (none unless opted in)."""
    if not structure.clip_yields:
        return jnp.zeros(nu.shape, dtype=bool)
    return nu < YIELD_FLOOR


def expected_main(structure: Layout, prepared: Prepared, pars: jax.Array) -> jax.Array:
    """Expected counts per bin, channels in name order."""
    nu = _maps(structure).slot_to_bin @ _slot_yields(structure, prepared, pars)
    return jnp.where(_clipped(structure, nu), YIELD_FLOOR, nu)


def expected_aux(structure: Layout, prepared: Prepared, pars: jax.Array) -> jax.Array:
    """Expected auxiliary data: γ for Gaussian constraints, τ·γ for Poisson ones."""
    aux = jnp.zeros(structure.n_aux, dtype=pars.dtype)
    aux = aux.at[_index(structure.normal_aux)].set(pars[_index(structure.normal_params)])
    poisson = pars[_index(structure.poisson_params)] * prepared.numbers.poisson_factor
    return aux.at[_index(structure.poisson_aux)].set(poisson)


def expected_data(structure: Layout, prepared: Prepared, pars: jax.Array) -> jax.Array:
    """Main counts followed by auxiliary data, pyhf's ``model.expected_data``."""
    return jnp.concatenate(
        [expected_main(structure, prepared, pars), expected_aux(structure, prepared, pars)]
    )


def _log_poisson_mode(n: jax.Array) -> jax.Array:
    """``n log n - n - lgamma(n + 1)`` without cancellation (Stirling series for n > 30)."""
    large = jnp.maximum(n, 30.0)
    series = -0.5 * jnp.log(2 * math.pi * large) - 1 / (12 * large) + 1 / (360 * large**3)
    series = series - 1 / (1260 * large**5)
    small = jnp.minimum(n, 30.0)
    direct = xlogy(small, small) - small - gammaln(small + 1.0)
    return jnp.where(n > 30.0, series, direct)


def _poisson_logpdf_stable(n: jax.Array, rate: jax.Array) -> jax.Array:
    """``n log λ - λ - lgamma(n + 1)``, computed around λ = n.

    Shapesys constraints can have τ ≈ 2e11 (a relative MC uncertainty of 2e-6). The
    textbook form then adds terms of ~5e12 whose rounding (~1e-3) swamps differences
    of -2 log L that decide a test statistic. Written as
    ``n log1p((λ-n)/n) - (λ-n)`` plus a constant of n, it keeps full precision.
    """
    safe_n = jnp.where(n > 0, n, 1.0)
    excess = rate - n
    around = n * jnp.log1p(excess / safe_n) - excess + _log_poisson_mode(safe_n)
    return jnp.where(n > 0, around, -rate)


class _Constraints(NamedTuple):
    logpdf: jax.Array  # scalar
    gradient: jax.Array  # (P,) of the log-density
    curvature: jax.Array  # (P,) minus the second derivative (diagonal)
    #: (P,) the curvature Fisher scoring steps with: ``curvature``, except that a
    #: Poisson term without counts (linear in γ: curvature 0) gets τ, its Fisher
    #: information at γ = 1. (The expected τ/γ instead diverges as γ → 0 and pinned
    #: such a γ, started at its lower bound, there: toy fits ended in higher minima.)
    scoring: jax.Array


def _constraints(
    structure: Layout, prepared: Prepared, pars: jax.Array, auxdata: jax.Array
) -> _Constraints:
    numbers = prepared.numbers
    normal_params, poisson_params = (
        _index(structure.normal_params),
        _index(structure.poisson_params),
    )
    x = auxdata[_index(structure.normal_aux)]
    mu = pars[normal_params]
    sigma = numbers.normal_sigma
    pull = (x - mu) / sigma
    normal = -0.5 * pull**2 - jnp.log(sigma) - _LOG_SQRT_2PI
    n = auxdata[_index(structure.poisson_aux)]
    gamma, tau = pars[poisson_params], numbers.poisson_factor
    poisson = _poisson_logpdf_stable(n, gamma * tau)
    gradient = jnp.zeros_like(pars).at[normal_params].add(pull / sigma)
    gradient = gradient.at[poisson_params].add(jnp.where(n > 0, n / gamma, 0.0) - tau)
    curvature = jnp.zeros_like(pars).at[normal_params].add(1.0 / sigma**2)
    poisson_curvature = jnp.where(n > 0, n / gamma**2, 0.0)
    scoring = curvature.at[poisson_params].add(jnp.where(n > 0, poisson_curvature, tau))
    curvature = curvature.at[poisson_params].add(poisson_curvature)
    return _Constraints(jnp.sum(normal) + jnp.sum(poisson), gradient, curvature, scoring)


def _split(structure: Layout, data: jax.Array) -> tuple[jax.Array, jax.Array]:
    return data[: structure.n_bins], data[structure.n_bins :]


def logpdf(structure: Layout, prepared: Prepared, pars: jax.Array, data: jax.Array) -> jax.Array:
    """log L(pars | data) with ``data`` = main counts then auxiliary data."""
    main, aux = _split(structure, data)
    nu = expected_main(structure, prepared, pars)
    main_term = jnp.sum(xlogy(main, nu) - nu - gammaln(main + 1.0))
    return main_term + _constraints(structure, prepared, pars, aux).logpdf


def twice_nll(structure: Layout, prepared: Prepared, pars: jax.Array, data: jax.Array):
    """-2 log L, the objective of every fit (pyhf's ``twice_nll``)."""
    return -2.0 * logpdf(structure, prepared, pars, data)


def _leave_one_out(rows: jax.Array) -> jax.Array:
    """Product over all rows but one, per column; exact when rows hold zeros (μ = 0)."""
    is_zero = rows == 0
    nonzero = jnp.where(is_zero, 1.0, rows)
    product = jnp.prod(nonzero, axis=0)
    zeros = jnp.sum(is_zero, axis=0)
    return jnp.where(zeros == 0, product / nonzero, jnp.where((zeros == 1) & is_zero, product, 0.0))


class _Yields(NamedTuple):
    """Expected counts ν (B,) and their Jacobian J (B, P), with the per-slot pieces the
    second derivatives are made of."""

    nu: jax.Array
    jacobian: jax.Array
    clipped: jax.Array  # (B,) bins held at YIELD_FLOOR
    terms: _SlotTerms
    product: jax.Array  # (N,) product of the multiplicative rows
    others: jax.Array  # (R, N) product of all rows but one


def _yields(structure: Layout, prepared: Prepared, pars: jax.Array) -> _Yields:
    maps = _maps(structure)
    terms = _slot_terms(structure, prepared, pars)
    product = jnp.prod(terms.rows, axis=0)
    others = _leave_one_out(terms.rows)
    # dν/dθ summed over each bin's slots per effect row first, then mapped to parameters:
    # (rows, bins) arrays are a fraction of the (P, N) ones (Fisher scoring needs no more)
    to_bins = maps.slot_to_bin.T
    row_jacobian = (terms.additive * terms.row_slopes * others) @ to_bins
    histosys_jacobian = (terms.histosys_slope * product) @ to_bins
    jacobian = (
        _by_parameter(row_jacobian, maps.row_of_parameter)
        + _by_parameter(histosys_jacobian, maps.histosys_of_parameter)
    ).T
    nu = maps.slot_to_bin @ (terms.additive * product)
    clipped = _clipped(structure, nu)  # constant there: no slope, no curvature
    nu = jnp.where(clipped, YIELD_FLOOR, nu)
    jacobian = jnp.where(clipped[:, None], 0.0, jacobian)
    return _Yields(nu, jacobian, clipped, terms, product, others)


def _by_parameter(per_row: jax.Array, index: np.ndarray) -> jax.Array:
    """(K, N) per effect row → (P, N) per parameter (zeros where it has none)."""
    return _pad(per_row)[index]


def _main_derivatives(structure: Layout, prepared: Prepared, pars: jax.Array, main):
    """Expected counts ν (B,), their Jacobian J (B, P), and Σ_b (1 - n_b/ν_b) ∇²ν_b (P, P).

    The last term is what turns the Gauss–Newton matrix ``Jᵀ diag(n/ν²) J`` into the
    exact Hessian of -log L. A slot's yield is ``a · Π rows`` (a: nominal plus histosys
    deltas), each row and each delta a function of one parameter, so off the diagonal

        ∂²ν/∂θp∂θq = Π rows · (a ℓp ℓq + vp ℓq + ℓp vq)

    with ℓ = row'/row (log-slopes) and v = delta' (histosys slopes), both mapped from
    effect rows to parameters (P, N). Summed over slots with the bin residuals, that is
    ``X + Xᵀ`` with the one matrix product ``X = (wℓ) · (aℓ/2 + v)ᵀ`` over slots
    (w = residual · Π rows); the diagonal is replaced by each parameter's own second
    derivative. (Matrix products over slots: on a CPU, (P, P) gathers cost more than
    the products.) A row that is exactly zero (a normfactor at 0) would make ℓ infinite,
    so the off-diagonal terms use rows with zeros replaced by a tiny value: ν is
    multilinear in the rows, so this is exact to O(tiny); the Jacobian and the diagonal
    are computed exactly.
    """
    maps = _maps(structure)
    rows, hists = maps.row_of_parameter, maps.histosys_of_parameter
    nu, jacobian, clipped, terms, product, others = _yields(structure, prepared, pars)
    # d row_k / dθ × the other rows, per parameter: d(Π rows)/dθ; histosys slopes (P, N)
    row_slope_times_rest = _by_parameter(terms.row_slopes * others, rows)
    histosys_slope = _by_parameter(terms.histosys_slope, hists)

    bin_residual = jnp.where(clipped, 0.0, 1.0 - jnp.where(main > 0, main / nu, 0.0))
    residual = maps.slot_to_bin.T @ bin_residual  # per slot
    tiny_rows = jnp.where(terms.rows == 0, 1e-30, terms.rows)
    log_slopes = _by_parameter(terms.row_slopes / tiny_rows, rows)
    weight = residual * jnp.prod(tiny_rows, axis=0)
    half = (weight * log_slopes) @ (0.5 * terms.additive * log_slopes + histosys_slope).T
    off_diagonal = half + half.T
    row_curvature = jnp.sum(residual * terms.additive * terms.row_curvatures * others, 1)
    histosys_curvature = jnp.sum(residual * terms.histosys_curvature * product, axis=1)
    own = (
        _pad(row_curvature)[rows]
        + _pad(histosys_curvature)[hists]
        + 2.0 * jnp.sum(residual * histosys_slope * row_slope_times_rest, axis=1)
    )
    diagonal = jnp.eye(structure.n_parameters, dtype=bool)
    return nu, jacobian, jnp.where(diagonal, own, off_diagonal)


def twice_nll_derivatives(structure: Layout, prepared: Prepared, pars: jax.Array, data: jax.Array):
    """-2 log L, its exact gradient, its exact Hessian and the Gauss–Newton matrix.

    The Gauss–Newton matrix ``2 Jᵀ diag(n/ν²) J`` + constraint curvature is positive
    semi-definite everywhere; the minimiser steps with it where the Hessian is not.
    """
    main, aux = _split(structure, data)
    nu, jacobian, second = _main_derivatives(structure, prepared, pars, main)
    constraints = _constraints(structure, prepared, pars, aux)
    value, gradient = _value_and_gradient(main, nu, jacobian, constraints)
    weight = jnp.where(main > 0, main / nu**2, 0.0)
    gauss_newton = 2.0 * ((jacobian.T * weight) @ jacobian + jnp.diag(constraints.curvature))
    return value, gradient, gauss_newton + 2.0 * second, gauss_newton


def _value_and_gradient(main, nu, jacobian, constraints: _Constraints):
    """-2 log L and its gradient from the expected counts and their Jacobian."""
    value = -2.0 * (jnp.sum(xlogy(main, nu) - nu - gammaln(main + 1.0)) + constraints.logpdf)
    ratio = jnp.where(main > 0, main / nu, 0.0)
    return value, -2.0 * (jacobian.T @ (ratio - 1.0) + constraints.gradient)


class Information(NamedTuple):
    """The matrix Fisher scoring steps with, in factored form (no (P, P) matrix):
    ``2 (Jᵀ diag(weight) J + diag(constraint))``, with ``weight = 1/ν``: the Fisher
    information of the main counts plus the constraint terms' curvature."""

    jacobian: Float[jax.Array, "bins parameters"]  # dν/dθ
    weight: Float[jax.Array, " bins"]  # 1/ν
    constraint: Float[jax.Array, " parameters"]  # curvature of the constraint terms (scoring)


def twice_nll_information(structure: Layout, prepared: Prepared, pars: jax.Array, data):
    """-2 log L, its exact gradient and the scoring matrix in factored form.

    For the main counts that is the Fisher information, their expected Hessian: the
    Gauss–Newton matrix with the counts replaced by their expectation, positive
    semi-definite and of rank at most the number of bins; the constraint terms add
    their diagonal curvature. A step with it (Fisher scoring) therefore costs O(P·B²)
    instead of a (P, P) factorisation, and its evaluation about a third of
    :func:`twice_nll_derivatives`: no second derivatives of the yields.
    """
    main, aux = _split(structure, data)
    found = _yields(structure, prepared, pars)
    constraints = _constraints(structure, prepared, pars, aux)
    value, gradient = _value_and_gradient(main, found.nu, found.jacobian, constraints)
    weight = jnp.where(found.clipped, 0.0, 1.0 / found.nu)
    return value, gradient, Information(found.jacobian, weight, constraints.scoring)


def unconstrained_parameters(structure: Layout) -> np.ndarray:
    """Indices of the parameters without a constraint term (normfactors, shapefactors):
    the ones whose Fisher information comes from the main measurement alone."""
    constrained = set(structure.normal_params) | set(structure.poisson_params)
    return np.array([p for p in range(structure.n_parameters) if p not in constrained], int)
