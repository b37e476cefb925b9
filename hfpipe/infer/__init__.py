"""Fits, hypothesis tests (asymptotic and toy-based), upper limits: batched over models of
one structure; and the post-fit products of one model (ranking and pulls, grouped
impacts, pre/post-fit yields), which return pandas DataFrames.

The names below are imported on first use, so that the light modules
(:mod:`~hfpipe.infer.teststats`, :mod:`~hfpipe.infer.calculators`) load without JAX;
the engine's modules import it, with hfpipe's settings (``hfpipe._jax``).
"""

import importlib

#: public name -> its module (the ranking itself is :func:`hfpipe.infer.ranking.ranking`:
#: a package attribute ``ranking`` is the module once imported)
_EXPORTS = {
    "EXPECTED_SIGMAS": "hfpipe.infer.calculators",
    "cls_asymptotic": "hfpipe.infer.calculators",
    "TEST_STATISTICS": "hfpipe.infer.teststats",
    "test_statistic": "hfpipe.infer.teststats",
    "FitOptions": "hfpipe.infer.fit",
    "FitResult": "hfpipe.infer.fit",
    "fit_batch": "hfpipe.infer.fit",
    "hesse_uncertainties": "hfpipe.infer.fit",
    "HypotestResult": "hfpipe.infer.asymptotic",
    "hypotest": "hfpipe.infer.asymptotic",
    "hypotest_batch": "hfpipe.infer.asymptotic",
    "BestFit": "hfpipe.infer.bestfit",
    "best_fit": "hfpipe.infer.bestfit",
    "pulls": "hfpipe.infer.ranking",
    "grouped_impacts": "hfpipe.infer.groups",
    "groups_by_type": "hfpipe.infer.groups",
    "load_groups": "hfpipe.infer.groups",
    "match_groups": "hfpipe.infer.groups",
    "prefit_yields": "hfpipe.infer.yields",
    "postfit_yields": "hfpipe.infer.yields",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
