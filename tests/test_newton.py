"""The minimiser's Fisher-scoring phase (hfpipe/infer/newton.py): its direction solves
the damped Fisher system, and fits that score first end where Newton's method ends."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from hfpipe import spec
from hfpipe.infer import newton
from hfpipe.infer.fit import FitOptions, fit_batch, fit_datasets
from hfpipe.infer.toys import sample_toys, toy_keys
from hfpipe.model import compile_model
from hfpipe.model.likelihood import (
    Information,
    prepare,
    twice_nll_derivatives,
    twice_nll_information,
    unconstrained_parameters,
)

EXAMPLE = Path(__file__).parents[1] / "examples" / "example"


def _example_model():
    workspace = spec.load_workspace(EXAMPLE / "BkgOnly.json")
    patchset = spec.load_patchset(EXAMPLE / "patchset.json")
    return compile_model(workspace, patches=[patchset["sig_500_200"]])


def test_scoring_direction_solves_the_damped_fisher_system():
    """Against a dense solve of (F + λ diag(scale)) d = -g over the parameters not held,
    F = 2 (Jᵀ W J + diag c), with unconstrained parameters (c = 0) and a held one."""
    rng = np.random.default_rng(3)
    bins, parameters = 3, 7
    jacobian = rng.normal(size=(bins, parameters))
    weight = rng.uniform(0.5, 2.0, bins)
    constraint = rng.uniform(0.5, 3.0, parameters)
    unconstrained = np.array([1, 4])
    constraint[unconstrained] = 0.0
    held = np.zeros(parameters, bool)
    held[5] = True
    g = rng.normal(size=parameters)
    information = Information(jnp.asarray(jacobian), jnp.asarray(weight), jnp.asarray(constraint))
    keep = ~held
    fisher = 2.0 * (jacobian.T @ np.diag(weight) @ jacobian + np.diag(constraint))
    for damping in (0.0, 0.1):
        direction, edm = newton._scoring_direction(
            jnp.asarray(g), information, jnp.asarray(unconstrained), jnp.asarray(held), damping
        )
        matrix = fisher[np.ix_(keep, keep)]
        diagonal = np.diag(matrix)
        matrix = matrix + damping * np.diag(np.maximum(diagonal, 1e-8 * diagonal.max()))
        expected = np.zeros(parameters)
        expected[keep] = -np.linalg.solve(matrix, g[keep])
        np.testing.assert_allclose(direction, expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(float(edm), -0.5 * g[keep] @ expected[keep], rtol=1e-12)
    # no information at all on a free parameter: unusable, not a wrong step
    information = information._replace(jacobian=information.jacobian.at[:, 1].set(0.0))
    direction, edm = newton._scoring_direction(
        jnp.asarray(g), information, jnp.asarray(unconstrained), jnp.asarray(held), 0.0
    )
    assert not np.isfinite(float(edm)) and not np.any(np.asarray(direction))


def test_fits_score_first_and_finish_with_newton_steps():
    """A fit with scoring: Fisher scoring from the start, then Newton steps until the
    Hessian's EDM is below the tolerance; it ends where plain Newton ends."""
    model = _example_model()
    structure, numbers = model.structure, model.numbers
    layout, prepared = structure.layout, prepare(structure.layout, numbers)
    data = sample_toys(structure, numbers, numbers.init, toy_keys(5, 0, 0, 1))
    tolerance = 1e-9
    bounds = (numbers.lower[None], numbers.upper[None], jnp.asarray(numbers.fixed)[None])

    def derivatives(x):
        return jax.vmap(lambda y: twice_nll_derivatives(layout, prepared, y, data[0]))(x)

    def information(x):
        return jax.vmap(lambda y: twice_nll_information(layout, prepared, y, data[0]))(x)

    scoring = newton.Scoring(information, jnp.asarray(unconstrained_parameters(layout)), tolerance)
    step = jax.jit(lambda s: newton.step(derivatives, s, *bounds, scoring=scoring))
    state = newton.initial_state(jnp.asarray(numbers.init)[None], *bounds[:2], scoring=True)
    phases = []
    while not newton.finished(state, max_iterations=50, edm_tolerance=tolerance, max_halvings=30):
        phases.append("S" if bool(state.scoring[0]) else "N")
        state = step(state)
    phases = "".join(phases)
    assert phases.startswith("SS") and phases.endswith("N"), phases
    assert phases.rstrip("N").count("N") == 0, phases  # scoring, then Newton only
    found = newton.result(state, tolerance)
    assert bool(found.converged[0])
    plain = fit_batch(structure, numbers, data, options=FitOptions(retry=False))
    np.testing.assert_allclose(found.fun[0], plain.twice_nll[0], rtol=0, atol=1e-8)
    np.testing.assert_allclose(found.x[0], plain.pars[0], rtol=0, atol=1e-4)


def test_one_lane_fits_agree_with_newton_fits():
    """fit_datasets on one lane (scoring) and fit_batch (Newton throughout) reach the
    same minima of toys of both hypotheses, free and with the POI fixed."""
    model = _example_model()
    structure, numbers = model.structure, model.numbers
    n = 60
    pars = np.array(numbers.init, dtype=float)
    data = np.concatenate(
        [
            sample_toys(structure, numbers, np.where(np.arange(len(pars)) == poi, mu, pars), keys)
            for poi, mu, keys in (
                (structure.poi_index, 1.0, toy_keys(2, 0, 0, n)),
                (structure.poi_index, 0.0, toy_keys(2, 1, 0, n)),
            )
        ]
    )
    fixed = np.tile(np.asarray(numbers.fixed, dtype=bool), (2 * n, 1))
    fixed[::2, structure.poi_index] = True
    options = FitOptions(retry=False)
    lanes = fit_datasets(structure, numbers, data, lanes=1, fixed=fixed, options=options)
    plain = fit_batch(structure, numbers, data, fixed=fixed, options=options)
    assert lanes.converged.all() and plain.converged.all()
    np.testing.assert_allclose(lanes.twice_nll, plain.twice_nll, rtol=0, atol=1e-8)
    np.testing.assert_allclose(lanes.pars, plain.pars, rtol=0, atol=1e-4)
