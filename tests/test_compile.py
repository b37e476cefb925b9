"""hfpipe/model/compile.py: compiling a scan's points with the background compiled once
(SampleCache) changes nothing; the compiled parameters, their order, names and settings,
and the constraint data of each modifier type are pyhf 0.7.6's."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from hfpipe import spec
from hfpipe.errors import InvalidWorkspace
from hfpipe.model import Model, Numbers, SampleCache, compile_workspace


@pytest.mark.parametrize(("analysis", "every"), [("atlas-3l-erjr", 1), ("atlas-1lbb", 10)])
def test_reused_background_compiles_bit_for_bit(load_analysis, analysis, every):
    """Every 3L-eRJR point and every tenth 1Lbb point: the structure is equal and every
    array the same bytes as compiling each sample afresh."""
    ws, ps, _ = load_analysis(analysis)
    base = spec.PatchBase.of(ws)
    cache = SampleCache(base.workspace)
    for patch in list(ps)[::every]:
        patched = spec.apply_patches(base, [patch])
        measurement = spec.find_measurement(patched)
        structure, numbers = compile_workspace(patched, measurement, cache=cache)
        expected_structure, expected_numbers = compile_workspace(patched, measurement)
        assert structure == expected_structure
        for name, array, expected in zip(Numbers._fields, numbers, expected_numbers, strict=True):
            assert isinstance(array, np.ndarray), name
            assert array.dtype == expected.dtype, name
            assert array.shape == expected.shape, name
            assert array.tobytes() == expected.tobytes(), name
    _assert_reused(cache, base.workspace, patched)


def _assert_reused(cache: SampleCache, background: dict, patched: dict) -> None:
    """The background's samples come from the cache (the same object every time), the
    patch's own are compiled anew."""
    samples = [sample for channel in patched["channels"] for sample in channel["samples"]]
    ids = {id(s) for channel in background["channels"] for s in channel["samples"]}
    reused = [s for s in samples if id(s) in ids]
    new = [s for s in samples if id(s) not in ids]
    assert reused and new
    assert all(cache.get(sample) is cache.get(sample) for sample in reused)
    assert all(cache.get(sample) is not cache.get(sample) for sample in new)


def test_cache_ignores_a_sample_that_only_looks_alike():
    """Identity, not equality: an equal copy of a cached sample is compiled anew."""
    sample = {
        "name": "b",
        "data": [1.0],
        "modifiers": [{"name": "n", "type": "normfactor", "data": None}],
    }
    workspace = {"channels": [{"name": "c", "samples": [sample]}]}
    cache = SampleCache(workspace)
    assert cache.get(sample) is cache.get(sample)
    twin = {**sample}
    assert cache.get(twin) is not cache.get(sample)


# --- compile_workspace against pyhf 0.7.6's model config, modifier by modifier ----------


def _sample(name: str, data: list, *modifiers: tuple) -> dict:
    """A sample with modifiers given as (name, type, data)."""
    return {"name": name, "data": data, "modifiers": [_modifier(*m) for m in modifiers]}


def _modifier(name: str, kind: str, data=None) -> dict:
    return {"name": name, "type": kind, "data": data}


def _workspace(channels: dict, observations: dict, parameters=(), poi="mu") -> dict:
    """Channels and samples in the order given (pyhf sorts both by name)."""
    return {
        "channels": [{"name": name, "samples": samples} for name, samples in channels.items()],
        "observations": [{"name": name, "data": data} for name, data in observations.items()],
        "measurements": [{"name": "meas", "config": {"poi": poi, "parameters": list(parameters)}}],
        "version": "1.0.0",
    }


NORM = {"hi": 1.1, "lo": 0.92}
LUMI = {"name": "lumi", "auxdata": [1.0], "sigmas": [0.017], "bounds": [[0.9, 1.1]], "inits": [1.0]}

