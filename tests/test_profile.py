"""Profile-likelihood scans (hfpipe.infer.profile, hfpipe profile): Δ(−2 ln L) against
independent fixed-parameter fits, interval edges against root-finding on independent
fits and against iminuit's MINOS on the same likelihood, 2-D contours against the
closed-form likelihood of a model without nuisance parameters and against brute-force
fits along rays, the warm-start sweep repairing a point stuck away from its minimum."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.optimize import brentq

import hfpipe
from hfpipe.cli import main
from hfpipe.commands.fit import maximum_likelihood_fit
from hfpipe.errors import InvalidSettings
from hfpipe.infer import compiled
from hfpipe.infer.fit import fit_batch
from hfpipe.infer.fitresult import FitResult
from hfpipe.infer.profile_contours import contours
from hfpipe.infer.profile_intervals import intervals
from hfpipe.infer.profile_scan import (
    ONE_SIGMA,
    _lower_free,
    _sweep,
    delta_level,
    profile_scan,
)
from hfpipe.model import compile_model
from hfpipe.results import read_table
from hfpipe.spec import load_patchset

EXAMPLE = "examples/example/BkgOnly.json"
PATCHSET = "examples/example/patchset.json"


@pytest.fixture(scope="module")
def example():
    """The bundled example at sig_400_100 (10 parameters, a free ttbar normalisation)."""
    return compile_model(EXAMPLE, patches=[load_patchset(PATCHSET)["sig_400_100"]])


def two_normfactors(nuisance: bool = False) -> dict:
    """Two signals sharing two bins, each with its normfactor; with ``nuisance``, a
    10 % normsys on the background too."""
    modifiers = [{"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]
    return {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {
                        "name": "a",
                        "data": [10.0, 2.0],
                        "modifiers": [{"name": "mu_a", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "b",
                        "data": [3.0, 8.0],
                        "modifiers": [{"name": "mu_b", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "bkg",
                        "data": [20.0, 15.0],
                        "modifiers": modifiers if nuisance else [],
                    },
                ],
            }
        ],
        "observations": [{"name": "SR", "data": [35.0, 30.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu_a", "parameters": []}}],
        "version": "1.0.0",
    }


def exact_delta(a, b):
    """Δ(−2 ln L) of :func:`two_normfactors` without nuisance: Poisson terms in closed
    form; the minimum is where both bins' expectations equal the counts."""
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    n = np.array([35.0, 30.0])[:, None]
    nu = np.array([10 * a + 3 * b + 20, 2 * a + 8 * b + 15])
    return np.sum(2 * (nu - n * np.log(nu)) - 2 * (n - n * np.log(n)), axis=0)


def test_levels_are_the_chi2_quantiles():
    assert delta_level(ONE_SIGMA, 1) == pytest.approx(1.0, abs=1e-12)
    assert delta_level(0.95, 1) == pytest.approx(3.841458820694124)
    assert delta_level(ONE_SIGMA, 2) == pytest.approx(2.2957489288986)
    assert delta_level(0.95, 2) == pytest.approx(5.991464547107979)


def test_1d_profile_equals_independent_fixed_poi_fits(example):
    """Point by point, Δ equals an independent `hfpipe fit --fixed-poi` minus the free fit."""
    grid = np.linspace(0.0, 2.0, 9)
    scan = profile_scan(example, {"mu_SIG": grid})
    free = maximum_likelihood_fit(example).output["twice_nll"]
    assert scan.twice_nll_min == pytest.approx(free, abs=1e-9)
    for mu, delta in zip(grid, scan.delta, strict=True):
        fixed = maximum_likelihood_fit(example, fixed_poi=float(mu)).output["twice_nll"]
        assert delta == pytest.approx(fixed - free, abs=1e-6)
    runner = CliRunner().invoke(
        main,
        ["fit", EXAMPLE, "--patchset", PATCHSET, "--point", "sig_400_100", "--fixed-poi", "1.5"],
    )
    cli = json.loads(runner.output.strip().splitlines()[-1])["twice_nll"]
    assert scan.delta[6] == pytest.approx(cli - free, abs=1e-6)


def test_profile_of_a_nuisance_parameter_with_a_kinked_code_equals_independent_fits():
    """Any parameter can be scanned; with normsys code1 (kinked at 0) every grid point
    goes through the orthant search and still matches a fit with that parameter held."""
    model = compile_model(
        EXAMPLE, patches=[load_patchset(PATCHSET)["sig_400_100"]], normsys_code="code1"
    )
    grid = np.linspace(-1.5, 1.5, 7)
    scan = profile_scan(model, {"jes": grid})
    index = model.structure.parameter_index("jes")
    data = jnp.asarray(model.observed_data())[None]
    for value, delta in zip(grid, scan.delta, strict=True):
        init, fixed = model.init().copy(), model.fixed().copy()
        init[index], fixed[index] = value, True
        held = fit_batch(model.structure, model.numbers, data, init=init, fixed=fixed)
        assert delta == pytest.approx(held.twice_nll[0] - scan.twice_nll_min, abs=1e-6)


