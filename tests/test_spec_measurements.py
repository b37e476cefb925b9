"""hfpipe.spec.measurements: choosing a measurement, and checking its parameter settings
(bounds, inits, auxdata, sigmas, the POI), each error in one line.
"""

from __future__ import annotations

import pytest
from spec_helpers import MEAS, appendp, assert_malformed, assert_one_line, base, delp, setp

from hfpipe.errors import InvalidWorkspace
from hfpipe.spec import SpecWarning, measurement_config, validate_workspace

# pyhf 0.7.6 validates with jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")


def test_measurement_config():
    ws = base()
    lumi = ws["measurements"][0]["config"]["parameters"][0]
    ws["measurements"].append({"name": "other", "config": {"poi": "mu_bkg", "parameters": [lumi]}})
    validate_workspace(ws, strict=True)
    assert measurement_config(ws)["poi"] == "mu"
    assert measurement_config(ws, "other")["poi"] == "mu_bkg"
    config = measurement_config(ws)
    config["poi"] = "changed"
    assert ws["measurements"][0]["config"]["poi"] == "mu"
    with pytest.raises(InvalidWorkspace) as info:
        measurement_config(ws, "nope", file="ws.json")
    assert_one_line(
        info.value, "ws.json", "measurements", "no measurement named 'nope'; known: meas, other"
    )


def test_measurement_config_needs_the_poi_in_the_model():
    ws = base()
    ws["measurements"][0]["config"]["poi"] = "mu_SIG"
    validate_workspace(ws)  # a background-only workspace: fine until a model is built
    with pytest.raises(InvalidWorkspace) as info:
        measurement_config(ws, file="ws.json")
    assert_one_line(info.value, "ws.json", "measurements[0].config.poi", "background-only")


def test_unknown_parameter_setting_warns_unless_strict():
    ws = base()
    ws["measurements"][0]["config"]["parameters"].append({"name": "mu_BG", "fixed": True})
    with pytest.warns(SpecWarning, match=r"parameters\[2\]\.name: no modifier named 'mu_BG'"):
        validate_workspace(ws, file="ws.json")
    with pytest.raises(InvalidWorkspace):
        validate_workspace(ws, strict=True)


WORKSPACE_CASES = [
    pytest.param(
        setp([*MEAS, "parameters", 1, "bounds"], [[5.0, 0.0]]),
        "measurements[0].config.parameters[1].bounds[0]",
        "lower bound 5.0 is not below upper bound 0.0",
        id="bounds-reversed",
    ),
    pytest.param(
        setp([*MEAS, "parameters", 1, "bounds"], [[0.0]]),
        "measurements[0].config.parameters[1].bounds[0]",
        "each bound must be a [low, high] pair of numbers",
        id="bound-not-a-pair",
    ),
    pytest.param(
        setp([*MEAS, "parameters", 1, "inits"], [20.0]),
        "measurements[0].config.parameters[1].inits[0]",
        "initial value 20.0 is outside the bounds [0.0, 10.0]",
        id="init-outside-bounds",
    ),
    pytest.param(
        setp([*MEAS, "parameters", 1], {"name": "mu", "inits": [20.0]}),
        "measurements[0].config.parameters[1].inits[0]",
        "outside the bounds [0.0, 10.0] (pyhf's default for normfactor)",
        id="init-outside-default-bounds",
    ),
    pytest.param(
        appendp([*MEAS, "parameters"], {"name": "mu_bkg", "auxdata": [1.0]}),
        "measurements[0].config.parameters[2].auxdata",
        "normfactor parameter 'mu_bkg' takes no auxdata",
        id="normfactor-auxdata",
    ),
    pytest.param(
        appendp([*MEAS, "parameters"], {"name": "mu", "fixed": True}),
        "measurements[0].config.parameters[2].name",
        "second setting for parameter 'mu'",
        id="duplicate-setting",
    ),
    pytest.param(
        delp([*MEAS, "parameters", 0, "inits"]),
        "measurements[0].config.parameters[0]",
        "must set lumi's auxdata, inits, bounds (missing: inits)",
        id="lumi-without-inits",
    ),
    pytest.param(
        setp([*MEAS, "parameters", 0, "sigmas"], [0.0]),
        "measurements[0].config.parameters[0].sigmas[0]",
        "sigma must be positive",
        id="zero-sigma",
    ),
    pytest.param(
        setp([*MEAS, "poi"], "stat_SR"),
        "measurements[0].config.poi",
        "POI 'stat_SR' is a staterror with 2 components",
        id="vector-poi",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "phrase"), WORKSPACE_CASES)
def test_malformed_workspace(mutate, path, phrase):
    assert_malformed(mutate, path, phrase)


STRICT_CASES = [
    pytest.param(
        setp([*MEAS, "poi"], "mu_SIG"),
        "measurements[0].config.poi",
        "POI 'mu_SIG' is not a parameter of the model (normfactors: mu, mu_bkg)",
        id="unknown-poi",
    ),
    pytest.param(
        appendp([*MEAS, "parameters"], {"name": "mu_BG", "fixed": True}),
        "measurements[0].config.parameters[2].name",
        "no modifier named 'mu_BG' in the model",
        id="unknown-parameter",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "phrase"), STRICT_CASES)
def test_malformed_workspace_strict(mutate, path, phrase):
    assert_malformed(mutate, path, phrase, strict=True)
