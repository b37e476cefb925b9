"""From test statistics to p-values: pyhf's two calculators, in one shape.

Both answer the same four questions, as pyhf's ``AsymptoticCalculator`` and
``ToyCalculator`` do:

* ``distributions(...)``: the test statistic's distribution under signal+background and
  under background only;
* ``teststatistic(q)``: the observed value in the distributions' space;
* ``pvalues(value, signal, background)``: CLs+b, CLb and CLs = CLs+b / CLb;
* ``expected_pvalues(signal, background)``: the same at the background-only median and
  its ±1σ, ±2σ quantiles, the expected band (−2σ … +2σ in CLs, pyhf's order);

and ``hypotest(...)`` answers all of them from the test statistics of the fits.

:class:`AsymptoticCalculator` (Cowan, Cranmer, Gross, Vitells, arXiv:1007.1727) works
in the ``-μ̂/σ`` space, where the statistic is a unit normal shifted by ``-sqrt(q_A)``
under signal+background and unshifted under background only (``q_A``: the statistic of
the Asimov data set of the background-only hypothesis), for a batch of models at once.
:class:`ToyCalculator` takes the distributions from toys (:class:`EmpiricalDistribution`).
For q0 the reported value is CLs+b, the discovery p-value (pyhf's convention).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr, ndtr

__all__ = [
    "EXPECTED_SIGMAS",
    "AsymptoticCalculator",
    "AsymptoticDistribution",
    "EmpiricalDistribution",
    "PValues",
    "ToyCalculator",
    "cls_asymptotic",
]

#: Order of the expected band: -2σ, -1σ, median, +1σ, +2σ in CLs (pyhf's order).
EXPECTED_SIGMAS = np.array([2.0, 1.0, 0.0, -1.0, -2.0])
#: Percentiles of the toys' expected band, pyhf's numbers: Φ(-2), Φ(-1), 0.5, Φ(1), Φ(2).
_BAND_PERCENTILES = 100.0 * ndtr(-EXPECTED_SIGMAS)


@dataclass(frozen=True)
class PValues:
    """CLs+b, CLb and CLs (arrays of one shape); ``reported`` is CLs, or CLs+b for q0."""

    clsb: np.ndarray
    clb: np.ndarray
    cls: np.ndarray
    reported: np.ndarray


def _p_values(clsb, clb, cls, test_stat: str) -> PValues:
    return PValues(clsb, clb, cls, clsb if test_stat == "q0" else cls)


@dataclass(frozen=True)
class AsymptoticDistribution:
    """A unit normal shifted by ``shift`` (one value per model), in the ``-μ̂/σ`` space."""

    shift: np.ndarray

    def pvalue(self, value):
        """P(statistic ≥ value)."""
        return ndtr(-(value - self.shift))

    def log_pvalue(self, value):
        return log_ndtr(-(value - self.shift))

    def expected_value(self, nsigma):
        """The statistic at ``nsigma`` standard deviations (a trailing axis if several)."""
        return np.asarray(nsigma) + self.shift[..., None]


@dataclass(frozen=True)
class AsymptoticCalculator:
    """Asymptotic p-values of a batch of models; see the module docstring.

    Every corner is defined, so no NaN comes out of finite test statistics:

    * ``q_A = 0`` (the tested μ equals the Asimov μ, or the model has no sensitivity):
      the q~ branch beyond ``q > q_A`` would be 0/0; like pyhf (since its fix of issue
      2722) the plain ``sqrt(q) - sqrt(q_A)`` branch is taken, and CLs is 1;
    * CLs = CLs+b / CLb is computed from the logarithms of both tails, so it stays
      defined where both underflow (``q`` of several hundred): the ratio of two tiny
      numbers, not 0/0.
    """

    test_stat: str

    def distributions(self, q_asimov):
        """(signal+background, background-only) distributions, from the Asimov q."""
        sqrt_qa = np.sqrt(np.asarray(q_asimov, dtype=float))
        return AsymptoticDistribution(-sqrt_qa), AsymptoticDistribution(np.zeros_like(sqrt_qa))

    def teststatistic(self, q, q_asimov):
        """The observed ``q`` in the ``-μ̂/σ`` space."""
        q, q_asimov = np.asarray(q, dtype=float), np.asarray(q_asimov, dtype=float)
        sqrt_q, sqrt_qa = np.sqrt(q), np.sqrt(q_asimov)
        if self.test_stat != "qtilde":
            return sqrt_q - sqrt_qa
        with np.errstate(divide="ignore", invalid="ignore"):
            beyond = (q - q_asimov) / (2.0 * sqrt_qa)
        near = (sqrt_q <= sqrt_qa) | (sqrt_qa == 0)
        return np.where(near, sqrt_q - sqrt_qa, beyond)

    def pvalues(self, value, signal, background) -> PValues:
        cls = np.exp(signal.log_pvalue(value) - background.log_pvalue(value))
        return _p_values(signal.pvalue(value), background.pvalue(value), cls, self.test_stat)

    def expected_pvalues(self, signal, background) -> PValues:
        """The band, along a trailing axis of 5 in the order of :data:`EXPECTED_SIGMAS`."""
        expected = background.expected_value(EXPECTED_SIGMAS)
        shift = signal.shift[..., None]
        signal_band = AsymptoticDistribution(shift)
        background_band = AsymptoticDistribution(np.zeros_like(shift))
        return self.pvalues(expected, signal_band, background_band)

    def hypotest(self, q, q_asimov) -> tuple[PValues, PValues]:
        """Observed and expected p-values from observed and Asimov test statistics."""
        signal, background = self.distributions(q_asimov)
        observed = self.pvalues(self.teststatistic(q, q_asimov), signal, background)
        return observed, self.expected_pvalues(signal, background)


@dataclass(frozen=True)
class EmpiricalDistribution:
    """The test statistics of toys (those whose fits converged)."""

    samples: np.ndarray

    @functools.cached_property
    def ordered(self) -> np.ndarray:
        """The samples in ascending order (sorted once; given sorted, as they are)."""
        samples = np.asarray(self.samples)
        return samples if bool(np.all(samples[1:] >= samples[:-1])) else np.sort(samples)

    def pvalue(self, value):
        """Fraction of the toys whose statistic is >= ``value`` (pyhf's rule)."""
        below = np.searchsorted(self.ordered, value, side="left")
        return (len(self.ordered) - below) / len(self.ordered)


@dataclass(frozen=True)
class ToyCalculator:
    """Toy-based p-values of one model; see the module docstring. CLs is NaN where no
    background toy reaches the observed statistic (0/0, as pyhf's numpy division)."""

    test_stat: str

    def distributions(self, signal_samples, background_samples):
        return EmpiricalDistribution(signal_samples), EmpiricalDistribution(background_samples)

    def teststatistic(self, q):
        """Toys compare the test statistic itself."""
        return q

    def pvalues(self, value, signal, background) -> PValues:
        clsb, clb = signal.pvalue(value), background.pvalue(value)
        with np.errstate(divide="ignore", invalid="ignore"):
            cls = clsb / clb
        return _p_values(clsb, clb, cls, self.test_stat)

    def expected_pvalues(self, signal, background) -> np.ndarray:
        """The expected band of the reported value (CLs, CLs+b for q0): every
        background toy's statistic taken as if observed gives one value per toy; the
        band is their percentiles at Φ(-2) … Φ(2), lowest first (taken in ascending
        order, which the percentiles do not depend on and the look-ups are faster in)."""
        each = self.pvalues(background.ordered, signal, background).reported
        return np.percentile(each, _BAND_PERCENTILES, method="linear")

    def hypotest(self, q_obs: float, signal_samples, background_samples):
        """Observed p-values and the expected band from the toys' test statistics."""
        signal, background = self.distributions(signal_samples, background_samples)
        observed = self.pvalues(self.teststatistic(q_obs), signal, background)
        return observed, self.expected_pvalues(signal, background)


def cls_asymptotic(q, q_asimov, test_stat: str = "qtilde"):
    """Observed and expected (CLs, CLs+b, CLb) from observed and Asimov test statistics:
    ``(cls_obs, clsb_obs, clb_obs, cls_exp, clsb_exp)``, the expected arrays along a
    trailing axis of 5 in the order of :data:`EXPECTED_SIGMAS`."""
    observed, expected = AsymptoticCalculator(test_stat).hypotest(q, q_asimov)
    return observed.cls, observed.clsb, observed.clb, expected.cls, expected.clsb