def test_interval_edges_equal_root_finding_on_independent_fits(example):
    scan = profile_scan(example, {"mu_SIG": np.linspace(0.0, 3.0, 16)})
    table = intervals(scan)
    free = scan.twice_nll_min

    def excess(mu, level):
        return maximum_likelihood_fit(example, fixed_poi=mu).output["twice_nll"] - free - level

    for row in table.itertuples():
        assert row.lower_edge == "bound" and row.lower == 0.0  # μ̂ ≈ 0.02: the bound is in
        assert row.upper_edge == "crossing"
        exact = brentq(excess, row.bestfit + 0.01, 3.0, args=(row.level,), xtol=1e-10)
        assert row.upper == pytest.approx(exact, abs=1e-4)
    linear = intervals(scan, refine=False)
    assert not np.allclose(linear["upper"], table["upper"], atol=1e-4, rtol=0)  # refining matters


def test_interval_edges_beyond_the_grid_are_reported(example):
    scan = profile_scan(example, {"mu_SIG": np.linspace(0.2, 0.6, 5)})
    table = intervals(scan, [0.95], refine=False)
    row = table.iloc[0]
    assert row.lower_edge == "outside grid" and np.isnan(row.lower)
    assert row.upper_edge == "outside grid" and np.isnan(row.upper)


def test_minos_of_iminuit_on_the_same_likelihood_agrees_with_the_example_interval(example):
    """MINOS (errordef 1 on −2 ln L) on hfpipe's own objective gives the 68 % edges."""
    iminuit = pytest.importorskip("iminuit")
    low, high = _minos(iminuit, example)
    scan = profile_scan(example, {"mu_SIG": np.linspace(0.0, 2.0, 21)})
    row = intervals(scan, [ONE_SIGMA]).iloc[0]
    assert low <= 1e-6 and row.lower == 0.0  # MINOS stops at the bound too
    assert row.upper == pytest.approx(high, abs=1e-3)


def _minos(iminuit, model) -> tuple[float, float]:
    """MINOS interval of the POI on hfpipe's −2 ln L, started at hfpipe's best fit."""
    best = hfpipe.fit(model)
    objective = compiled.objective(model.structure)
    data = jnp.asarray(model.observed_data())

    def value(x):
        return float(objective(model.numbers, jnp.asarray(x), data)[0])

    def gradient(x):
        return np.asarray(objective(model.numbers, jnp.asarray(x), data)[1])

    minuit = iminuit.Minuit(value, best.pars, grad=gradient, name=model.parameter_names)
    minuit.errordef = 1.0
    minuit.strategy = 2
    minuit.limits = list(zip(model.numbers.lower, model.numbers.upper, strict=True))
    minuit.fixed = list(model.fixed())
    minuit.errors = np.where(best.uncertainties > 0, best.uncertainties, 0.1)
    minuit.migrad()
    minuit.minos(model.poi_name)
    error = minuit.merrors[model.poi_name]
    assert minuit.valid and error.is_valid
    centre = minuit.values[model.poi_name]
    return centre + error.lower, centre + error.upper


@pytest.mark.slow
def test_68_percent_intervals_agree_with_minos_on_docs_model_and_3l(shared_data, load_analysis):
    """The pyhf docs two-bin model and 3L-eRJR ERJR_100p0_20p0 (μ̂ = 0.49: both edges are
    crossings there)."""
    iminuit = pytest.importorskip("iminuit")
    docs = compile_model(shared_data / "toys" / "docs_2bin.json")
    workspace, patchset, _ = load_analysis("atlas-3l-erjr")
    erjr = compile_model(workspace, patches=[patchset["ERJR_100p0_20p0"]])
    for model, grid in ((docs, np.linspace(0.0, 3.0, 31)), (erjr, np.linspace(0.0, 2.0, 41))):
        low, high = _minos(iminuit, model)
        row = intervals(profile_scan(model, {model.poi_name: grid}), [ONE_SIGMA]).iloc[0]
        assert row.upper == pytest.approx(high, abs=1e-3)
        if row.lower_edge == "bound":
            assert low == pytest.approx(row.lower, abs=1e-3)
        else:
            assert row.lower == pytest.approx(low, abs=1e-3)
    assert row.lower_edge == "crossing"  # 3L: a two-sided interval


