"""The union structure of a scan's points (hfpipe/scanning/union.py, DESIGN.md §2), tested
directly on a tiny background and a few hand-made signal points.

The scan tests (test_scan.py) show that batching over a union changes no result; these
tests pin the invariants that make it so, one by one: a padded free parameter is fixed at
its initial value, a padded staterror entry stays out of its bin's combined width, padded
normsys and histosys act with no effect, per-point parameters get one canonical name,
``padding_twice_nll`` is exactly what the padded constraints add to -2 log L, and points
that cannot share a structure are put in groups of their own.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from hfpipe import spec
from hfpipe.model import Model, Numbers, compile_workspace
from hfpipe.scanning import unify
from hfpipe.spec.modifiers import MODIFIERS

#: control region CR (1 bin) and signal region SR (2 bins), one background sample each
BACKGROUND: dict = {
    "channels": [
        {
            "name": "CR",
            "samples": [
                {
                    "name": "bkg",
                    "data": [100.0],
                    "modifiers": [{"name": "mu_bkg", "type": "normfactor", "data": None}],
                }
            ],
        },
        {
            "name": "SR",
            "samples": [
                {
                    "name": "bkg",
                    "data": [50.0, 20.0],
                    "modifiers": [
                        {"name": "mu_bkg", "type": "normfactor", "data": None},
                        {"name": "staterror_SR", "type": "staterror", "data": [3.0, 2.0]},
                        {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                    ],
                }
            ],
        },
    ],
    "observations": [{"name": "CR", "data": [102]}, {"name": "SR", "data": [58, 24]}],
    "measurements": [{"name": "meas", "config": {"poi": "mu_SIG", "parameters": []}}],
    "version": "1.0.0",
}

#: the point with every modifier; BARE has the same MC-stat modifier under its own name
FULL_SIGNAL = {
    "name": "sig_full",
    "data": [5.0, 3.0],
    "modifiers": [
        {"name": "mu_SIG", "type": "normfactor", "data": None},
        {"name": "staterror_SR", "type": "staterror", "data": [1.0, 0.5]},
        {"name": "sig_norm", "type": "normsys", "data": {"hi": 1.2, "lo": 0.85}},
        {
            "name": "sig_shape",
            "type": "histosys",
            "data": {"hi_data": [6.0, 3.5], "lo_data": [4.5, 2.6]},
        },
        {"name": "k_extra", "type": "normfactor", "data": None},
        {"name": "stat_full", "type": "staterror", "data": [0.2, 0.1]},
        {"name": "mcstat_full", "type": "shapesys", "data": [0.5, 0.3]},
    ],
}
BARE_SIGNAL = {
    "name": "sig_bare",
    "data": [4.0, 2.0],
    "modifiers": [
        {"name": "mu_SIG", "type": "normfactor", "data": None},
        {"name": "mcstat_bare", "type": "shapesys", "data": [0.5, 0.4]},
    ],
}
#: canonical names (union.py's docstring): per-point factor parameters are named after the
#: first slot they multiply; the signal sample, absent from the background, is <added 0>
CANONICAL = {
    "k_extra": "normfactor@SR/<added 0>",
    "stat_full": "staterror@SR/<added 0>",
    "mcstat_full": "shapesys@SR/<added 0>",
    "mcstat_bare": "shapesys@SR/<added 0>",
}


def _add_signal(sample: dict, channel: int = 1) -> list[dict]:
    return [{"op": "add", "path": f"/channels/{channel}/samples/-", "value": sample}]


def _compiled(patch: list[dict], **codes) -> tuple:
    patched = spec.apply_patches(copy.deepcopy(BACKGROUND), [patch])
    return compile_workspace(patched, spec.find_measurement(patched), **codes)


def _unify(models: list[tuple]) -> list:
    background_samples = {
        c["name"]: {s["name"] for s in c["samples"]} for c in BACKGROUND["channels"]
    }
    background_parameters = {
        m["name"] for c in BACKGROUND["channels"] for s in c["samples"] for m in s["modifiers"]
    }
    return unify(models, background_samples, background_parameters)


@pytest.fixture(scope="module")
def points() -> list[tuple]:
    """(structure, numbers) of the two points, each compiled on its own."""
    return [_compiled(_add_signal(FULL_SIGNAL)), _compiled(_add_signal(BARE_SIGNAL))]


@pytest.fixture(scope="module")
def batch(points):
    (group,) = _unify(points)
    assert group.members == [0, 1]
    return group


def _member(batch, k: int) -> Numbers:
    return Numbers(*(np.asarray(field)[k] for field in batch.numbers))


def _union_pars(batch, k: int, structure, own_pars) -> np.ndarray:
    """A point's own parameter values in the union's order; the union's padded
    parameters stay at their initial (= fixed) values."""
    pars = np.array(_member(batch, k).init, dtype=float)
    for ps in structure.parameter_sets:
        target = batch.structure.parameter_set(CANONICAL.get(ps.name, ps.name))
        assert target.size == ps.size
        pars[target.start : target.start + ps.size] = own_pars[ps.start : ps.start + ps.size]
    return pars


def _slots_of(structure, sample: str) -> list[int]:
    return [i for i, (_, s, _) in enumerate(structure.slot_labels) if s == sample]


def test_canonical_names_map_per_point_mcstat_parameters_onto_one(points, batch):
    names = [ps.name for ps in batch.structure.parameter_sets]
    assert len(names) == len(set(names))
    assert "shapesys@SR/<added 0>" in names
    assert not {"mcstat_full", "mcstat_bare", "k_extra", "stat_full"} & set(names)
    assert batch.structure.parameter_set("shapesys@SR/<added 0>").size == 2
    # background names and names every point has stay as they are
    assert {"mu_SIG", "mu_bkg", "staterror_SR", "bkg_norm", "sig_norm", "sig_shape"} <= set(names)
    # one union parameter per canonical name: the full point's count, the bare adds none
    assert batch.structure.n_parameters == points[0][0].n_parameters
    # both signal samples are one slot set, and each point's MC-stat taus are its own
    assert {s for _, s, _ in batch.structure.slot_labels} == {"bkg", "<added 0>"}
    shapesys = batch.structure.parameter_set("shapesys@SR/<added 0>")
    poisson = list(batch.structure.poisson_params)
    for k, (structure, numbers) in enumerate(points):
        own = next(ps for ps in structure.parameter_sets if ps.kind == "shapesys")
        own_rows = [list(structure.poisson_params).index(own.start + i) for i in range(2)]
        rows = [poisson.index(shapesys.start + i) for i in range(2)]
        np.testing.assert_array_equal(
            np.asarray(batch.numbers.poisson_factor)[k, rows], numbers.poisson_factor[own_rows]
        )
    np.testing.assert_allclose(
        np.asarray(batch.numbers.poisson_factor)[:, rows], [[100.0, 100.0], [64.0, 25.0]]
    )


def test_a_padded_free_parameter_is_fixed_at_its_initial_value(batch):
    ps = batch.structure.parameter_set("normfactor@SR/<added 0>")
    full, bare = _member(batch, 0), _member(batch, 1)
    assert not full.fixed[ps.start] and bare.fixed[ps.start]
    assert bare.init[ps.start] == MODIFIERS["normfactor"].init == 1.0
    assert (bare.lower[ps.start], bare.upper[ps.start]) == MODIFIERS["normfactor"].bounds
    row = list(batch.structure.factor_params).index(ps.start)
    assert full.factor_mask[row].any() and not bare.factor_mask[row].any()
    # parameters a point has keep its own settings: mu_SIG is free at both
    poi = batch.structure.poi_index
    assert not full.fixed[poi] and not bare.fixed[poi]


def test_a_padded_staterror_entry_stays_out_of_the_combined_width(points, batch):
    """pyhf's width sqrt(Σ δ²) / Σ nominal runs over the samples that carry the modifier:
    at the bare point the signal slot is padded and only the background counts."""
    staterror = batch.structure.parameter_set("staterror_SR")
    normal = list(batch.structure.normal_params)
    rows = [normal.index(staterror.start + i) for i in range(staterror.size)]
    sigmas = np.asarray(batch.numbers.normal_sigma)[:, rows]
    np.testing.assert_allclose(
        sigmas[0], [math.hypot(3.0, 1.0) / 55.0, math.hypot(2.0, 0.5) / 23.0], rtol=1e-14
    )
    np.testing.assert_allclose(sigmas[1], [3.0 / 50.0, 2.0 / 20.0], rtol=1e-14)
    for k, (structure, numbers) in enumerate(points):  # each point's own width
        own = structure.parameter_set("staterror_SR")
        own_rows = [list(structure.normal_params).index(own.start + i) for i in range(2)]
        np.testing.assert_array_equal(sigmas[k], numbers.normal_sigma[own_rows])
    # the padded slot is not multiplied by staterror_SR at the bare point
    signal = _slots_of(batch.structure, "<added 0>")
    factor_rows = [list(batch.structure.factor_params).index(staterror.start + i) for i in range(2)]
    mask = np.asarray(batch.numbers.factor_mask)
    assert mask[0][np.ix_(factor_rows, signal)].any()
    assert not mask[1][np.ix_(factor_rows, signal)].any()
    # a staterror the bare point lacks entirely: fixed at 1, width 1, auxdatum 1
    padded = batch.structure.parameter_set("staterror@SR/<added 0>")
    bare = _member(batch, 1)
    for i in range(padded.size):
        q = padded.start + i
        position = normal.index(q)
        assert bare.fixed[q] and bare.init[q] == 1.0
        assert bare.normal_sigma[position] == 1.0
        assert bare.auxdata[batch.structure.normal_aux[position]] == 1.0


def test_padded_normsys_and_histosys_have_no_effect(points, batch):
    bare = _member(batch, 1)
    for name, rows, hi, lo, neutral in [
        ("sig_norm", batch.structure.normsys_params, bare.normsys_hi, bare.normsys_lo, 1.0),
        ("sig_shape", batch.structure.histosys_params, bare.histosys_up, bare.histosys_down, 0.0),
    ]:
        q = batch.structure.parameter_set(name).start
        row = list(rows).index(q)
        assert np.all(hi[row] == neutral) and np.all(lo[row] == neutral), name
        assert bare.fixed[q] and bare.init[q] == 0.0, name
        position = list(batch.structure.normal_params).index(q)
        assert bare.normal_sigma[position] == 1.0
        assert bare.auxdata[batch.structure.normal_aux[position]] == 0.0
    # the full point's own variations are there, on its signal slots only
    full = _member(batch, 0)
    row = list(batch.structure.normsys_params).index(
        batch.structure.parameter_set("sig_norm").start
    )
    signal = _slots_of(batch.structure, "<added 0>")
    np.testing.assert_array_equal(full.normsys_hi[row, signal], [1.2, 1.2])
    background = _slots_of(batch.structure, "bkg")
    assert np.all(full.normsys_hi[row, background] == 1.0)


def test_padded_parameters_change_no_expected_count(points, batch):
    """Whatever values the padded parameters take, the bare point's expected counts in the
    union are those of its own model (at its own parameters)."""
    structure, numbers = points[1]
    own = Model(structure, numbers)
    rng = np.random.default_rng(7)
    own_pars = numbers.init + rng.uniform(-0.2, 0.2, structure.n_parameters)
    union = Model(batch.structure, _member(batch, 1))
    pars = _union_pars(batch, 1, structure, own_pars)
    expected = np.asarray(own.expected_data(own_pars, include_auxdata=False))
    padded = np.asarray(union.fixed()) & ~np.isin(
        np.arange(batch.structure.n_parameters), _own_positions(batch, structure)
    )
    assert padded.sum() == 5  # sig_norm, sig_shape, the extra normfactor, stat_full[0, 1]
    for _ in range(3):
        shaken = pars.copy()
        shaken[padded] = rng.uniform(0.5, 1.5, padded.sum())
        got = np.asarray(union.expected_data(shaken, include_auxdata=False))
        np.testing.assert_allclose(got, expected, rtol=1e-13)


def _own_positions(batch, structure) -> list[int]:
    """The union positions of a point's own parameters."""
    positions = []
    for ps in structure.parameter_sets:
        target = batch.structure.parameter_set(CANONICAL.get(ps.name, ps.name))
        positions += range(target.start, target.start + ps.size)
    return positions


