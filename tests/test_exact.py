"""hfpipe against exact answers: small models solved by the mpmath oracle of
tests/exact_oracle.py (grids over every box between kinks, then 50-digit Newton), one
or more per modifier type and interpolation code.

Each model is compared on its best fit and its fits with the POI held (parameters to
1e-7, absolute or relative above 1; -2 ln L to 1e-8), its asymptotic CLs (observed and
expected band to 1e-7) and its upper limits (1e-6 relative, hfpipe's root finding asked
for 1e-7). A result hfpipe reports as unconverged passes only where an exact minimum it
rests on sits at a kink (α = 0 of code0 or code1), where no gradient vanishes; its
values must match all the same. The oracle itself is checked against pyhf 0.7.6: its
-2 ln L and expected data equal ``logpdf`` and ``expected_data`` (1e-12 relative), and
no point of a dense grid evaluated with pyhf lies below its minima.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import exact_oracle as oracle
import mpmath
import numpy as np
import pyhf
import pytest

from hfpipe.infer import fit_batch, hypotest
from hfpipe.infer.fit import batched
from hfpipe.infer.limits import upper_limits_batch
from hfpipe.model import compile_model

PARAMETER_TOLERANCE = 1e-7  # absolute, relative above 1
TWICE_NLL_TOLERANCE = 1e-8
CLS_TOLERANCE = 1e-7
#: relative; 10 times the root-finding tolerance hfpipe is asked for, which leaves room
#: for the limits' fits (converged to an EDM of 1e-9) and nothing more
LIMIT_TOLERANCE = 1e-6
LIMIT_ROOT_TOLERANCE = 1e-7
PYHF_TOLERANCE = 1e-12  # relative: pyhf's float64 formula


# --- workspaces -------------------------------------------------------------------------


def _normfactor(name: str = "mu") -> dict:
    return {"name": name, "type": "normfactor", "data": None}


def _normsys(name: str, hi: float, lo: float) -> dict:
    return {"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}}


def _histosys(name: str, lo: list, hi: list) -> dict:
    return {"name": name, "type": "histosys", "data": {"lo_data": lo, "hi_data": hi}}


def _per_bin(kind: str, name: str, data: list | None = None) -> dict:
    return {"name": name, "type": kind, "data": data}


def _lumi() -> dict:
    return {"name": "lumi", "type": "lumi", "data": None}


def _sample(name: str, data: list, *modifiers: dict) -> dict:
    return {"name": name, "data": data, "modifiers": list(modifiers)}


def _workspace(channels: dict, observations: dict, parameters=()) -> dict:
    return {
        "channels": [{"name": name, "samples": samples} for name, samples in channels.items()],
        "observations": [{"name": name, "data": data} for name, data in observations.items()],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": list(parameters)}}],
        "version": "1.0.0",
    }


def _shapesys_one_bin() -> dict:
    """Closed form: ν = 50 μ + 100 γ = 125 and γτ = τ make both terms saturated."""
    return _workspace(
        {
            "SR": [
                _sample("signal", [50.0], _normfactor()),
                _sample("background", [100.0], _per_bin("shapesys", "bkg_unc", [10.0])),
            ]
        },
        {"SR": [125.0]},
    )


def _hello_world() -> dict:
    """pyhf.simplemodels.uncorrelated_background([12, 11], [50, 52], [3, 7]); μ̂ = 0."""
    return _workspace(
        {
            "singlechannel": [
                _sample("signal", [12.0, 11.0], _normfactor()),
                _sample(
                    "background",
                    [50.0, 52.0],
                    _per_bin("shapesys", "uncorr_bkguncrt", [3.0, 7.0]),
                ),
            ]
        },
        {"singlechannel": [51.0, 48.0]},
    )


def _normsys_model(
    data_sr: list,
    data_cr: list,
    parameters=(),
    *,
    signal=(10.0, 5.0),
    background=(60.0, 40.0),
    factors=(1.15, 0.9),
) -> dict:
    """A signal region and a control region; one normsys (hi, lo = ``factors``) on the
    background in both and one on the signal."""
    on_background = _normsys("bkg_norm", *factors)
    return _workspace(
        {
            "SR": [
                _sample("signal", list(signal), _normfactor(), _normsys("sig_theory", 1.05, 0.97)),
                _sample("background", list(background), on_background),
            ],
            "CR": [_sample("background", [100.0], on_background)],
        },
        {"SR": data_sr, "CR": data_cr},
        parameters,
    )


def _histosys_model(
    data=(61.0, 49.0),
    *,
    signal=(8.0, 12.0),
    background=(50.0, 40.0),
    lo=(47.0, 41.5),
    hi=(54.0, 37.0),
) -> dict:
    """One channel, a histosys changing the background's shape."""
    return _workspace(
        {
            "SR": [
                _sample("signal", list(signal), _normfactor()),
                _sample("background", list(background), _histosys("bkg_shape", list(lo), list(hi))),
            ]
        },
        {"SR": list(data)},
    )