def test_2d_contour_equals_the_closed_form_likelihood():
    """No nuisance parameters: Δ(μ_a, μ_b) is known exactly, so every refined vertex must
    lie on Δ = level; the interpolated contour within 1 % of the contour's width."""
    model = compile_model(two_normfactors())
    scan = profile_scan(model, {"mu_a": np.linspace(0, 3, 16), "mu_b": np.linspace(0, 3.5, 15)})
    assert scan.bestfit == pytest.approx([75 / 74, 120 / 74], abs=1e-8)  # ν = n
    refined = contours(scan, [ONE_SIGMA])[0]
    vertices = np.concatenate(refined.lines)
    assert np.concatenate(refined.refined).all()
    assert exact_delta(*vertices.T) == pytest.approx(refined.level, abs=1e-6)
    rough = np.concatenate(contours(scan, [ONE_SIGMA], refine=False)[0].lines)
    width = vertices.max(axis=0) - vertices.min(axis=0)
    for vertex in rough:
        assert _distance_to_level(vertex, refined.level) < 0.01 * width.min()


def _distance_to_level(vertex, level) -> float:
    """Distance from ``vertex`` to the exact contour, along the closed form's gradient."""
    step = 1e-6
    gradient = np.array(
        [
            (exact_delta(*(vertex + step * e)) - exact_delta(*(vertex - step * e)))[0] / (2 * step)
            for e in np.eye(2)
        ]
    )
    return abs(exact_delta(*vertex)[0] - level) / np.linalg.norm(gradient)


def test_2d_contour_with_a_nuisance_parameter_agrees_with_brute_force_fits_along_rays():
    """With a profiled normsys: along 12 rays from the best fit, a fine grid of
    independent fits (steps of 0.5 % of the contour's width, one fit_batch call) puts the
    crossing of Δ = 2.30 where the contour crosses the ray, to 1 % of its width."""
    model = compile_model(two_normfactors(nuisance=True))
    scan = profile_scan(model, {"mu_a": np.linspace(0, 3, 16), "mu_b": np.linspace(0, 3.5, 15)})
    contour = contours(scan, [ONE_SIGMA])[0]
    (line,) = contour.lines
    width = line.max(axis=0) - line.min(axis=0)
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    directions = np.column_stack([np.cos(angles), np.sin(angles)]) * width
    radii = np.linspace(0.05, 0.95, 181)
    points = scan.bestfit + radii[None, :, None] * directions[:, None, :]  # (ray, radius, 2)
    flat = points.reshape(-1, 2)
    held = [model.structure.parameter_index(p) for p in ("mu_a", "mu_b")]
    init = np.tile(scan.free.pars, (len(flat), 1))
    init[:, held] = np.clip(flat, 0.0, None)
    fixed = np.tile(model.fixed(), (len(flat), 1))
    fixed[:, held] = True
    observed = jnp.asarray(model.observed_data())
    data = jnp.broadcast_to(observed, (len(flat), len(observed)))
    found = fit_batch(model.structure, model.numbers, data, init=init, fixed=fixed)
    assert found.converged.all()
    delta = found.twice_nll - scan.twice_nll_min
    delta = np.where(np.all(flat >= 0, axis=1), delta, np.inf).reshape(len(angles), -1)
    for ray, direction in enumerate(directions):
        k = np.flatnonzero(delta[ray] > contour.level)[0]  # first fine point outside
        a, b = delta[ray, k - 1] - contour.level, delta[ray, k] - contour.level
        brute = radii[k - 1] + (radii[k] - radii[k - 1]) * a / (a - b)
        assert _ray_crossing(line, scan.bestfit, direction) == pytest.approx(brute, abs=0.01)


def _ray_crossing(line, centre, direction) -> float:
    """Where the ray centre + r·direction meets the polyline, in units of ``direction``."""
    for a, b in itertools.pairwise(line):
        matrix = np.column_stack([direction, a - b])
        if abs(np.linalg.det(matrix)) < 1e-15:
            continue
        radius, fraction = np.linalg.solve(matrix, a - centre)
        if radius > 0 and 0 <= fraction <= 1:
            return float(radius)
    raise AssertionError("the ray misses the contour")


