"""Toy-based upper limits on the POI of one model: toy CLs on a grid of μ, interpolated.

As RooStats' ``HypoTestInverter`` (what HistFitter's upper-limit tables run): toy-based
CLs (:func:`~hfpipe.infer.toys.toy_distributions`) at each μ of a grid gives the
observed curve and the five expected ones (the band of the background-only toys,
−2σ … +2σ in CLs); each curve's limit is where it first falls below 1 − CL, by linear
interpolation of CLs between the two grid points around the crossing (linear in CLs,
not its logarithm: toy CLs can be exactly 0). Every μ uses the same seed, so the toys
of neighbouring μ are drawn from the same random numbers and the curves are smooth, and
the result is reproducible: the same model, grid, ``ntoys`` and seed give the same
limits bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hfpipe.infer.fit import DEFAULT_OPTIONS, FitOptions
from hfpipe.infer.toys import DEFAULT_TOY_BATCH_SIZE, ToyFitsFailed, toy_distributions
from hfpipe.model.structure import Numbers, Structure

__all__ = ["ToyUpperLimit", "crossing", "toy_upper_limit"]


@dataclass(frozen=True)
class ToyUpperLimit:
    """Toy CLs on the grid ``mu`` (observed, then expected −2σ … +2σ) and the limits."""

    mu: np.ndarray  # (k,)
    cls: np.ndarray  # (k, 6)
    values: np.ndarray  # (6,) observed limit, expected −2σ … +2σ
    converged: bool
    message: str


def crossing(mu: np.ndarray, cls: np.ndarray, alpha: float) -> float:
    """The first μ where ``cls`` (along ``mu``, increasing) falls below ``alpha``,
    linearly interpolated; NaN where it does not cross inside the grid."""
    below = np.flatnonzero(cls < alpha)
    if not len(below) or below[0] == 0:
        return np.nan
    k = below[0]
    a, b = cls[k - 1], cls[k]
    return float(mu[k - 1] + (mu[k] - mu[k - 1]) * (a - alpha) / (a - b))


def toy_upper_limit(
    structure: Structure,
    numbers: Numbers,
    mu,
    *,
    cl: float = 0.95,
    test_stat: str = "qtilde",
    ntoys: int = 1000,
    seed: int = 0,
    batch_size: int | None = DEFAULT_TOY_BATCH_SIZE,
    max_failed_fraction: float = 0.01,
    options: FitOptions = DEFAULT_OPTIONS,
) -> ToyUpperLimit:
    """Toy-based upper limits of one model (``numbers`` without batch axis) from toy
    CLs at the POI values ``mu`` (increasing, inside the POI's bounds); see the module
    docstring. A limit whose curve does not cross 1 − ``cl`` inside the grid is NaN,
    and the result not converged, with a message; so is a μ whose toy fits failed."""
    mu = np.asarray(mu, dtype=float)
    rows, messages = [], []
    for value in mu:
        try:
            toys = toy_distributions(
                structure,
                numbers,
                float(value),
                ntoys=ntoys,
                seed=seed,
                test_stat=test_stat,
                batch_size=batch_size,
                options=options,
            )
            found = toys.cls(max_failed_fraction=max_failed_fraction)
            rows.append([found.cls_obs, *found.cls_exp])
        except ToyFitsFailed as error:
            rows.append([np.nan] * 6)
            messages.append(f"μ = {value:g}: {error}")
    cls = np.asarray(rows)
    alpha = 1.0 - cl
    values = np.array([crossing(mu, cls[:, j], alpha) for j in range(6)])
    if np.isnan(values).any():
        messages.append(
            f"toy CLs does not cross {alpha:g} inside μ = [{mu[0]:g}, {mu[-1]:g}] for every curve"
        )
    return ToyUpperLimit(mu, cls, values, not messages, "; ".join(messages))
