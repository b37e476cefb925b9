"""The test statistics hfpipe computes, named once: pyhf's ``q0``, ``q`` and ``qtilde``.

pyhf's calculators (asymptotic and toy-based) support exactly these three; its ``tmu``
and ``tmu_tilde`` functions exist but no calculator takes them, so neither does hfpipe.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LIMIT_TEST_STATISTICS",
    "TEST_STATISTICS",
    "asimov_value",
    "check_test_statistic",
    "test_statistic",
    "tested_value",
]

#: Test statistics of hypothesis tests: q~_μ (the default), q_μ and q0 (discovery).
TEST_STATISTICS = ("qtilde", "q", "q0")
#: Test statistics whose CLs falls with μ above μ̂ (what an upper limit needs).
LIMIT_TEST_STATISTICS = ("qtilde", "q")


def check_test_statistic(name: str, allowed=TEST_STATISTICS) -> None:
    """Raise ``ValueError`` unless ``name`` is one of ``allowed``."""
    if name not in allowed:
        raise ValueError(f"test statistic must be one of {', '.join(allowed)}, not {name!r}")


def tested_value(test_stat: str, mu):
    """The POI value the test statistic holds: ``mu``, or 0 for q0 (the background-only
    hypothesis, tested against any signal)."""
    return np.zeros_like(np.asarray(mu, dtype=float)) if test_stat == "q0" else mu


def asimov_value(test_stat: str) -> float:
    """The POI value of the Asimov data set: 0 (background only), or 1 for q0."""
    return 1.0 if test_stat == "q0" else 0.0


def test_statistic(name: str, mu, mu_hat, twice_nll_fixed, twice_nll_free) -> np.ndarray:
    """q~_μ, q_μ or q0 from a fixed-POI and a free fit.

    The tilde variant differs from the plain one through the POI's lower bound (0 for
    tilde), which the fits take from the model; like pyhf, the value is the clipped
    log-likelihood ratio, set to 0 for μ̂ > μ (q, q~) or μ̂ < 0 (q0).
    """
    check_test_statistic(name)
    ratio = np.clip(np.asarray(twice_nll_fixed) - np.asarray(twice_nll_free), 0.0, None)
    if name == "q0":
        return np.where(np.asarray(mu_hat) < 0.0, 0.0, ratio)
    return np.where(np.asarray(mu_hat) > mu, 0.0, ratio)