def _kink_histosys() -> dict:
    """:func:`_histosys_model` with a one-sided variation (up and down both raise the
    background) and a signal-free second bin below it: the best fit is held at the kink
    α = 0, with μ̂ = 0.6 in closed form."""
    return _histosys_model(
        (56.0, 95.0),
        signal=(10.0, 0.0),
        background=(50.0, 100.0),
        lo=(52.0, 104.0),
        hi=(55.0, 110.0),
    )


def _kink_normsys() -> dict:
    """:func:`_normsys_model` with a one-sided normsys (hi 1.1, lo 1.04) and data below
    the background in its signal-free bin and the control region: held at the kink α = 0,
    with μ̂ = 0.6 and the signal's normsys at 0 in closed form."""
    return _normsys_model(
        [56.0, 95.0], [95.0], signal=(10.0, 0.0), background=(50.0, 100.0), factors=(1.1, 1.04)
    )


def _coupled_histosys() -> dict:
    """pyhf's validation model 2bin_2channel_coupledhisto: one histosys shared by three
    samples in two channels; with code0 the global minimum is at α = +0.313."""
    coupled = "coupled_histosys"
    return _workspace(
        {
            "signal": [
                _sample("signal", [30.0, 35.0], _normfactor()),
                _sample("bkg1", [100.0, 100.0], _histosys(coupled, [90.0, 90.0], [110.0, 110.0])),
                _sample("bkg2", [50.0, 120.0], _histosys(coupled, [45.0, 45.0], [55.0, 55.0])),
            ],
            "control": [
                _sample(
                    "background",
                    [105.0, 100.0],
                    _histosys(coupled, [95.0, 90.0], [110.0, 115.0]),
                )
            ],
        },
        {"signal": [170.0, 220.0], "control": [110.0, 105.0]},
    )


def _lumi_model() -> dict:
    """lumi on both samples (auxdata and sigma from the measurement) and a normsys."""
    return _workspace(
        {
            "SR": [
                _sample("signal", [10.0, 8.0], _normfactor(), _lumi()),
                _sample("background", [40.0, 30.0], _lumi(), _normsys("bkg_norm", 1.1, 0.9)),
            ]
        },
        {"SR": [55.0, 36.0]},
        [
            {
                "name": "lumi",
                "auxdata": [1.0],
                "sigmas": [0.1],
                "bounds": [[0.5, 1.5]],
                "inits": [1.0],
            }
        ],
    )


def _staterror_model() -> dict:
    """Two background samples share one staterror: width sqrt(Σδ²) / Σ nominal per bin."""
    return _workspace(
        {
            "SR": [
                _sample("signal", [6.0, 9.0], _normfactor()),
                _sample("bkg1", [30.0, 20.0], _per_bin("staterror", "stat_SR", [3.0, 2.5])),
                _sample("bkg2", [10.0, 15.0], _per_bin("staterror", "stat_SR", [2.0, 3.0])),
            ]
        },
        {"SR": [50.0, 40.0]},
    )


def _shapefactor_model() -> dict:
    """pyhf's validation model 2bin_2channel_coupledshapefactor: a shapefactor shared by
    a signal and a control region; closed form μ̂ = 1, shapefactor (2, 3)."""
    coupled = _per_bin("shapefactor", "coupled_shapefactor")
    return _workspace(
        {
            "signal": [
                _sample("signal", [20.0, 20.0], _normfactor()),
                _sample("bkg1", [100.0, 70.0], coupled),
            ],
            "control": [_sample("background", [100.0, 100.0], coupled)],
        },
        {"signal": [220.0, 230.0], "control": [200.0, 300.0]},
    )


