"""CLs parity with pyhf 0.7.6 on the ATLAS likelihoods (reference_pyhf.csv), and the
engine's detection of, and recovery from, a stalled fit."""

from __future__ import annotations

import numpy as np
import pytest
from pyhf_yardstick import (
    assert_each_fit_at_least_as_good_as_pyhf,
    reference_constant_rounding,
)

from hfpipe import spec
from hfpipe.infer import FitOptions, fit_batch, hypotest_batch
from hfpipe.infer.fit import fit_datasets
from hfpipe.model import compile_model

EXPECTED = ["cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]


@pytest.mark.slow
@pytest.mark.parametrize("analysis", ["atlas-3l-erjr", "atlas-1lbb"])
def test_cls_matches_reference(load_analysis, analysis):
    workspace, patchset, rows = load_analysis(analysis)
    checked = []
    for row in rows:
        patched = spec.apply_patches(workspace, [patchset[row["point"]]])
        model = compile_model(patched)
        result = hypotest_batch(model.structure, model.numbers, 1.0)
        assert result.converged[0], (row["point"], result.message[0])
        ours = np.array([result.cls_obs[0], *result.cls_exp[0]])
        reference = np.array([float(row[c]) for c in ["cls_obs", *EXPECTED]])
        # the reference's -2 log L, corrected for its float64 rounding of constant terms
        reference_nll = float(row["twice_nll"]) - reference_constant_rounding(
            model, row["pyhf_config"]
        )
        assert result.twice_nll[0] <= reference_nll + 1e-3, row["point"]
        if np.max(np.abs(ours - reference)) > 1e-3:
            # pyhf's fits stop early and its float64 Poisson terms round by ~1e-3: where
            # we differ, each of our fits must be at least as good as pyhf's own
            assert_each_fit_at_least_as_good_as_pyhf(patched, model, result, row["point"])
            checked.append(row["point"])
    print(f"{analysis}: checked fit by fit against pyhf: {checked}")


@pytest.mark.slow
def test_stalled_first_order_fit_is_detected_and_recovered(load_analysis):
    """ERJR_100p0_20p0: a first-order fit stalls at the start (DESIGN.md §1); the
    engine's own EDM check flags it and the retry chain recovers mu_hat ≈ 0.49."""
    workspace, patchset, _ = load_analysis("atlas-3l-erjr")
    model = compile_model(spec.apply_patches(workspace, [patchset["ERJR_100p0_20p0"]]))
    data = np.asarray(model.observed_data())[None]
    stalled = fit_batch(
        model.structure, model.numbers, data, options=FitOptions(first_method="lbfgsb", retry=False)
    )
    assert not stalled.converged[0]
    assert "not converged" in stalled.message[0]
    assert stalled.edm[0] > 1e-3
    recovered = fit_batch(
        model.structure, model.numbers, data, options=FitOptions(first_method="lbfgsb")
    )
    assert recovered.converged[0]
    assert recovered.method[0] == "lbfgsb>minuit>newton"
    assert recovered.pars[0][model.poi_index] == pytest.approx(0.4906, abs=2e-3)
    assert recovered.twice_nll[0] < stalled.twice_nll[0] - 1.0
    newton = fit_batch(model.structure, model.numbers, data)
    assert newton.converged[0] and newton.method[0] == "newton"
    assert recovered.twice_nll[0] == pytest.approx(newton.twice_nll[0], abs=1e-6)


@pytest.mark.slow
def test_minuit_retry_stops_at_its_time_limit(load_analysis):
    """A MIGRAD retry out of time returns the best point it evaluated (here: none yet,
    so its start) instead of holding the scan; with time it improves on the start."""
    from hfpipe.infer.retries import _minuit

    workspace, patchset, _ = load_analysis("atlas-3l-erjr")
    model = compile_model(spec.apply_patches(workspace, [patchset["ERJR_100p0_20p0"]]))
    data = np.asarray(model.observed_data())
    start = np.asarray(model.numbers.init, dtype=float)
    fixed = np.asarray(model.numbers.fixed)
    stopped = _minuit(model.structure, model.numbers, data, start, fixed, seconds=0.0)
    np.testing.assert_array_equal(stopped, start)
    finished = _minuit(model.structure, model.numbers, data, start, fixed, seconds=60.0)
    assert finished[model.poi_index] == pytest.approx(0.4906, abs=2e-2)


def _stalling_model():
    """Two bins and the trap of 3L-eRJR (DESIGN.md §1) in small: one shapesys entry of
    relative uncertainty 2.3e-6 (tau ≈ 1.9e11) on the background."""
    background = {
        "name": "bkg",
        "data": [50.0, 20.0],
        "modifiers": [
            {"name": "mcstat", "type": "shapesys", "data": [50.0 * 2.3e-6, 2.0]},
            {"name": "sys", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
        ],
    }
    signal = {
        "name": "sig",
        "data": [5.0, 3.0],
        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
    }
    return compile_model(
        {
            "channels": [{"name": "SR", "samples": [signal, background]}],
            "observations": [{"name": "SR", "data": [53, 28]}],
            "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
            "version": "1.0.0",
        }
    )


def test_stalled_first_order_fit_is_detected_and_recovered_on_a_small_model():
    """As on ERJR_100p0_20p0 (slow test above): L-BFGS-B stops at the start, the EDM
    check flags it, and the retry chain ends at Newton's minimum."""
    model = _stalling_model()
    data = np.asarray(model.observed_data())[None]
    stalled = fit_batch(
        model.structure, model.numbers, data, options=FitOptions(first_method="lbfgsb", retry=False)
    )
    assert not stalled.converged[0]
    assert "not converged" in stalled.message[0]
    assert stalled.edm[0] > 1e-3
    assert stalled.pars[0][model.poi_index] == pytest.approx(1.0, abs=1e-6)  # the start
    recovered = fit_batch(
        model.structure, model.numbers, data, options=FitOptions(first_method="lbfgsb")
    )
    assert recovered.converged[0]
    assert recovered.method[0] == "lbfgsb>minuit>newton"
    assert recovered.twice_nll[0] < stalled.twice_nll[0] - 0.1
    newton = fit_batch(model.structure, model.numbers, data)
    assert newton.converged[0] and newton.method[0] == "newton"
    assert recovered.twice_nll[0] == pytest.approx(newton.twice_nll[0], abs=1e-6)
    assert recovered.pars[0][model.poi_index] == pytest.approx(
        newton.pars[0][model.poi_index], abs=1e-4
    )


def test_minuit_retry_stops_at_its_time_limit_on_a_small_model():
    from hfpipe.infer.retries import _minuit

    model = _stalling_model()
    data = np.asarray(model.observed_data())
    start = np.asarray(model.numbers.init, dtype=float)
    fixed = np.asarray(model.numbers.fixed)
    stopped = _minuit(model.structure, model.numbers, data, start, fixed, seconds=0.0)
    np.testing.assert_array_equal(stopped, start)
    finished = _minuit(model.structure, model.numbers, data, start, fixed, seconds=60.0)
    newton = fit_batch(model.structure, model.numbers, data[None])
    assert finished[model.poi_index] == pytest.approx(newton.pars[0][model.poi_index], abs=2e-2)


def _runaway_model():
    """One channel of two bins; the background's histosys empties bin 1 at α = -1 and
    extrapolates it below zero beyond, and a free factor k scales it. With no event in
    bin 1, whose Poisson term is then just ν, -2 log L falls towards α = -5, k = 10
    (the bounds) from a start at α = -3."""
    background = {
        "name": "bkg",
        "data": [1.0, 1.0],
        "modifiers": [
            {"name": "k", "type": "normfactor", "data": None},
            {
                "name": "h",
                "type": "histosys",
                "data": {"hi_data": [1.0, 2.0], "lo_data": [1.0, 0.0]},
            },
        ],
    }
    signal = {
        "name": "sig",
        "data": [0.5, 0.5],
        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
    }
    return compile_model(
        {
            "channels": [{"name": "SR", "samples": [signal, background]}],
            "observations": [{"name": "SR", "data": [1.0, 0.0]}],
            "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
            "version": "1.0.0",
        }
    )


def test_fits_running_into_negative_yields_are_not_retried():
    """From α = -3 the fit runs towards the bounds. Stopped after 3 evaluations it is
    unconverged with a negative yield in the empty bin: reported with that bin and not
    retried (a MIGRAD retry would use its whole time limit). With enough evaluations it
    ends on the bounds, a minimum of pyhf's formula within them: kept, with the bound
    warning; from the model's init the same data have an interior minimum."""
    model = _runaway_model()
    structure, numbers = model.structure, model.numbers
    data = np.asarray(model.observed_data())[None]
    init = np.asarray(numbers.init, dtype=float)[None].copy()
    init[0, structure.parameter_names.index("h")] = -3.0
    short = FitOptions(max_iterations=3)
    for fit in (
        lambda: fit_batch(structure, numbers, data, init=init, options=short),
        lambda: fit_datasets(
            structure, numbers, np.repeat(data, 3, 0), init=init, lanes=2, options=short
        ),
    ):
        ran_away = fit()
        assert not ran_away.converged.any()
        assert set(ran_away.method) == {"newton"}  # no retry
        assert all("bin 1 of channel 'SR' went negative (-11.7)" in m for m in ran_away.message)
    on_bounds = fit_batch(structure, numbers, data, init=init)
    assert on_bounds.converged[0] and on_bounds.method[0] == "newton"
    assert "h at its lower bound -5, k at its upper bound 10" in on_bounds.warning[0]
    genuine = fit_batch(structure, numbers, data)
    assert genuine.converged[0] and genuine.message[0] == "" and genuine.warning[0] == ""
