"""Fits, test statistics, asymptotic CLs: batched over models of one structure."""

from hfpipe.infer.asymptotics import EXPECTED_SIGMAS, cls_asymptotic
from hfpipe.infer.fit import FitOptions, FitResult, fit_batch, hesse_uncertainties
from hfpipe.infer.hypotest import (
    TEST_STATISTICS,
    HypotestResult,
    hypotest,
    hypotest_batch,
    test_statistic,
)

__all__ = [
    "EXPECTED_SIGMAS",
    "TEST_STATISTICS",
    "FitOptions",
    "FitResult",
    "HypotestResult",
    "cls_asymptotic",
    "fit_batch",
    "hesse_uncertainties",
    "hypotest",
    "hypotest_batch",
    "test_statistic",
]