@dataclass(frozen=True)
class Case:
    """A model, its interpolation codes, and what is tested on it."""

    workspace: dict
    normsys_code: str = "code4"
    histosys_code: str = "code4p"
    test_stat: str = "qtilde"
    mus: tuple = (0.0, 1.0)
    limits: bool = True

    @property
    def codes(self) -> dict:
        return {"normsys_code": self.normsys_code, "histosys_code": self.histosys_code}


CASES = {
    "shapesys_one_bin": Case(_shapesys_one_bin()),
    "hello_world": Case(_hello_world()),
    "normsys_code1": Case(_normsys_model([75.0, 48.0], [106.0]), normsys_code="code1"),
    "normsys_code4": Case(_normsys_model([75.0, 48.0], [106.0])),
    "normsys_code4_outside": Case(_normsys_model([80.0, 52.0], [125.0])),
    "histosys_code0": Case(_histosys_model(), histosys_code="code0"),
    "histosys_code2": Case(_histosys_model(), histosys_code="code2"),
    "histosys_code4p": Case(_histosys_model()),
    "coupled_histosys_code0": Case(
        _coupled_histosys(), normsys_code="code1", histosys_code="code0"
    ),
    "lumi": Case(_lumi_model()),
    "staterror": Case(_staterror_model()),
    "shapefactor": Case(_shapefactor_model()),
    "kink_code0": Case(_kink_histosys(), histosys_code="code0"),
    "kink_code1": Case(_kink_normsys(), normsys_code="code1"),
    "qmu_negative_mu_hat": Case(
        _normsys_model([58.0, 38.0], [104.0], [{"name": "mu", "bounds": [[-5.0, 10.0]]}]),
        test_stat="q",
        limits=False,
    ),
    "q0_excess": Case(_histosys_model(), test_stat="q0", mus=(0.0,), limits=False),
}
FIT_POINTS = [(name, mu) for name, case in CASES.items() for mu in (None, *case.mus)]
LIMIT_CASES = [name for name, case in CASES.items() if case.limits]
#: the cases whose CLs and limits the fast tier (-m "not slow") checks: every test
#: statistic and both kinds of kink; the other cases' oracle runs take tens of seconds
FAST_CASES = {"hello_world", "kink_code0", "kink_code1", "qmu_negative_mu_hat", "q0_excess"}


def _tiered(names):
    """pytest params of ``names`` (or (name, mu) pairs), slow unless in FAST_CASES."""
    return [
        pytest.param(
            *(n if isinstance(n, tuple) else (n,)),
            marks=() if (n[0] if isinstance(n, tuple) else n) in FAST_CASES else pytest.mark.slow,
        )
        for n in names
    ]


# --- helpers ----------------------------------------------------------------------------


def _models(name: str):
    case = CASES[name]
    return (
        compile_model(case.workspace, **case.codes),
        oracle.model(case.workspace, **case.codes),
    )


def _hfpipe_fit(model, mu):
    """hfpipe's fit to the observed data, the POI free (mu None) or held at mu."""
    init, fixed = model.init().copy(), model.fixed().copy()
    if mu is not None:
        init[model.poi_index], fixed[model.poi_index] = mu, True
    return fit_batch(
        model.structure, model.numbers, model.observed_data()[None], init=init, fixed=fixed
    )


def _check_converged(converged: bool, message: str, exact_at_kink: bool) -> None:
    assert converged or exact_at_kink, (
        f"hfpipe reports an unconverged fit ({message}) where the exact minimum is smooth"
    )


def _assert_parameters(names, pars, exact: oracle.Fit) -> None:
    errors = {
        name: abs(float(value) - float(exact.pars[name])) / max(1.0, abs(float(exact.pars[name])))
        for name, value in zip(names, pars, strict=True)
    }
    worst = max(errors, key=errors.get)
    assert errors[worst] <= PARAMETER_TOLERANCE, (
        f"{worst}: hfpipe {pars[list(names).index(worst)]!r} vs exact "
        f"{float(exact.pars[worst])!r} (error {errors[worst]:.3g})"
    )


