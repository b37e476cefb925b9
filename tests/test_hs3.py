"""HS3 v0.2 conversion: pyhf → HS3 → pyhf keeps the likelihood; HS3 twins give the same CLs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pyhf
import pytest
from click.testing import CliRunner

from hfpipe import spec
from hfpipe.cli import main
from hfpipe.errors import InputError
from hfpipe.infer import hypotest
from hfpipe.model import compile_model

#: every modifier type, per-bin settings, a fixed parameter and a lumi constraint
ALL_MODIFIERS = {
    "channels": [
        {
            "name": "SR",
            "samples": [
                {
                    "name": "signal",
                    "data": [5.0, 3.0, 1.0],
                    "modifiers": [
                        {"name": "mu", "type": "normfactor", "data": None},
                        {"name": "lumi", "type": "lumi", "data": None},
                        {"name": "staterror_SR", "type": "staterror", "data": [0.5, 0.4, 0.2]},
                    ],
                },
                {
                    "name": "bkg",
                    "data": [50.0, 30.0, 12.0],
                    "modifiers": [
                        {"name": "lumi", "type": "lumi", "data": None},
                        {"name": "jes", "type": "normsys", "data": {"hi": 1.1, "lo": 0.85}},
                        {
                            "name": "shape",
                            "type": "histosys",
                            "data": {"hi_data": [52.0, 31.0, 11.0], "lo_data": [47.0, 29.5, 13.0]},
                        },
                        {"name": "staterror_SR", "type": "staterror", "data": [2.0, 1.5, 1.0]},
                        {"name": "mcstat", "type": "shapesys", "data": [3.0, 2.0, 1.5]},
                    ],
                },
            ],
        },
        {
            "name": "CR",
            "samples": [
                {
                    "name": "bkg",
                    "data": [200.0, 150.0],
                    "modifiers": [
                        {"name": "jes", "type": "normsys", "data": {"hi": 1.05, "lo": 0.96}},
                        {"name": "cr_shape", "type": "shapefactor", "data": None},
                        {"name": "k_bkg", "type": "normfactor", "data": None},
                    ],
                }
            ],
        },
    ],
    "observations": [
        {"name": "SR", "data": [58.0, 31.0, 14.0]},
        {"name": "CR", "data": [205.0, 149.0]},
    ],
    "measurements": [
        {
            "name": "meas",
            "config": {
                "poi": "mu",
                "parameters": [
                    {
                        "name": "lumi",
                        "auxdata": [1.0],
                        "sigmas": [0.02],
                        "bounds": [[0.9, 1.1]],
                        "inits": [1.0],
                    },
                    {"name": "mu", "bounds": [[-2.0, 20.0]], "inits": [0.5]},
                    {"name": "k_bkg", "fixed": True, "inits": [1.02]},
                    {"name": "cr_shape", "bounds": [[0.0, 5.0], [0.1, 4.0]]},
                ],
            },
        }
    ],
    "version": "1.0.0",
}


def _logpdf_agrees(original: dict, converted: dict) -> None:
    """pyhf's logpdf of both at the same random parameter values (matched by name)."""
    models = [pyhf.Workspace(ws).model() for ws in (original, converted)]
    a, b = models
    assert a.config.poi_name == b.config.poi_name
    assert set(a.config.par_names) == set(b.config.par_names)
    rng = np.random.default_rng(7)
    data_a = pyhf.Workspace(original).data(a)
    data_b = pyhf.Workspace(converted).data(b)
    np.testing.assert_array_equal(data_a, data_b)
    for _ in range(5):
        pars_a = np.array(a.config.suggested_init()) * rng.uniform(0.8, 1.2, a.config.npars)
        by_name = dict(zip(a.config.par_names, pars_a, strict=True))
        pars_b = np.array([by_name[n] for n in b.config.par_names])
        assert float(a.logpdf(pars_a, data_a)[0]) == float(b.logpdf(pars_b, data_b)[0])
    for attr in ("suggested_init", "suggested_bounds", "suggested_fixed"):
        left = dict(zip(a.config.par_names, getattr(a.config, attr)(), strict=True))
        right = dict(zip(b.config.par_names, getattr(b.config, attr)(), strict=True))
        assert left == right, attr


def _round_trip(ws: dict) -> dict:
    document = json.loads(json.dumps(spec.to_hs3(ws)))  # through JSON text, as on disk
    back = spec.from_hs3(document)
    spec.validate_workspace(back)
    return back


def test_round_trip_every_modifier_type():
    _logpdf_agrees(ALL_MODIFIERS, _round_trip(ALL_MODIFIERS))


def test_round_trip_published_likelihoods(load_analysis, shared_data):
    ws, patchset, _ = load_analysis("atlas-3l-erjr")
    signal = spec.apply_patches(ws, [patchset["ERJR_300p0_100p0"]])
    _logpdf_agrees(signal, _round_trip(signal))
    for twin in sorted((shared_data / "hs3").glob("*_hifa.json")):
        original = spec.load_workspace(twin)
        _logpdf_agrees(original, _round_trip(original))