def test_padding_twice_nll_is_what_the_padded_constraints_add(points, batch):
    """-2 log L of a point in the union, less padding_twice_nll, is its own model's, at
    any values of its own parameters (the padded ones at their fixed values)."""
    # the bare point lacks sig_norm, sig_shape and the 2 components of stat_full: four
    # unit Gaussians at their mean, log(2 pi) each; the extra normfactor has no constraint
    np.testing.assert_allclose(
        batch.padding_twice_nll, [0.0, 4 * math.log(2 * math.pi)], rtol=1e-15
    )
    rng = np.random.default_rng(3)
    for k, (structure, numbers) in enumerate(points):
        own = Model(structure, numbers)
        union = Model(batch.structure, _member(batch, k))
        for _ in range(3):
            own_pars = numbers.init + rng.uniform(-0.3, 0.3, structure.n_parameters)
            pars = _union_pars(batch, k, structure, own_pars)
            own_value = -2 * float(own.logpdf(own_pars, own.observed_data()))
            union_value = -2 * float(union.logpdf(pars, union.observed_data()))
            assert union_value - batch.padding_twice_nll[k] == pytest.approx(own_value, rel=1e-12)


def test_a_padded_shapesys_adds_the_poisson_constant():
    """A per-bin Poisson constraint a point lacks: tau 1, auxdatum 1, gamma fixed at 1,
    -2 log Poisson(1; 1) = 2 (continuous normalisation) per bin."""
    with_mcstat = _compiled(_add_signal(BARE_SIGNAL))
    without = copy.deepcopy(BARE_SIGNAL)
    without["modifiers"] = without["modifiers"][:1]
    (group,) = _unify([with_mcstat, _compiled(_add_signal(without))])
    np.testing.assert_allclose(group.padding_twice_nll, [0.0, 4.0], rtol=1e-15)
    q = group.structure.parameter_set("shapesys@SR/<added 0>").start
    lacking = _member(group, 1)
    position = list(group.structure.poisson_params).index(q)
    assert lacking.fixed[q] and lacking.init[q] == 1.0
    assert lacking.poisson_factor[position] == 1.0
    assert lacking.auxdata[group.structure.poisson_aux[position]] == 1.0