@functools.cache
def _pyhf_workspace(name: str) -> pyhf.Workspace:
    return pyhf.Workspace(CASES[name].workspace)


def _pyhf_model(name: str, batch_size: int | None = None):
    case = CASES[name]
    settings = {
        "normsys": {"interpcode": case.normsys_code},
        "histosys": {"interpcode": case.histosys_code},
    }
    return _pyhf_workspace(name).model(
        modifier_settings=settings, batch_size=batch_size, validate=False
    )


def _pyhf_vector(pyhf_model, pars: dict) -> list[float]:
    return [float(pars[name]) for name in pyhf_model.config.par_names]


def _pyhf_data(pyhf_model, exact_model, data) -> list[float]:
    """An oracle data set (main, aux) as pyhf's data vector (aux in pyhf's order)."""
    main, aux = data
    names = [exact_model.parameter_names[i] for i in exact_model.constrained]
    by_name = dict(zip(names, aux, strict=True))
    config = pyhf_model.config
    ordered = [
        by_name[component]
        for name in config.auxdata_order
        for component in config.par_names[config.par_slice(name)]
    ]
    return [float(v) for v in (*main, *ordered)]


def _test_points(exact_model) -> list[dict]:
    """The initial values, the exact best fit, and two points where every free parameter
    is moved off its initial value, once up and once down (α by 0.7 and 0.6: both sides
    of every kink, inside |α| ≤ 1 where pyhf's code2 is ROOT's; factors by 40 % of that)."""
    best = oracle.fit(exact_model)
    points = [
        [p.init for p in exact_model.parameters],
        [float(best.pars[name]) for name in exact_model.parameter_names],
    ]
    for sign in (1, -1):
        moved = []
        for k, p in enumerate(exact_model.parameters):
            step = (0.7 if (k % 2 == 0) == (sign > 0) else -0.6) * (1 if p.init == 0 else 0.4)
            moved.append(p.init if p.fixed else p.init + step)
        points.append(moved)
    return [dict(zip(exact_model.parameter_names, point, strict=True)) for point in points]


# --- the oracle is pyhf's model ---------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_oracle_is_pyhf_model(name):
    """The oracle's -2 ln L and expected data equal pyhf 0.7.6's at several points, on
    the observed data and on Asimov data sets (which carry the auxiliary data)."""
    _, exact_model = _models(name)
    pyhf_model = _pyhf_model(name)
    points = _test_points(exact_model)
    data_sets = [exact_model.observed_data(), oracle.expected_data(exact_model, points[-1])]
    for pars in points:
        vector = _pyhf_vector(pyhf_model, pars)
        expected = _pyhf_data(pyhf_model, exact_model, oracle.expected_data(exact_model, pars))
        np.testing.assert_allclose(pyhf_model.expected_data(vector), expected, rtol=PYHF_TOLERANCE)
        for data in data_sets:
            exact = float(oracle.twice_nll(exact_model, pars, data))
            pyhf_data = _pyhf_data(pyhf_model, exact_model, data)
            theirs = -2 * float(pyhf_model.logpdf(vector, pyhf_data)[0])
            assert theirs == pytest.approx(exact, rel=PYHF_TOLERANCE)


def test_oracle_closed_forms():
    """Minima known in closed form come out exactly (to 40 digits)."""
    closed_forms = {
        "shapesys_one_bin": {"mu": "0.5", "bkg_unc[0]": "1"},
        "shapefactor": {"mu": "1", "coupled_shapefactor[0]": "2", "coupled_shapefactor[1]": "3"},
        "kink_code0": {"mu": "0.6", "bkg_shape": "0"},
        "kink_code1": {"mu": "0.6", "bkg_norm": "0", "sig_theory": "0"},
    }
    for name, values in closed_forms.items():
        exact = oracle.fit(_models(name)[1])
        with mpmath.workdps(oracle.DIGITS):
            for parameter, value in values.items():
                assert abs(exact.pars[parameter] - mpmath.mpf(value)) < 1e-40, (name, parameter)
        assert exact.at_kink == name.startswith("kink")


