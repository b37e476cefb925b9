"""Models and cabinetry helpers shared by tests/test_ranking.py and tests/test_yields.py."""

from __future__ import annotations

import contextlib
import io

import numpy as np

EXAMPLE = "examples/example"
POINT = "sig_600_200"
#: MIGRAD settings that make cabinetry's fits converge tightly enough to compare with
#: (its default tolerance 0.1 stops at EDM < 2e-4, μ̂ within ~0.02 σ): on the example
TIGHT = {"strategy": 2, "tolerance": 1e-6}
#: on the ATLAS models, where a strategy-2 fit costs minutes (1Lbb) or fails (3L-eRJR);
#: EDM < 2e-6, at the cost of the default's (~16 s a 1Lbb fit)
ATLAS_MIGRAD = {"tolerance": 1e-3}

#: one parameter of each kind: normfactor, shapefactor, shapesys (one γ fixed: no
#: uncertainty), staterror, lumi, normsys, histosys
KINDS_SPEC = {
    "channels": [
        {
            "name": "CR",
            "samples": [
                {
                    "name": "bkg",
                    "data": [50.0],
                    "modifiers": [
                        {"name": "sf_CR", "type": "shapefactor", "data": None},
                        {"name": "stat_CR", "type": "staterror", "data": [3.0]},
                    ],
                }
            ],
        },
        {
            "name": "SR",
            "samples": [
                {
                    "name": "sig",
                    "data": [2.0, 4.0],
                    "modifiers": [
                        {"name": "mu", "type": "normfactor", "data": None},
                        {"name": "lumi", "type": "lumi", "data": None},
                    ],
                },
                {
                    "name": "bkg",
                    "data": [20.0, 10.0],
                    "modifiers": [
                        {"name": "mcstat", "type": "shapesys", "data": [2.0, 0.0]},
                        {"name": "lumi", "type": "lumi", "data": None},
                        {"name": "norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.92}},
                        {
                            "name": "shape",
                            "type": "histosys",
                            "data": {"hi_data": [21.0, 11.0], "lo_data": [19.5, 9.0]},
                        },
                    ],
                },
            ],
        },
    ],
    "observations": [{"name": "CR", "data": [52.0]}, {"name": "SR", "data": [24.0, 12.0]}],
    "measurements": [
        {
            "name": "m",
            "config": {
                "poi": "mu",
                "parameters": [
                    {
                        "name": "lumi",
                        "auxdata": [1.0],
                        "sigmas": [0.02],
                        "bounds": [[0.9, 1.1]],
                        "inits": [1.0],
                    }
                ],
            },
        }
    ],
    "version": "1.0.0",
}


def quiet(call, *args, **kwargs):
    """A cabinetry call without its printed fit summaries."""
    with contextlib.redirect_stdout(io.StringIO()):
        return call(*args, **kwargs)


def fit_results(fit):
    """hfpipe's best fit as cabinetry's FitResults."""
    import cabinetry

    return cabinetry.fit.FitResults(
        fit.pars, fit.uncertainties, list(fit.parameter_names), fit.correlation(), fit.twice_nll
    )


#: the ATLAS points compared with cabinetry (slow tests): folder → (workspace, patchset, point)
ANALYSES = {
    "atlas-3l-erjr": ("BkgOnly.json", "patchset.json", "ERJR_200p0_100p0"),
    "atlas-1lbb": ("BkgOnly.json.gz", "patchset.json.gz", "C1N2_Wh_hbb_300_150"),
}


def cabinetry_fit(model, data, **kwargs):
    """cabinetry.fit.fit's best-fit parameters and whether MIGRAD reported success (on
    failure, pyhf's FailedMinimization carries the point MIGRAD ended at)."""
    import cabinetry
    import pyhf

    try:
        return quiet(cabinetry.fit.fit, model, data, **kwargs).bestfit, True
    except pyhf.exceptions.FailedMinimization as error:
        return np.asarray(error.result.x), False
