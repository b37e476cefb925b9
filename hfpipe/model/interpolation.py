"""Interpolation of systematic variations between -1σ, nominal and +1σ templates.

Each function maps nuisance parameters ``alpha`` (shape ``(K, 1)``) and per-slot
variation data (shape ``(K, N)``) to per-slot effects (shape ``(K, N)``): a
multiplicative factor for ``normsys``, an additive delta for ``histosys``. The formulas
are pyhf's (and ROOT HistFactory's) interpolation codes:

* normsys ``code1``: piecewise exponential, ``(hi)^α`` above 0, ``(lo)^-α`` below.
* normsys ``code4``: 6th-order polynomial inside ``|α| < 1`` matched in value, first and
  second derivative to the exponential extrapolation outside.
* histosys ``code0``: piecewise linear.
* histosys ``code2``: quadratic inside ``|α| ≤ 1``, linear extrapolation outside,
  continuous in value and slope (ROOT's code 2; pyhf 0.7.6 drops the constant
  ``hi - nom`` / ``lo - nom`` term outside ``|α| ≤ 1``, which makes its version jump at
  ``|α| = 1``; we follow ROOT there and agree with pyhf inside).
* histosys ``code4p``: 6th-order polynomial inside ``|α| ≤ 1``, linear outside.

Variation data are stored relative to the nominal: normsys as the factors ``hi`` and
``lo`` (1 means no effect), histosys as ``up = hi - nom`` and ``down = nom - lo``
(0 means no effect), so a padded entry is exactly neutral for every code.

All branches are computed from clipped inputs so gradients stay finite everywhere
(``jnp.where`` propagates NaN from the branch it does not take).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.spec.modifiers import HISTOSYS_CODES, NORMSYS_CODES

__all__ = [
    "HISTOSYS_CODES",
    "NORMSYS_CODES",
    "NormsysTerms",
    "histosys_delta",
    "normsys_factor",
    "normsys_terms",
]


# Inverse of the 6x6 boundary-condition matrix of code4 for alpha0 = 1: the
# polynomial coefficients a_1..a_6 are this matrix times
# [hi - 1, lo - 1, hi ln hi, -lo ln lo, hi ln² hi, lo ln² lo].
_CODE4_INVERSE = np.array(
    [
        [15 / 16, -15 / 16, -7 / 16, -7 / 16, 1 / 16, -1 / 16],
        [3 / 2, 3 / 2, -9 / 16, 9 / 16, 1 / 16, 1 / 16],
        [-5 / 8, 5 / 8, 5 / 8, 5 / 8, -1 / 8, 1 / 8],
        [-3 / 2, -3 / 2, 7 / 8, -7 / 8, -1 / 8, -1 / 8],
        [3 / 16, -3 / 16, -3 / 16, -3 / 16, 1 / 16, -1 / 16],
        [1 / 2, 1 / 2, -5 / 16, 5 / 16, 1 / 16, 1 / 16],
    ]
)


class NormsysTerms(NamedTuple):
    """Per-slot constants of a normsys interpolation, computed once per model."""

    log_hi: Float[jax.Array, "normsys slots"]
    log_lo: Float[jax.Array, "normsys slots"]
    #: the coefficients a_1..a_6 of code4 (zeros for code1)
    polynomial: Float[jax.Array, "6 normsys slots"]


def normsys_terms(code: str, hi, lo) -> NormsysTerms:
    """Precompute logs and code4 polynomial coefficients from the ±1σ factors."""
    log_hi, log_lo = jnp.log(hi), jnp.log(lo)
    if code == "code1":
        return NormsysTerms(log_hi, log_lo, jnp.zeros((6, *jnp.shape(hi))))
    rhs = jnp.stack([hi - 1.0, lo - 1.0, log_hi * hi, -log_lo * lo, log_hi**2 * hi, log_lo**2 * lo])
    return NormsysTerms(log_hi, log_lo, jnp.einsum("rc,c...->r...", _CODE4_INVERSE, rhs))


def _normsys_code1(alpha, terms: NormsysTerms):
    return jnp.exp(jnp.abs(alpha) * jnp.where(alpha > 0, terms.log_hi, terms.log_lo))


def _normsys_code4(alpha, terms: NormsysTerms):
    inside = jnp.clip(alpha, -1.0, 1.0)
    polynomial = jnp.zeros_like(terms.log_hi)
    for coefficient in terms.polynomial[::-1]:  # Horner: a1 x + a2 x² + ... + a6 x⁶
        polynomial = (polynomial + coefficient) * inside
    exponent = jnp.maximum(jnp.abs(alpha), 1.0)
    outside = jnp.exp(exponent * jnp.where(alpha >= 1.0, terms.log_hi, terms.log_lo))
    return jnp.where((alpha >= 1.0) | (alpha <= -1.0), outside, 1.0 + polynomial)


def _histosys_code0(alpha, up, down):
    return jnp.where(alpha > 0, alpha * up, alpha * down)


def _histosys_code2(alpha, up, down):
    a = 0.5 * (up - down)  # 0.5 (hi + lo) - nom
    b = 0.5 * (up + down)  # 0.5 (hi - lo)
    above = (b + 2 * a) * (alpha - 1.0) + up
    below = (b - 2 * a) * (alpha + 1.0) - down
    inside = a * alpha**2 + b * alpha
    return jnp.where(alpha > 1.0, above, jnp.where(alpha < -1.0, below, inside))


def _histosys_code4p(alpha, up, down):
    s = 0.5 * (up + down)
    a = 0.0625 * (up - down)
    squared = alpha**2
    inside = alpha * s + squared * (squared * (squared * 3.0 - 10.0) + 15.0) * a
    return jnp.where(alpha > 1.0, alpha * up, jnp.where(alpha < -1.0, alpha * down, inside))


_NORMSYS: dict[str, Callable] = {"code1": _normsys_code1, "code4": _normsys_code4}
_HISTOSYS: dict[str, Callable] = {
    "code0": _histosys_code0,
    "code2": _histosys_code2,
    "code4p": _histosys_code4p,
}


def normsys_factor(code: str, alpha, terms: NormsysTerms):
    """Multiplicative factor of a normsys modifier, from :func:`normsys_terms`."""
    return _NORMSYS[code](alpha, terms)


def histosys_delta(code: str, alpha, up, down):
    """Additive shift of a histosys modifier; ``up = hi - nom``, ``down = nom - lo``."""
    return _HISTOSYS[code](alpha, up, down)