@pytest.mark.parametrize("name", ["correlated", "uncorrelated"])
def test_hs3_twin_gives_same_cls(shared_data, name):
    folder = shared_data / "hs3"
    from_hs3 = spec.from_hs3(spec.load_json(folder / f"simplemodel_{name}-background_hs3.json"))
    results = [
        hypotest(compile_model(ws), 1.0)
        for ws in (
            from_hs3,
            spec.load_workspace(folder / f"simplemodel_{name}-background_hifa.json"),
        )
    ]
    assert all(r.converged[0] for r in results)
    hs3, hifa = results
    assert hs3.cls_obs[0] == pytest.approx(hifa.cls_obs[0], abs=1e-6)
    np.testing.assert_allclose(hs3.cls_exp[0], hifa.cls_exp[0], atol=1e-6)
    # and pyhf agrees on the converted model
    pyhf_cls = pyhf.infer.hypotest(1.0, *_model_and_data(from_hs3), test_stat="qtilde")
    assert float(pyhf_cls) == pytest.approx(hs3.cls_obs[0], abs=1e-4)


def _model_and_data(ws):
    workspace = pyhf.Workspace(ws)
    model = workspace.model()
    return workspace.data(model), model


def test_cli_round_trip(tmp_path):
    source = tmp_path / "ws.json"
    source.write_text(json.dumps(ALL_MODIFIERS))
    runner = CliRunner()
    result = runner.invoke(
        main, ["convert", str(source), "--to", "hs3", "-o", str(tmp_path / "hs3.json")]
    )
    assert result.exit_code == 0, result.output
    hs3 = json.loads((tmp_path / "hs3.json").read_text())
    assert hs3["metadata"]["hs3_version"] == "0.2"
    assert {d["type"] for d in hs3["distributions"]} == {"histfactory_dist", "gaussian_dist"}
    back = tmp_path / "back.json"
    result = runner.invoke(
        main, ["convert", str(tmp_path / "hs3.json"), "--from", "hs3", "-o", str(back)]
    )
    assert result.exit_code == 0, result.output
    _logpdf_agrees(ALL_MODIFIERS, json.loads(back.read_text()))


def _hs3_with(change) -> dict:
    document = copy.deepcopy(spec.to_hs3(ALL_MODIFIERS))
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "path", "problem"),
    [
        (
            lambda d: d["distributions"][0]["samples"][1]["modifiers"][3].update(
                constraint="Poisson"
            ),
            "distributions[0].samples[1].modifiers[3].constraint",
            "staterror with constraint 'Poisson' is not supported",
        ),
        (
            lambda d: d["distributions"][0]["samples"][0]["modifiers"][0].update(type="custom"),
            "distributions[0].samples[0].modifiers[0].type",
            "modifier type 'custom' is not supported",
        ),
        (
            lambda d: d.update(functions=[{"name": "f", "type": "sum"}]),
            "functions",
            "HS3 'functions' are not supported",
        ),
        (
            lambda d: d["distributions"][1].update(type="poisson_dist"),
            "distributions[1].type",
            "distribution type 'poisson_dist' is not supported",
        ),
        (
            lambda d: d["distributions"][0]["samples"][1]["modifiers"][1].update(
                constraint_name="c"
            ),
            "distributions[0].samples[1].modifiers[1]",
            "modifier keys ['constraint_name'] are not supported",
        ),
    ],
)
def test_unsupported_features_fail_with_path(change, path, problem, tmp_path):
    document = _hs3_with(change)
    with pytest.raises(InputError) as error:
        spec.from_hs3(document, file="model.json")
    assert str(error.value).startswith(f"model.json: {path}: {problem}")
    (tmp_path / "bad.json").write_text(json.dumps(document))
    result = CliRunner().invoke(
        main, ["convert", str(tmp_path / "bad.json"), "--from", "hs3", "-o", "x.json"]
    )
    assert result.exit_code == 2 and result.output.count("\n") == 1 and path in result.output


def test_per_bin_name_reused_across_channels_gets_one_name_per_channel():
    """ROOT may call every channel's staterror "mcstat"; pyhf needs one name per set."""

    def add_cr_staterror(document):
        sample = document["distributions"][1]["samples"][0]
        sample["data"]["errors"] = [4.0, 3.0]
        sample["modifiers"].append(
            {"type": "staterror", "name": "staterror_SR", "parameters": ["c0", "c1"]}
        )

    ws = spec.from_hs3(_hs3_with(add_cr_staterror))
    spec.validate_workspace(ws)
    cr = ws["channels"][1]["samples"][0]["modifiers"][-1]
    assert cr == {"name": "staterror_SR_CR", "type": "staterror", "data": [4.0, 3.0]}
    assert pyhf.Workspace(ws).model().config.param_set("staterror_SR_CR").n_parameters == 2