def test_sweep_repairs_a_point_left_away_from_its_minimum(example):
    """A grid fit that ended high (a local minimum, or unconverged) is fitted again from
    its neighbour's minimum and comes back to the clean profile."""
    grid = np.linspace(0.0, 2.0, 9)
    clean = profile_scan(example, {"mu_SIG": grid})
    problem, points = clean.problem, clean.points
    bad = clean.fits.take(np.array([4]))
    stuck = FitResult(
        pars=bad.pars + 0.5,
        twice_nll=bad.twice_nll + 3.0,
        converged=np.array([False]),
        edm=np.array([np.inf]),
        iterations=bad.iterations,
        method=bad.method,
        message=np.array(["not converged"], dtype=object),
        warning=bad.warning,
    )
    broken = clean.fits.replace_rows(np.array([4]), stuck)
    repaired = _sweep(problem, points, (len(grid),), broken)
    assert repaired.converged.all()
    np.testing.assert_allclose(repaired.twice_nll, clean.fits.twice_nll, atol=1e-9)


def test_free_fit_is_refitted_from_a_lower_grid_point(example):
    """A free fit above a held fit is a local minimum: it is fitted again from there."""
    scan = profile_scan(example, {"mu_SIG": np.linspace(0.0, 1.0, 3)})
    high = scan.free.replace_rows(
        np.array([0]),
        FitResult(
            pars=scan.free.pars,
            twice_nll=scan.free.twice_nll + 1.0,
            converged=scan.free.converged,
            edm=scan.free.edm,
            iterations=scan.free.iterations,
            method=scan.free.method,
            message=scan.free.message,
            warning=scan.free.warning,
        ),
    )
    lowered = _lower_free(scan.problem, high, scan.fits)
    assert lowered.twice_nll[0] == pytest.approx(scan.twice_nll_min, abs=1e-9)


def test_bounds_are_extended_only_when_asked(example):
    with pytest.raises(InvalidSettings, match="outside its bounds"):
        profile_scan(example, {"mu_SIG": np.linspace(8.0, 12.0, 3)})
    scan = profile_scan(example, {"mu_SIG": np.linspace(8.0, 12.0, 3)}, extend_bounds=True)
    upper = np.array(example.numbers.upper).copy()
    upper[example.poi_index] = 12.0
    init, fixed = example.init().copy(), example.fixed().copy()
    init[example.poi_index], fixed[example.poi_index] = 12.0, True
    numbers = example.numbers._replace(upper=upper)
    data = jnp.asarray(example.observed_data())[None]
    held = fit_batch(example.structure, numbers, data, init=init, fixed=fixed)
    assert scan.delta[-1] == pytest.approx(held.twice_nll[0] - scan.twice_nll_min, abs=1e-6)


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"nope": [0, 1]}, "no parameter 'nope'"),
        ({"mu_SIG": [0, 1], "mu_ttbar": [1, 2], "jes": [0, 1]}, "one or two distinct"),
        ({"mu_SIG": [1.0]}, "at least two values"),
        ({"mu_SIG": [1.0, 0.5]}, "must increase"),
    ],
)
def test_bad_grids_are_refused(example, grid, message):
    with pytest.raises(InvalidSettings, match=message):
        profile_scan(example, grid)


def test_a_parameter_fixed_by_the_measurement_is_refused(example):
    workspace = json.loads(Path(EXAMPLE).read_text())
    workspace["measurements"][0]["config"]["parameters"].append({"name": "jes", "fixed": True})
    model = compile_model(workspace, patches=[load_patchset(PATCHSET)["sig_400_100"]])
    with pytest.raises(InvalidSettings, match="fixed by the measurement"):
        profile_scan(model, {"jes": [0.0, 1.0]})


def test_cli_writes_the_table_metadata_and_figure(tmp_path):
    table, figure = tmp_path / "p.parquet", tmp_path / "p.png"
    result = CliRunner().invoke(
        main,
        [
            "profile",
            EXAMPLE,
            "--patchset",
            PATCHSET,
            "--point",
            "sig_400_100",
            "--par",
            "mu_SIG=0:2:11",
            "--par",
            "mu_ttbar=0.7:1.3:7",
            "-o",
            str(table),
            "--plot",
            str(figure),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["parameters"] == ["mu_SIG", "mu_ttbar"] and report["points"] == 77
    assert [c["level"] for c in report["contours"]] == pytest.approx([2.2957489, 5.9914645])
    frame, provenance = read_table(table)
    assert list(frame.columns[:3]) == ["mu_SIG", "mu_ttbar", "delta_twice_nll"]
    assert frame["delta_twice_nll"].min() >= -1e-9
    assert provenance["point"] == "sig_400_100" and len(provenance["contours"]) == 2
    assert figure.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "spec, message",
    [("mu_SIG=0:3", "NAME=START:STOP:COUNT"), ("=0:3:5", "NAME=START:STOP:COUNT")],
)
def test_cli_rejects_bad_grid_specs_in_one_line(spec, message):
    result = CliRunner().invoke(
        main, ["profile", EXAMPLE, "--patchset", PATCHSET, "--point", "sig_400_100", "--par", spec]
    )
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