def test_points_that_cannot_share_a_structure_form_groups_of_their_own(points):
    new_channel = [
        {
            "op": "add",
            "path": "/channels/-",
            "value": {"name": "VR", "samples": [dict(BARE_SIGNAL, data=[1.0, 1.0])]},
        },
        {"op": "add", "path": "/observations/-", "value": {"name": "VR", "data": [1, 2]}},
    ]
    groups = _unify([points[0], _compiled(new_channel), points[1]])
    assert [g.members for g in groups] == [[0, 2], [1]]
    assert groups[1].structure.channels == ("CR", "SR", "VR")
    assert all(len(np.asarray(g.numbers.nominal)) == len(g.members) for g in groups)

    # a parameter every point has ("sf"), with 2 components at one point and 1 at another
    def shapefactor_in(channel: int, bins: int) -> tuple:
        sample = {
            "name": "sig",
            "data": [1.0] * bins,
            "modifiers": [
                {"name": "mu_SIG", "type": "normfactor", "data": None},
                {"name": "sf", "type": "shapefactor", "data": None},
            ],
        }
        return _compiled(_add_signal(sample, channel))

    groups = _unify([shapefactor_in(1, 2), shapefactor_in(0, 1), shapefactor_in(1, 2)])
    assert [g.members for g in groups] == [[0, 2], [1]]
    assert [g.structure.parameter_set("sf").size for g in groups] == [2, 1]

    # other interpolation codes are another compiled function
    code1 = _compiled(_add_signal(FULL_SIGNAL), normsys_code="code1")
    groups = _unify([points[0], code1])
    assert [g.members for g in groups] == [[0], [1]]
    assert [g.structure.normsys_code for g in groups] == ["code4", "code1"]
