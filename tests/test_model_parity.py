"""logpdf and expected data equal pyhf 0.7.6 to 1e-10 (relative) at random parameters."""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pytest

pyhf = pytest.importorskip("pyhf")

from hfpipe.model import compile_model  # noqa: E402

DOCS_2BIN = {
    "channels": [
        {
            "name": "singlechannel",
            "samples": [
                {
                    "name": "signal",
                    "data": [5.0, 10.0],
                    "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                },
                {
                    "name": "background",
                    "data": [50.0, 60.0],
                    "modifiers": [
                        {"name": "uncorr_bkguncrt", "type": "shapesys", "data": [5.0, 12.0]}
                    ],
                },
            ],
        }
    ],
    "observations": [{"name": "singlechannel", "data": [50.0, 60.0]}],
    "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
    "version": "1.0.0",
}
CODES = list(itertools.product(["code1", "code4"], ["code0", "code2", "code4p"]))


def _random_points(model, rng, n=4, alpha_range=2.0):
    """Random parameters: nuisance alphas in ±alpha_range, others scaled by 0.8–1.2."""
    init, bounds = np.array(model.init()), model.bounds()
    is_alpha = bounds[:, 0] < -1
    for _ in range(n):
        alphas = rng.uniform(-alpha_range, alpha_range, len(init))
        yield np.where(is_alpha, alphas, init * rng.uniform(0.8, 1.2, len(init)))


def pyhf_logpdf_exact_poisson(reference, pars, data) -> float:
    """pyhf's logpdf with its Poisson (shapesys) constraint terms evaluated exactly.

    pyhf computes ``n log λ - λ - lgamma(n+1)`` in float64; with τ ≈ 2e11 (3L-eRJR)
    that loses ~1e-4 absolute to rounding, which hfpipe avoids. Swapping those terms for
    50-digit values keeps pyhf's semantics and compares precision fairly.
    """
    from scipy.special import gammaln, xlogy

    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    value = reference.logpdf(pars, data)[0]
    aux_start = reference.config.nmaindata
    for name in reference.config.auxdata_order:
        paramset = reference.config.param_set(name)
        size = len(paramset.auxdata)
        if getattr(paramset, "pdf_type", None) == "poisson":
            gamma = np.asarray(pars)[reference.config.par_slice(name)]
            n = np.asarray(data)[aux_start : aux_start + size]
            rate = gamma * np.asarray(paramset.factors)
            value -= float(np.sum(xlogy(n, rate) - rate - gammaln(n + 1.0)))
            value += float(
                sum(
                    mpmath.mpf(k) * mpmath.log(mpmath.mpf(r))
                    - mpmath.mpf(r)
                    - mpmath.loggamma(mpmath.mpf(k) + 1)
                    for k, r in zip(n, rate, strict=True)
                )
            )
        aux_start += size
    return value


def assert_parity(workspace: dict, normsys: str, histosys: str, seed: int = 0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pyhf_ws = pyhf.Workspace(workspace)
        reference = pyhf_ws.model(
            modifier_settings={
                "normsys": {"interpcode": normsys},
                "histosys": {"interpcode": histosys},
            }
        )
    model = compile_model(workspace, normsys_code=normsys, histosys_code=histosys)
    assert list(model.parameter_names) == reference.config.par_names
    np.testing.assert_allclose(model.init(), reference.config.suggested_init())
    np.testing.assert_allclose(model.bounds(), reference.config.suggested_bounds())
    assert list(model.fixed()) == list(reference.config.suggested_fixed())
    data = np.asarray(pyhf_ws.data(reference))
    np.testing.assert_allclose(model.observed_data(), data)
    # pyhf's code2 leaves out the constant hi-nom / lo-nom outside |alpha| <= 1 (a jump at
    # |alpha| = 1); we follow ROOT there, so code2 is compared inside its range
    alpha_range = 1.0 if histosys == "code2" else 2.0
    for pars in _random_points(model, np.random.default_rng(seed), alpha_range=alpha_range):
        np.testing.assert_allclose(
            model.expected_data(pars), reference.expected_data(pars), rtol=1e-10, atol=0
        )
        np.testing.assert_allclose(
            float(model.logpdf(pars, data)),
            pyhf_logpdf_exact_poisson(reference, pars, data),
            rtol=1e-10,
        )


@pytest.mark.parametrize(("normsys", "histosys"), CODES)
def test_docs_example(normsys, histosys):
    assert_parity(DOCS_2BIN, normsys, histosys)


@pytest.mark.parametrize(("normsys", "histosys"), CODES)
def test_hs3_twins(shared_data, normsys, histosys):
    for path in sorted((shared_data / "hs3").glob("*_hifa.json")):
        assert_parity(json.loads(path.read_text()), normsys, histosys)


@pytest.mark.slow
@pytest.mark.parametrize(("analysis", "n_patches"), [("atlas-3l-erjr", 5), ("atlas-1lbb", 3)])
def test_atlas(load_analysis, analysis, n_patches):
    from hfpipe import spec

    workspace, patchset, _ = load_analysis(analysis)
    for patch in list(patchset)[:: len(patchset) // n_patches][:n_patches]:
        patched = spec.apply_patches(workspace, [patch])
        for normsys, histosys in CODES:
            assert_parity(patched, normsys, histosys)


def test_code2_is_continuous_where_pyhf_jumps():
    """ROOT's code2: value and slope continuous at |alpha| = 1 (pyhf 0.7.6 jumps there)."""
    import jax.numpy as jnp

    from hfpipe.model.interpolation import histosys_delta

    up, down = jnp.array([3.0]), jnp.array([1.0])
    for edge in (1.0, -1.0):
        inside = histosys_delta("code2", jnp.array([edge * (1 - 1e-9)]), up, down)
        outside = histosys_delta("code2", jnp.array([edge * (1 + 1e-9)]), up, down)
        assert abs(float(inside[0] - outside[0])) < 1e-7
    assert float(histosys_delta("code2", jnp.array([1.0]), up, down)[0]) == pytest.approx(3.0)
    assert float(histosys_delta("code2", jnp.array([-1.0]), up, down)[0]) == pytest.approx(-1.0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("analysis", "normsys", "histosys"),
    [
        ("atlas-3l-erjr", "code4", "code4p"),
        ("atlas-3l-erjr", "code1", "code2"),
        ("atlas-1lbb", "code4", "code4p"),
    ],
)
def test_structured_derivatives_equal_autodiff(load_analysis, analysis, normsys, histosys):
    """twice_nll_derivatives (assembled from per-slot effects) against JAX autodiff of
    twice_nll at random points, one with the POI at 0 (a zero row: mixed terms are
    taken with a tiny stand-in there); the Gauss–Newton matrix is positive
    semi-definite and differs from the Hessian. twice_nll_information gives the same
    value and gradient, the Jacobian of the expected counts, 1/ν and the constraints'
    curvature (1/σ², n/γ², or τ where a Poisson term has no counts)."""
    from hfpipe import spec

    workspace, patchset, _ = load_analysis(analysis)
    patched = spec.apply_patches(workspace, [list(patchset)[len(patchset) // 2]])
    _assert_structured_derivatives(
        compile_model(patched, normsys_code=normsys, histosys_code=histosys)
    )


#: a small model with every modifier type (two staterror samples, a shapesys bin without
#: counts' worth of signal, lumi, a shapefactor, a normsys and histosys of one name)
SMALL_EVERY_TYPE = {
    "channels": [
        {
            "name": "CR",
            "samples": [
                {
                    "name": "bkg",
                    "data": [200.0],
                    "modifiers": [
                        {"name": "k", "type": "normfactor", "data": None},
                        {"name": "uncorr", "type": "shapesys", "data": [10.0]},
                    ],
                }
            ],
        },
        {
            "name": "SR",
            "samples": [
                {
                    "name": "bkg",
                    "data": [40.0, 25.0],
                    "modifiers": [
                        {"name": "k", "type": "normfactor", "data": None},
                        {"name": "stat", "type": "staterror", "data": [3.0, 2.0]},
                        {"name": "sys", "type": "normsys", "data": {"hi": 1.08, "lo": 0.95}},
                        {"name": "lumi", "type": "lumi", "data": None},
                    ],
                },
                {
                    "name": "other",
                    "data": [20.0, 10.0],
                    "modifiers": [
                        {"name": "stat", "type": "staterror", "data": [2.0, 1.0]},
                        {
                            "name": "sys",
                            "type": "histosys",
                            "data": {"hi_data": [22.0, 10.5], "lo_data": [19.0, 9.0]},
                        },
                        {"name": "shape", "type": "shapefactor", "data": None},
                        {"name": "lumi", "type": "lumi", "data": None},
                    ],
                },
                {
                    "name": "signal",
                    "data": [5.0, 8.0],
                    "modifiers": [
                        {"name": "mu", "type": "normfactor", "data": None},
                        {"name": "lumi", "type": "lumi", "data": None},
                    ],
                },
            ],
        },
    ],
    "observations": [{"name": "CR", "data": [205]}, {"name": "SR", "data": [70, 40]}],
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


@pytest.mark.parametrize(("normsys", "histosys"), [("code4", "code4p"), ("code1", "code2")])
def test_structured_derivatives_equal_autodiff_on_a_small_model(normsys, histosys):
    """The same checks on a small model of every modifier type (the fast tier's)."""
    _assert_structured_derivatives(
        compile_model(SMALL_EVERY_TYPE, normsys_code=normsys, histosys_code=histosys)
    )


def _assert_structured_derivatives(model) -> None:
    import jax
    import jax.numpy as jnp

    from hfpipe.model.likelihood import (
        expected_main,
        prepare,
        twice_nll,
        twice_nll_derivatives,
        twice_nll_information,
    )

    layout, numbers = model.structure.layout, model.numbers
    prepared = prepare(layout, numbers)
    data = jnp.asarray(model.observed_data())

    def objective(x):
        return twice_nll(layout, prepared, x, data)

    derivatives = jax.jit(lambda x: twice_nll_derivatives(layout, prepared, x, data))
    hessian_of, gradient_of = jax.jit(jax.hessian(objective)), jax.jit(jax.grad(objective))
    information_at = jax.jit(lambda x: twice_nll_information(layout, prepared, x, data))
    jacobian_of = jax.jit(jax.jacfwd(lambda x: expected_main(layout, prepared, x)))
    rng = np.random.default_rng(7)
    init, lower = np.asarray(numbers.init, dtype=float), np.asarray(numbers.lower)
    for zero_poi in (False, True):
        pars = np.where(
            lower < -1, rng.uniform(-1.0, 1.0, len(init)), init * rng.uniform(0.9, 1.1, len(init))
        )
        if zero_poi:
            pars[model.poi_index] = 0.0
        pars = jnp.asarray(pars)
        value, gradient, hessian, gauss_newton = derivatives(pars)
        exact = np.asarray(hessian_of(pars))
        scale = np.sqrt(np.outer(np.abs(np.diag(exact)), np.abs(np.diag(exact))))
        assert np.isfinite(float(value))
        assert float(value) == pytest.approx(float(objective(pars)), rel=1e-13)
        np.testing.assert_allclose(gradient, gradient_of(pars), rtol=1e-9, atol=1e-9)
        assert np.max(np.abs(np.asarray(hessian) - exact) / scale) < 1e-9
        assert np.max(np.abs(np.asarray(gauss_newton) - exact) / scale) > 1e-6
        assert np.min(np.linalg.eigvalsh(np.asarray(gauss_newton))) > -1e-9 * np.max(scale)
        same_value, same_gradient, information = information_at(pars)
        assert float(same_value) == float(value)
        np.testing.assert_allclose(same_gradient, gradient, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(information.jacobian, jacobian_of(pars), rtol=1e-9, atol=1e-9)
        nu = np.asarray(expected_main(layout, prepared, pars))
        np.testing.assert_allclose(information.weight, 1.0 / nu, rtol=1e-12)
        expected = np.zeros(len(init))
        expected[list(layout.normal_params)] = 1.0 / np.asarray(numbers.normal_sigma) ** 2
        poisson = list(layout.poisson_params)
        counts = np.asarray(data)[layout.n_bins :][list(layout.poisson_aux)]
        tau, gamma = np.asarray(numbers.poisson_factor), np.asarray(pars)[poisson]
        expected[poisson] = np.where(counts > 0, counts / gamma**2, tau)
        np.testing.assert_allclose(information.constraint, expected, rtol=1e-12)
