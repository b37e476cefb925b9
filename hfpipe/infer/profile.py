"""Profile-likelihood scans in one or two parameters: the grid, then its intervals (1-D)
or contours (2-D), in one call.

The steps are their own modules: :mod:`hfpipe.infer.profile_scan` (Δ(−2 ln L) on a grid,
every grid point a row of one batched fit, warm-started along the grid),
:mod:`hfpipe.infer.profile_intervals` and :mod:`hfpipe.infer.profile_contours` (the
crossings of the χ² levels, refined by root-finding with fits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from hfpipe.infer.fit import DEFAULT_OPTIONS, FitOptions
from hfpipe.infer.profile_contours import Contour, contours
from hfpipe.infer.profile_intervals import intervals
from hfpipe.infer.profile_scan import DEFAULT_CLS, ProfileScan, profile_scan
from hfpipe.model.model import Model

__all__ = ["ProfileResult", "profile"]


@dataclass(frozen=True)
class ProfileResult:
    """A profile scan with its intervals (1-D) or contours (2-D)."""

    scan: ProfileScan
    intervals: pd.DataFrame | None
    contours: list[Contour] | None

    def table(self) -> pd.DataFrame:
        return self.scan.table()


def profile(
    model: Model,
    grid: Mapping[str, Sequence[float]],
    *,
    cls: Sequence[float] = DEFAULT_CLS,
    extend_bounds: bool = False,
    refine: bool = True,
    tolerance: float = 1e-4,
    options: FitOptions = DEFAULT_OPTIONS,
) -> ProfileResult:
    """:func:`profile_scan`, then :func:`intervals` (one parameter) or :func:`contours`
    (two) at the confidence levels ``cls``."""
    scan = profile_scan(model, grid, extend_bounds=extend_bounds, options=options)
    if len(scan.parameters) == 1:
        return ProfileResult(scan, intervals(scan, cls, refine=refine, tolerance=tolerance), None)
    return ProfileResult(scan, None, contours(scan, cls, refine=refine, tolerance=tolerance))
