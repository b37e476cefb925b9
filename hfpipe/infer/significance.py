"""Discovery significance: p0 and Z of the background-only hypothesis, observed and expected.

The test statistic is q0 (a fit with the POI held at 0 against the free fit, 0 where
μ̂ < 0), as pyhf's ``hypotest(0.0, ..., test_stat="q0")``: its observed p-value is p0,
and its expected band is the p0 the signal hypothesis (the Asimov data set of μ = 1)
would give at its median and ±1σ, ±2σ (pyhf's order: −2σ first, which has the
smallest p0, i.e. the largest Z). The significance is Z = Φ⁻¹(1 − p0), so p0 = 0.5
(no excess: q0 = 0) is Z = 0. Asymptotic or toy-based behind one call
(:func:`~hfpipe.infer.calctypes.hypotest_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from hfpipe.infer.asymptotic import HypotestResult
from hfpipe.infer.calctypes import ToySettings, hypotest_rows
from hfpipe.infer.fit import DEFAULT_OPTIONS, FitOptions
from hfpipe.model.structure import Numbers, Structure

__all__ = ["Significance", "discovery_significance", "z_value"]


def z_value(p):
    """Z = Φ⁻¹(1 − p), computed as −Φ⁻¹(p) (exact for small p; infinite at p = 0)."""
    with np.errstate(divide="ignore"):
        return 0.0 - ndtri(np.asarray(p, dtype=float))  # 0.0 - 0.0: Z = +0 at p = 0.5


@dataclass(frozen=True)
class Significance:
    """Per row: observed p0 and Z, the expected band of each (−2σ … +2σ, pyhf's order),
    and the q0 test they come from."""

    p0_obs: np.ndarray  # (n,)
    p0_exp: np.ndarray  # (n, 5)
    z_obs: np.ndarray  # (n,)
    z_exp: np.ndarray  # (n, 5)
    result: HypotestResult

    @classmethod
    def of(cls, result: HypotestResult) -> Significance:
        """From a q0 hypothesis test (whose reported p-values are p0)."""
        p0_obs, p0_exp = np.asarray(result.cls_obs), np.asarray(result.cls_exp)
        return cls(p0_obs, p0_exp, z_value(p0_obs), z_value(p0_exp), result)


def discovery_significance(
    calctype: str,
    structure: Structure,
    numbers: Numbers,
    *,
    rows: int,
    toys: ToySettings | None = None,
    options: FitOptions = DEFAULT_OPTIONS,
) -> Significance:
    """p0 and Z of every model of a batch (``numbers`` with a leading axis; the first
    ``rows`` are computed by toys, all by asymptotics), from a q0 test; ``toys``: the
    toy settings (default :class:`~hfpipe.infer.calctypes.ToySettings`)."""
    result = hypotest_rows(
        calctype,
        structure,
        numbers,
        1.0,
        rows=rows,
        test_stat="q0",
        toys=toys or ToySettings(),
        options=options,
    )
    return Significance.of(result)