#: every modifier type, channels, samples and modifiers out of name order, two staterror
#: names whose order differs from the order first met, one name shared by a normsys and
#: a histosys
EVERY_TYPE = _workspace(
    {
        "SR": [
            _sample(
                "wjets",
                [20.0, 10.0],
                ("zz_norm", "normsys", NORM),
                ("staterror_SR", "staterror", [2.0, 1.0]),
                ("lumi", "lumi"),
                ("shared", "histosys", {"hi_data": [21.0, 11.0], "lo_data": [19.0, 9.5]}),
            ),
            _sample(
                "signal",
                [3.0, 6.0],
                ("mu", "normfactor"),
                ("lumi", "lumi"),
                ("sig_shape", "shapefactor"),
            ),
            _sample(
                "ttbar",
                [40.0, 25.0],
                ("staterror_SR", "staterror", [3.0, 0.0]),
                ("shared", "normsys", {"hi": 1.05, "lo": 0.97}),
                ("a_norm", "normsys", NORM),
                ("k_tt", "normfactor"),
                ("lumi", "lumi"),
            ),
        ],
        "CR": [
            _sample(
                "ttbar",
                [200.0],
                ("k_tt", "normfactor"),
                ("zstat_CR", "staterror", [5.0]),
                ("uncorr", "shapesys", [10.0]),
            ),
        ],
    },
    {"SR": [70, 40], "CR": [205]},
    [LUMI],
)


def _pyhf(workspace: dict, normsys="code4", histosys="code4p"):
    pyhf = pytest.importorskip("pyhf")
    settings = {"normsys": {"interpcode": normsys}, "histosys": {"interpcode": histosys}}
    return pyhf.Workspace(workspace).model(modifier_settings=settings)


def _ours(workspace: dict, **codes):
    validated = spec.load_workspace(workspace)
    return compile_workspace(validated, spec.find_measurement(validated), **codes)


def _example_point() -> dict:
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "examples" / "example"
    patchset = spec.load_patchset(folder / "patchset.json")
    return spec.apply_patches(spec.load_workspace(folder / "BkgOnly.json"), [next(iter(patchset))])


def _base() -> dict:
    from spec_helpers import base

    return base()


@pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")
@pytest.mark.parametrize(
    "make", [lambda: EVERY_TYPE, _base, _example_point], ids=["every-type", "spec-base", "example"]
)
def test_parameters_are_pyhfs_in_order_names_and_settings(make):
    """par_order, par_names, sizes, inits, bounds, fixed and constraint data as pyhf's
    model config has them."""
    workspace = make()
    structure, numbers = _ours(workspace)
    config = _pyhf(workspace).config
    assert [ps.name for ps in structure.parameter_sets] == list(config.par_order)
    assert list(structure.parameter_names) == list(config.par_names)
    for ps in structure.parameter_sets:
        assert config.par_slice(ps.name) == slice(ps.start, ps.start + ps.size), ps.name
        reference = config.param_set(ps.name)
        assert ps.constraint == (reference.pdf_type if reference.constrained else None), ps.name
    np.testing.assert_array_equal(numbers.init, config.suggested_init())
    np.testing.assert_array_equal(
        np.stack([numbers.lower, numbers.upper], 1), config.suggested_bounds()
    )
    assert list(numbers.fixed) == list(config.suggested_fixed())
    assert structure.poi_name == config.poi_name and structure.poi_index == config.poi_index
    assert structure.channels == tuple(config.channels)
    assert structure.channel_bins == tuple(config.channel_nbins[c] for c in config.channels)
    # constraint data in pyhf's auxdata order: the auxdata, Gaussian widths, Poisson taus
    aux, sigmas, taus = [], [], []
    for name in config.auxdata_order:
        reference = config.param_set(name)
        aux += list(reference.auxdata)
        if reference.pdf_type == "poisson":
            taus += list(reference.factors)
        else:
            sigmas += list(reference.width())
    np.testing.assert_allclose(numbers.auxdata, aux, rtol=1e-15)
    np.testing.assert_allclose(numbers.normal_sigma, sigmas, rtol=1e-15)
    np.testing.assert_allclose(numbers.poisson_factor, taus, rtol=1e-15)


def _sigmas(structure, numbers, name: str) -> np.ndarray:
    ps = structure.parameter_set(name)
    rows = [list(structure.normal_params).index(ps.start + k) for k in range(ps.size)]
    return numbers.normal_sigma[rows]


