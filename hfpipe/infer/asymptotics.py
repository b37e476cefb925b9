"""Asymptotic p-values and CLs (Cowan, Cranmer, Gross, Vitells, arXiv:1007.1727).

Conventions are pyhf's ``AsymptoticCalculator``: the test statistic is moved to the
``-μ̂/σ`` space, where it is a unit normal shifted by ``-sqrt(q_A)`` under
signal+background and unshifted under background only, with ``q_A`` the test
statistic on the Asimov data set of the background-only hypothesis.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

__all__ = ["EXPECTED_SIGMAS", "cls_asymptotic", "tmu_pvalue", "tmu_tilde_pvalue"]

#: Order of the expected band: -2σ, -1σ, median, +1σ, +2σ in CLs (pyhf's order).
EXPECTED_SIGMAS = np.array([2.0, 1.0, 0.0, -1.0, -2.0])


def _shifted_statistic(q, q_asimov, test_stat: str):
    sqrt_q, sqrt_qa = np.sqrt(q), np.sqrt(q_asimov)
    if test_stat == "qtilde":
        with np.errstate(divide="ignore", invalid="ignore"):
            beyond = (q - q_asimov) / (2.0 * sqrt_qa)
        return np.where(sqrt_q <= sqrt_qa, sqrt_q - sqrt_qa, beyond)
    return sqrt_q - sqrt_qa


def cls_asymptotic(q, q_asimov, test_stat: str = "qtilde"):
    """Observed and expected (CLs, CLs+b, CLb) from observed and Asimov test statistics.

    Returns ``(cls_obs, clsb_obs, clb_obs, cls_exp, clsb_exp)`` with the expected arrays
    along a trailing axis of 5 in the order of :data:`EXPECTED_SIGMAS`. For ``q0`` the
    p-value of the background-only hypothesis is ``clsb``.
    """
    q, q_asimov = np.asarray(q, dtype=float), np.asarray(q_asimov, dtype=float)
    t = _shifted_statistic(q, q_asimov, test_stat)
    sqrt_qa = np.sqrt(q_asimov)
    clsb, clb = ndtr(-(t + sqrt_qa)), ndtr(-t)
    n = EXPECTED_SIGMAS
    clsb_exp = ndtr(-(n + sqrt_qa[..., None]))
    cls_exp = clsb_exp / ndtr(-n)
    return clsb / clb, clsb, clb, cls_exp, clsb_exp


def tmu_pvalue(t):
    """p-value of the two-sided t_μ (eq. 36): 2 (1 - Φ(sqrt t))."""
    return 2.0 * ndtr(-np.sqrt(np.asarray(t, dtype=float)))


def tmu_tilde_pvalue(t, t_asimov):
    """p-value of t~_μ (eq. 43), with μ²/σ² taken from the Asimov value ``t_asimov``."""
    t, ratio = np.asarray(t, dtype=float), np.asarray(t_asimov, dtype=float)
    sqrt_t, sqrt_r = np.sqrt(t), np.sqrt(ratio)
    with np.errstate(divide="ignore", invalid="ignore"):
        far = 1.0 - ndtr(sqrt_t) - ndtr((t + ratio) / (2.0 * sqrt_r)) + 1.0
    near = 2.0 * ndtr(-sqrt_t)
    return np.where(t <= ratio, near, far)