@pytest.mark.parametrize(("name", "mu"), FIT_POINTS)
def test_oracle_minimum_is_global(name, mu):
    """No point of a dense grid over the free parameters' bounds lies below the oracle's
    minimum (by pyhf's own formula, vectorised): the oracle missed no basin. For code2
    the grid keeps |α| ≤ 1, where pyhf's code2 is the one the oracle implements."""
    case = CASES[name]
    _, exact_model = _models(name)
    exact = oracle.fit(exact_model, poi_value=mu)
    free = [
        p
        for i, p in enumerate(exact_model.parameters)
        if not p.fixed and not (mu is not None and i == exact_model.poi)
    ]
    size = {1: 1001, 2: 61, 3: 21}[len(free)]
    axes = []
    for p in free:
        lower, upper = p.lower, p.upper
        if case.histosys_code == "code2" and p.kind == "histosys":
            lower, upper = max(lower, -1.0), min(upper, 1.0)
        axes.append(np.linspace(lower, upper, size))
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(free))
    start = {p.name: p.init for p in exact_model.parameters}
    if mu is not None:
        start[exact_model.parameter_names[exact_model.poi]] = mu
    pyhf_model = _pyhf_model(name, batch_size=len(grid))
    pars = np.tile(_pyhf_vector(pyhf_model, start), (len(grid), 1))
    for column, p in enumerate(free):
        pars[:, pyhf_model.config.par_names.index(p.name)] = grid[:, column]
    data = _pyhf_data(pyhf_model, exact_model, exact_model.observed_data())
    lowest = np.nanmin(-2 * pyhf_model.logpdf(pars, data))
    assert lowest >= float(exact.twice_nll) - 1e-9, (lowest, float(exact.twice_nll))


# --- hfpipe against the oracle ----------------------------------------------------------


@pytest.mark.parametrize(("name", "mu"), FIT_POINTS)
def test_fit(name, mu):
    """hfpipe's best fit (mu None) and fits with the POI held at mu: parameters and
    -2 ln L at the exact global minimum."""
    model, exact_model = _models(name)
    result = _hfpipe_fit(model, mu)
    exact = oracle.fit(exact_model, poi_value=mu)
    _check_converged(bool(result.converged[0]), result.message[0], exact.at_kink)
    _assert_parameters(model.parameter_names, result.pars[0], exact)
    assert abs(result.twice_nll[0] - float(exact.twice_nll)) <= TWICE_NLL_TOLERANCE, (
        f"-2 ln L: hfpipe {result.twice_nll[0]!r} vs exact {float(exact.twice_nll)!r}"
    )


@pytest.mark.parametrize(
    ("name", "mu"), _tiered([(name, mu) for name, case in CASES.items() for mu in case.mus])
)
def test_cls(name, mu):
    """Observed and expected asymptotic CLs (p0 for q0) with the case's test statistic."""
    case = CASES[name]
    model, exact_model = _models(name)
    result = hypotest(model, mu, test_stat=case.test_stat)
    exact = oracle.hypotest(exact_model, mu, test_stat=case.test_stat)
    _check_converged(bool(result.converged[0]), result.message[0], exact.at_kink)
    observed, expected = result.cls_obs[0], np.asarray(result.cls_exp[0])
    assert abs(observed - float(exact.cls_obs)) <= CLS_TOLERANCE, (
        f"CLs_obs: hfpipe {observed!r} vs exact {float(exact.cls_obs)!r}"
    )
    np.testing.assert_allclose(
        expected, [float(v) for v in exact.cls_exp], rtol=0, atol=CLS_TOLERANCE
    )


@pytest.mark.parametrize("name", _tiered(LIMIT_CASES))
def test_upper_limits(name):
    """Observed and expected (-2σ … +2σ) 95 % CL upper limits with q~μ."""
    model, exact_model = _models(name)
    result = upper_limits_batch(
        model.structure, batched(model.numbers, 1), tolerance=LIMIT_ROOT_TOLERANCE
    )
    exact = oracle.upper_limits(exact_model)
    _check_converged(bool(result.converged[0]), result.message[0], exact.at_kink)
    values = [float(v) for v in exact.values]
    np.testing.assert_allclose(result.values[0], values, rtol=LIMIT_TOLERANCE, atol=0)