def test_staterror_width_combines_the_samples_that_carry_it():
    """sqrt(Σ δ²) / Σ nominal over the samples carrying the modifier, per bin; a sample
    without it stays out of both sums; a bin of zero width is fixed with width 1."""
    workspace = _workspace(
        {
            "SR": [
                _sample(
                    "a",
                    [10.0, 20.0, 5.0],
                    ("mu", "normfactor"),
                    ("stat", "staterror", [1.0, 2.0, 0.0]),
                ),
                _sample("b", [30.0, 5.0, 5.0], ("stat", "staterror", [2.0, 0.5, 0.0])),
                _sample("c", [1000.0, 1000.0, 1000.0]),  # no staterror: not in the width
            ],
        },
        {"SR": [1040, 1025, 1010]},
    )
    structure, numbers = _ours(workspace)
    expected = [math.hypot(1.0, 2.0) / 40.0, math.hypot(2.0, 0.5) / 25.0, 1.0]
    np.testing.assert_allclose(_sigmas(structure, numbers, "stat"), expected, rtol=1e-15)
    stat = structure.parameter_set("stat")
    assert list(numbers.fixed[stat.start : stat.start + 3]) == [False, False, True]
    reference = _pyhf(workspace).config
    np.testing.assert_allclose(
        _sigmas(structure, numbers, "stat"), reference.param_set("stat").width(), rtol=1e-15
    )
    assert list(numbers.fixed) == list(reference.suggested_fixed())
    # it multiplies the slots of a and b, not c
    row = list(structure.factor_params).index(stat.start)
    assert {structure.slot_labels[i][1] for i in np.flatnonzero(numbers.factor_mask[row])} == {
        "a",
        "b",
    }


def test_staterror_over_two_channels_orders_components_by_channel():
    workspace = _workspace(
        {
            "SR": [
                _sample(
                    "bkg", [10.0, 20.0], ("mu", "normfactor"), ("stat", "staterror", [1.0, 4.0])
                )
            ],
            "CR": [_sample("bkg", [50.0], ("stat", "staterror", [5.0]))],
        },
        {"SR": [10, 20], "CR": [50]},
    )
    structure, numbers = _ours(workspace)
    assert structure.channels == ("CR", "SR")
    np.testing.assert_allclose(_sigmas(structure, numbers, "stat"), [0.1, 0.1, 0.2], rtol=1e-15)
    np.testing.assert_allclose(
        _sigmas(structure, numbers, "stat"),
        _pyhf(workspace).config.param_set("stat").width(),
        rtol=1e-15,
    )


def test_shapesys_tau_and_fixed_zero_bins():
    """tau = (nominal / δ)², the auxdatum tau; a bin with zero nominal or zero δ is fixed
    (tau 1), as pyhf fixes it."""
    workspace = _workspace(
        {
            "SR": [
                _sample("sig", [1.0, 1.0, 1.0], ("mu", "normfactor")),
                _sample("bkg", [50.0, 20.0, 0.0], ("unc", "shapesys", [5.0, 0.0, 2.0])),
            ]
        },
        {"SR": [51, 21, 1]},
    )
    structure, numbers = _ours(workspace)
    unc = structure.parameter_set("unc")
    assert unc.constraint == "poisson" and unc.size == 3
    np.testing.assert_array_equal(numbers.poisson_factor, [100.0, 1.0, 1.0])
    np.testing.assert_array_equal(numbers.auxdata, [100.0, 1.0, 1.0])
    assert list(numbers.fixed[unc.start : unc.start + 3]) == [False, True, True]
    reference = _pyhf(workspace).config
    np.testing.assert_array_equal(numbers.poisson_factor, reference.param_set("unc").factors)
    assert list(numbers.fixed) == list(reference.suggested_fixed())


def test_measurement_parameters_override_the_defaults():
    parameters = [
        {"name": "mu", "inits": [2.0], "bounds": [[-1.0, 5.0]]},
        LUMI,
        {"name": "zz_norm", "fixed": True, "inits": [0.5]},
        {"name": "staterror_SR", "inits": [1.1, 0.9], "bounds": [[0.5, 1.5], [0.8, 1.2]]},
        {"name": "k_tt", "bounds": [[1.3, 1.3]], "inits": [1.3]},  # equal bounds hold it
        {"name": "a_norm", "auxdata": [0.25]},
        {"name": "zstat_CR", "sigmas": [0.2]},
    ]
    workspace = copy.deepcopy(EVERY_TYPE)
    workspace["measurements"][0]["config"]["parameters"] = parameters
    structure, numbers = _ours(workspace)

    def at(name, array):
        ps = structure.parameter_set(name)
        return list(np.asarray(array)[ps.start : ps.start + ps.size])

    assert at("mu", numbers.init) == [2.0] and at("mu", numbers.lower) == [-1.0]
    assert at("mu", numbers.upper) == [5.0] and at("mu", numbers.fixed) == [False]
    assert at("zz_norm", numbers.fixed) == [True] and at("zz_norm", numbers.init) == [0.5]
    assert at("staterror_SR", numbers.init) == [1.1, 0.9]
    assert at("staterror_SR", numbers.lower) == [0.5, 0.8]
    assert at("k_tt", numbers.fixed) == [True]
    lumi = structure.parameter_set("lumi").start
    position = list(structure.normal_params).index(lumi)
    assert numbers.normal_sigma[position] == 0.017
    a_norm = list(structure.normal_params).index(structure.parameter_set("a_norm").start)
    assert numbers.auxdata[structure.normal_aux[a_norm]] == 0.25
    assert list(_sigmas(structure, numbers, "zstat_CR")) == [0.2]
    # and all of it as pyhf reads the measurement
    config = _pyhf(workspace).config
    np.testing.assert_array_equal(numbers.init, config.suggested_init())
    np.testing.assert_array_equal(
        np.stack([numbers.lower, numbers.upper], 1), config.suggested_bounds()
    )
    assert list(numbers.fixed) == [
        f or lo == hi
        for f, (lo, hi) in zip(config.suggested_fixed(), config.suggested_bounds(), strict=True)
    ]
    np.testing.assert_allclose(numbers.auxdata, config.auxdata, rtol=1e-15)
    assert list(_sigmas(structure, numbers, "zstat_CR")) == list(
        config.param_set("zstat_CR").width()
    )


def test_a_normsys_and_a_histosys_of_one_name_are_one_parameter():
    structure, numbers = _ours(EVERY_TYPE)
    shared = structure.parameter_set("shared")
    assert shared.size == 1 and structure.parameter_names.count("shared") == 1
    assert shared.start in structure.normsys_params and shared.start in structure.histosys_params
    assert sum(1 for n in structure.parameter_names if n == "shared") == 1
    # the normsys acts on ttbar's slots, the histosys on wjets'
    labels = structure.slot_labels
    normsys_row = list(structure.normsys_params).index(shared.start)
    histosys_row = list(structure.histosys_params).index(shared.start)
    moved_by_normsys = {
        labels[i][1] for i in np.flatnonzero(numbers.normsys_hi[normsys_row] != 1.0)
    }
    moved_by_histosys = {
        labels[i][1] for i in np.flatnonzero(numbers.histosys_up[histosys_row] != 0.0)
    }
    assert moved_by_normsys == {"ttbar"} and moved_by_histosys == {"wjets"}
    # one parameter moving both: expected counts as pyhf's at shared = ±1.5
    model, reference = Model(structure, numbers), _pyhf(EVERY_TYPE)
    for value in (-1.5, 1.5):
        pars = numbers.init.copy()
        pars[shared.start] = value
        np.testing.assert_allclose(
            model.expected_data(pars), reference.expected_data(pars), rtol=1e-12
        )


@pytest.mark.parametrize("other", ["normfactor", "shapesys", "staterror", "lumi"])
def test_other_types_cannot_share_a_name(other):
    """Unvalidated input reaching compile_workspace: only normsys + histosys may share."""
    data = {"shapesys": [1.0], "staterror": [1.0]}.get(other)
    name = "lumi" if other == "lumi" else "x"
    workspace = _workspace(
        {
            "SR": [
                _sample(
                    "a", [10.0], ("mu", "normfactor"), (name, "normsys", NORM), (name, other, data)
                )
            ]
        },
        {"SR": [10]},
    )
    with pytest.raises(InvalidWorkspace, match="only a normsys and a histosys may share a name"):
        compile_workspace(workspace, workspace["measurements"][0], file="ws.json")
