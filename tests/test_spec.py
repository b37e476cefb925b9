"""Tests of hfpipe.spec: loading and validating workspaces, patches and patchsets."""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
import math
from collections.abc import Callable
from pathlib import Path

import pyhf
import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource

from hfpipe.errors import (
    DigestMismatch,
    InputError,
    InvalidPatch,
    InvalidPatchset,
    InvalidWorkspace,
)
from hfpipe.spec import (
    Patch,
    PatchBase,
    PatchSet,
    SpecWarning,
    apply_patches,
    load_json,
    load_patch,
    load_patchset,
    load_workspace,
    measurement_config,
    validate_workspace,
    verify_patchset,
    workspace_digest,
)
from hfpipe.spec import schema as schema_module

# pyhf 0.7.6 validates with jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")

# ---------------------------------------------------------------------------------------
# a small workspace using every modifier type but shapefactor, valid for pyhf too


BASE: dict = {
    "channels": [
        {
            "name": "SR",
            "samples": [
                {
                    "name": "signal",
                    "data": [5.0, 3.0],
                    "modifiers": [
                        {"name": "mu", "type": "normfactor", "data": None},
                        {"name": "lumi", "type": "lumi", "data": None},
                    ],
                },
                {
                    "name": "bkg",
                    "data": [50.0, 30.0],
                    "modifiers": [
                        {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                        {
                            "name": "bkg_norm",
                            "type": "histosys",
                            "data": {"hi_data": [52.0, 31.0], "lo_data": [48.0, 29.0]},
                        },
                        {"name": "stat_SR", "type": "staterror", "data": [2.0, 1.5]},
                        {"name": "lumi", "type": "lumi", "data": None},
                    ],
                },
            ],
        },
        {
            "name": "CR",
            "samples": [
                {
                    "name": "bkg",
                    "data": [100.0],
                    "modifiers": [
                        {"name": "uncorr", "type": "shapesys", "data": [5.0]},
                        {"name": "mu_bkg", "type": "normfactor", "data": None},
                    ],
                }
            ],
        },
    ],
    "observations": [{"name": "SR", "data": [53, 35]}, {"name": "CR", "data": [98]}],
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
                        "bounds": [[0.5, 1.5]],
                        "inits": [1.0],
                    },
                    {"name": "mu", "bounds": [[0.0, 10.0]], "inits": [1.0]},
                ],
            },
        }
    ],
    "version": "1.0.0",
}

SR_BKG = ["channels", 0, "samples", 1]
MEAS = ["measurements", 0, "config"]


def base() -> dict:
    return copy.deepcopy(BASE)


def _walk_to(doc, path):
    for part in path[:-1]:
        doc = doc[part]
    return doc, path[-1]


def setp(path: list, value) -> Callable[[dict], None]:
    def mutate(ws: dict) -> None:
        parent, key = _walk_to(ws, path)
        parent[key] = value

    return mutate


def delp(path: list) -> Callable[[dict], None]:
    def mutate(ws: dict) -> None:
        parent, key = _walk_to(ws, path)
        del parent[key]

    return mutate


def appendp(path: list, value) -> Callable[[dict], None]:
    def mutate(ws: dict) -> None:
        parent, key = _walk_to(ws, path)
        parent[key].append(copy.deepcopy(value))

    return mutate


def both(*mutations: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(ws: dict) -> None:
        for mutation in mutations:
            mutation(ws)

    return mutate


def assert_one_line(err: Exception, file: str, path: str, phrase: str) -> None:
    text = str(err)
    assert "\n" not in text, text
    assert text.startswith(f"{file}: "), text
    assert f": {path}: " in text, text
    assert phrase in text, text
    assert err.path == path


# ---------------------------------------------------------------------------------------
# the base workspace


def test_base_workspace_is_valid_for_pyhf_and_hfpipe():
    model = pyhf.Workspace(base()).model()
    assert model.config.poi_name == "mu"
    ws = base()
    assert load_workspace(ws, strict=True) == ws
    assert ws == BASE  # not modified
    assert load_workspace(ws) is not ws


def test_load_workspace_returns_a_deep_copy():
    ws = base()
    loaded = load_workspace(ws)
    loaded["channels"][0]["samples"][0]["data"][0] = 99.0
    assert ws == BASE


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


# ---------------------------------------------------------------------------------------
# malformed workspaces: each error names the file, the JSON path and the problem

_MOD = [*SR_BKG, "modifiers"]

WORKSPACE_CASES = [
    pytest.param(
        setp([*_MOD, 0, "type"], "foo"),
        "channels[0].samples[1].modifiers[0].type",
        "unknown modifier type 'foo' (known: histosys, lumi, normfactor, normsys, shapefactor,",
        id="unknown-modifier-type",
    ),
    pytest.param(
        delp([*_MOD, 0, "data", "lo"]),
        "channels[0].samples[1].modifiers[0].data",
        "normsys data needs 'hi' and 'lo' numbers (missing required key 'lo')",
        id="normsys-without-lo",
    ),
    pytest.param(
        setp([*_MOD, 1, "data"], {"hi_data": [1.0, 2.0]}),
        "channels[0].samples[1].modifiers[1].data",
        "histosys data needs 'hi_data' and 'lo_data'",
        id="histosys-without-lo_data",
    ),
    pytest.param(
        setp([*_MOD, 2, "data"], {"a": 1}),
        "channels[0].samples[1].modifiers[2].data",
        "one uncertainty per bin (expected an array, got an object)",
        id="staterror-data-object",
    ),
    pytest.param(
        setp(["channels", 0, "samples", 0, "modifiers", 0, "data"], [1.0]),
        "channels[0].samples[0].modifiers[0].data",
        "take no data, use null",
        id="normfactor-with-data",
    ),
    pytest.param(
        setp(["channels", 0, "samples", 0, "modifiers", 1, "name"], "luminosity"),
        "channels[0].samples[0].modifiers[1].name",
        "a lumi modifier must be named 'lumi', not 'luminosity'",
        id="lumi-misnamed",
    ),
    pytest.param(
        setp([*SR_BKG, "data", 1], "abc"),
        "channels[0].samples[1].data[1]",
        "expected a number, got 'abc'",
        id="string-in-data",
    ),
    pytest.param(
        delp([*SR_BKG, "data"]),
        "channels[0].samples[1]",
        "missing required key 'data'",
        id="sample-without-data",
    ),
    pytest.param(
        setp(["channels", 0, "colour"], "red"),
        "channels[0]",
        "unknown key 'colour' (allowed: name, samples)",
        id="unknown-key",
    ),
    pytest.param(
        setp(["version"], "2.0.0"),
        "version",
        "unsupported workspace version '2.0.0' (expected '1.0.0')",
        id="version",
    ),
    pytest.param(
        setp(["measurements"], []), "measurements", "must not be empty", id="no-measurement"
    ),
    pytest.param(
        setp([*SR_BKG, "data"], [50.0, 30.0, 10.0]),
        "channels[0].samples[1].data",
        "all samples of channel 'SR' need the same number of bins",
        id="sample-bin-count",
    ),
    pytest.param(
        setp([*_MOD, 1, "data", "hi_data"], [1.0, 2.0, 3.0]),
        "channels[0].samples[1].modifiers[1].data.hi_data",
        "histosys 'bkg_norm' has 3 entries but sample 'bkg' has 2 bins",
        id="histosys-length",
    ),
    pytest.param(
        setp([*_MOD, 2, "data"], [1.0]),
        "channels[0].samples[1].modifiers[2].data",
        "staterror 'stat_SR' has 1 entry but sample 'bkg' has 2 bins",
        id="staterror-length",
    ),
    pytest.param(
        setp(["channels", 1, "name"], "SR"),
        "channels[1].name",
        "duplicate channel name 'SR'",
        id="duplicate-channel",
    ),
    pytest.param(
        setp(["channels", 0, "samples", 0, "name"], "bkg"),
        "channels[0].samples[1].name",
        "duplicate sample name 'bkg' in channel 'SR'",
        id="duplicate-sample",
    ),
    pytest.param(
        appendp(_MOD, {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.2, "lo": 0.8}}),
        "channels[0].samples[1].modifiers[4].name",
        "normsys modifier 'bkg_norm' appears twice in sample 'bkg'",
        id="duplicate-modifier",
    ),
    pytest.param(
        appendp(_MOD, {"name": "mu", "type": "normsys", "data": {"hi": 1.2, "lo": 0.8}}),
        "channels[0].samples[1].modifiers[4].name",
        "modifier name 'mu' is already used by a normfactor modifier",
        id="normfactor-normsys-name-clash",
    ),
    pytest.param(
        appendp(_MOD, {"name": "uncorr", "type": "shapesys", "data": [1.0, 1.0]}),
        "channels[1].samples[0].modifiers[0].name",
        "pyhf cannot share a shapesys parameter",
        id="shared-shapesys",
    ),
    pytest.param(
        both(
            appendp(
                ["channels", 0, "samples", 0, "modifiers"],
                {"name": "sf", "type": "shapefactor", "data": None},
            ),
            appendp(
                ["channels", 1, "samples", 0, "modifiers"],
                {"name": "sf", "type": "shapefactor", "data": None},
            ),
        ),
        "channels[1].samples[0].modifiers[2].name",
        "a shared shapefactor needs channels with the same number of bins",
        id="shapefactor-bin-mismatch",
    ),
    pytest.param(
        both(
            appendp(
                ["channels", 0, "samples", 0, "modifiers"],
                {"name": "stat_SR", "type": "staterror", "data": [1.0, 1.0]},
            ),
            appendp(
                ["channels", 1, "samples", 0, "modifiers"],
                {"name": "stat_SR", "type": "staterror", "data": [1.0]},
            ),
        ),
        "channels[0].samples[0].modifiers[2]",
        "staterror 'stat_SR' is on sample 'bkg' in channels SR, CR but on sample 'signal' in SR",
        id="staterror-channel-layout",
    ),
    pytest.param(
        setp([*SR_BKG, "data", 0], math.nan),
        "channels[0].samples[1].data[0]",
        "not a finite number",
        id="nan-in-dict",
    ),
    pytest.param(
        delp(["observations", 1]),
        "observations",
        "no observation for channel 'CR'",
        id="missing-observation",
    ),
    pytest.param(
        appendp(["observations"], {"name": "VR", "data": [1.0]}),
        "observations[2].name",
        "observation for unknown channel 'VR' (channels: SR, CR)",
        id="observation-unknown-channel",
    ),
    pytest.param(
        appendp(["observations"], {"name": "CR", "data": [1.0]}),
        "observations[2].name",
        "second observation for channel 'CR'",
        id="duplicate-observation",
    ),
    pytest.param(
        setp(["observations", 0, "data"], [1.0]),
        "observations[0].data",
        "1 observed bin but channel 'SR' has 2",
        id="observation-length",
    ),
    pytest.param(
        setp(["observations", 0, "data", 1], -3),
        "observations[0].data[1]",
        "observed count -3 is negative",
        id="negative-count",
    ),
    pytest.param(
        appendp(["measurements"], {"name": "meas", "config": {"poi": "mu", "parameters": []}}),
        "measurements[1].name",
        "duplicate measurement name 'meas'",
        id="duplicate-measurement",
    ),
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
        appendp([*MEAS, "parameters"], {"name": "stat_SR", "inits": [1.0]}),
        "measurements[0].config.parameters[2].inits",
        "needs 2 entries (one per bin of staterror 'stat_SR'), got 1",
        id="per-bin-setting-length",
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
        delp([*MEAS, "parameters", 0, "sigmas"]),
        "measurements[0].config.parameters[0]",
        "must set lumi's auxdata, sigmas, inits (missing: sigmas)",
        id="lumi-without-sigmas",
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
    pytest.param(
        setp(["channels"], {"SR": []}),
        "channels",
        "expected an array, got an object",
        id="channels-not-array",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "phrase"), WORKSPACE_CASES)
def test_malformed_workspace(mutate, path, phrase):
    ws = base()
    mutate(ws)
    with pytest.raises(InvalidWorkspace) as info:
        load_workspace(ws, name="ws.json")
    assert_one_line(info.value, "ws.json", path, phrase)


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
    ws = base()
    mutate(ws)
    with pytest.raises(InvalidWorkspace) as info:
        validate_workspace(ws, file="ws.json", strict=True)
    assert_one_line(info.value, "ws.json", path, phrase)


def test_not_a_workspace():
    with pytest.raises(InvalidWorkspace, match=r"^x: \(document root\): .*looks like a patchset"):
        validate_workspace({"patches": [], "metadata": {}, "version": "1.0.0"}, file="x")
    with pytest.raises(InvalidWorkspace, match="a workspace is a JSON object, got an empty array"):
        validate_workspace([], file="x")


# ---------------------------------------------------------------------------------------
# the fast schema pre-check (fastjsonschema) must never accept what jsonschema rejects


def _all_paths(doc, prefix=()):
    yield list(prefix)
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _all_paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _all_paths(value, (*prefix, index))


@pytest.mark.parametrize(
    ("name", "document"),
    [
        pytest.param("workspace.json", BASE, id="workspace"),
        pytest.param("patchset.json", None, id="patchset"),
        pytest.param("jsonpatch.json", None, id="jsonpatch"),
    ],
)
def test_fast_check_agrees_with_jsonschema(name, document):
    """Every single-node corruption of a valid document: same verdict as jsonschema."""
    document = document or {"patchset.json": patchset_doc(), "jsonpatch.json": ADD_SIGNAL}[name]
    schemas = {each: schema_module._load(each) for each in schema_module.SCHEMAS}
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    slow = Draft7Validator(schemas[name], registry=registry)
    assert schema_module.is_valid(document, name) and slow.is_valid(document)
    replacements = [None, "", "add", 1.5, True, [], [1.0], {"hi": 1.0, "lo": 1.0}]
    for path in _all_paths(document):
        for value in replacements:
            doc = copy.deepcopy(document)
            if path:
                setp(path, value)(doc)
            else:
                doc = value
            assert schema_module.is_valid(doc, name) == slow.is_valid(doc), (path, value)


# ---------------------------------------------------------------------------------------
# load_json


def test_load_json_plain_and_gzip(tmp_path: Path):
    doc = {"a": [1, 2.5, "x"]}
    plain = tmp_path / "doc.json"
    plain.write_text(json.dumps(doc))
    assert load_json(plain) == doc
    assert load_json(str(plain)) == doc
    hidden_gzip = tmp_path / "really-gzip.json"  # detected by content, not suffix
    hidden_gzip.write_bytes(gzip.compress(json.dumps(doc).encode()))
    assert load_json(hidden_gzip) == doc


@pytest.mark.parametrize(
    ("content", "phrase", "path"),
    [
        pytest.param(None, "no such file", "", id="missing"),
        pytest.param(b"", "the file is empty", "", id="empty"),
        pytest.param(
            b'{\n  "a": [1, 2,]\n}',
            "invalid JSON: Expecting value at line 2, column 14",
            "",
            id="syntax",
        ),
        pytest.param(b'{"a": {"b": [1, NaN]}}', "NaN is not valid JSON", "a.b[1]", id="nan"),
        pytest.param(b"[-Infinity]", "-Infinity is not valid JSON", "[0]", id="infinity"),
        pytest.param(b"\x1f\x8b\x08\x00garbage", "corrupt gzip data", "", id="bad-gzip"),
        pytest.param(b'{"a": "\xff"}', "not UTF-8 text", "", id="binary"),
    ],
)
def test_load_json_errors(tmp_path: Path, content, phrase, path):
    target = tmp_path / "in.json"
    if content is not None:
        target.write_bytes(content)
    with pytest.raises(InputError) as info:
        load_json(target)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{target}: "), text
    assert phrase in text
    assert info.value.path == path


def test_load_workspace_from_file_names_the_file(tmp_path: Path):
    ws = base()
    ws["observations"][0]["data"][1] = -1
    target = tmp_path / "ws.json.gz"
    target.write_bytes(gzip.compress(json.dumps(ws).encode()))
    with pytest.raises(InvalidWorkspace, match=r"ws\.json\.gz: observations\[0\]\.data\[1\]: "):
        load_workspace(target)


# ---------------------------------------------------------------------------------------
# patches

ADD_SIGNAL = [
    {
        "op": "add",
        "path": "/channels/1/samples/-",
        "value": {
            "name": "signal",
            "data": [2.0],
            "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
        },
    },
]


def test_apply_patch_does_not_modify_inputs():
    ws, patch = base(), load_patch(copy.deepcopy(ADD_SIGNAL))
    out = apply_patches(ws, [patch])
    assert ws == BASE
    assert out["channels"][1]["samples"][1]["name"] == "signal"
    out["channels"][1]["samples"][1]["data"][0] = 7.0  # no aliasing of the patch's value
    assert patch[0]["value"]["data"] == [2.0]


#: one operation of every kind, each writing somewhere else in BASE
EVERY_OPERATION = [
    *ADD_SIGNAL,
    {"op": "replace", "path": "/channels/0/samples/1/data/0", "value": 51.0},
    {"op": "remove", "path": "/channels/0/samples/1/modifiers/2"},
    {
        "op": "move",
        "from": "/channels/0/samples/0/modifiers/1",
        "path": "/channels/1/samples/0/modifiers/-",
    },
    {"op": "copy", "from": "/observations/1", "path": "/observations/-"},
    {"op": "test", "path": "/version", "value": "1.0.0"},
]


def test_apply_patch_copies_only_what_it_changes():
    """Copy-on-write: the containers on the operations' paths are new, everything else is
    the base's own object (shared, not copied), and the base is never modified."""
    ws = base()
    out = apply_patches(ws, [copy.deepcopy(EVERY_OPERATION)], validate=False)
    assert ws == BASE
    assert out != BASE
    for changed in [out, out["channels"], out["channels"][0]["samples"][1]["data"]]:
        assert all(changed is not original for original in _containers(ws))
    shared = [
        out["channels"][0]["samples"][1]["modifiers"][0],  # beside a removed modifier
        out["channels"][1]["samples"][0]["data"],  # beside a moved-in modifier
        out["observations"][0],
        out["measurements"],
    ]
    for part in shared:
        assert any(part is original for original in _containers(ws))


def _containers(doc) -> list:
    """Every dict and list in a JSON document."""
    if isinstance(doc, dict):
        return [doc, *(c for value in doc.values() for c in _containers(value))]
    if isinstance(doc, list):
        return [doc, *(c for value in doc for c in _containers(value))]
    return []


@pytest.mark.parametrize(
    ("patch", "path", "phrase"),
    [
        pytest.param(
            [{"op": "add", "path": "/a"}],
            "[0]",
            "missing required key 'value'",
            id="add-without-value",
        ),
        pytest.param(
            [{"op": "copy", "path": "/a"}],
            "[0]",
            "missing required key 'from'",
            id="copy-without-from",
        ),
        pytest.param(
            [{"op": "rename", "path": "/a"}],
            "[0].op",
            "unknown patch operation 'rename'",
            id="unknown-op",
        ),
        pytest.param(
            [{"op": "remove", "path": "a/b"}],
            "[0].path",
            "'a/b' is not a JSON pointer",
            id="bad-pointer",
        ),
        pytest.param(
            {"op": "remove", "path": "/a"},
            "(document root)",
            "expected an array, got an object",
            id="not-a-list",
        ),
    ],
)
def test_malformed_patch(patch, path, phrase):
    with pytest.raises(InvalidPatch) as info:
        load_patch(patch, name="p.json")
    assert_one_line(info.value, "p.json", path, phrase)


def test_patch_that_does_not_apply():
    patch = [*ADD_SIGNAL, {"op": "remove", "path": "/channels/7"}]
    with pytest.raises(InvalidPatch) as info:
        apply_patches(base(), [patch], file="p.json")
    assert_one_line(info.value, "p.json", "patch[1]", "cannot remove /channels/7")


def test_patch_that_breaks_the_workspace():
    patch = [{"op": "replace", "path": "/channels/1/samples/0/data", "value": [1.0, 2.0]}]
    with pytest.raises(InvalidWorkspace) as info:
        apply_patches(base(), [patch], file="p.json")
    assert_one_line(
        info.value,
        "p.json",
        "channels[1].samples[0].modifiers[0].data",
        "(in the workspace patched with p.json)",
    )


def _sample(name: str, data: list, *modifiers: tuple) -> dict:
    """A sample with modifiers given as (name, type, data)."""
    mods = [{"name": n, "type": t, "data": d} for n, t, d in modifiers]
    return {"name": name, "data": data, "modifiers": mods}


def _add(where: str, value) -> dict:
    return {"op": "add", "path": where, "value": value}


NORM = {"hi": 1.1, "lo": 0.9}
#: patches checked with and without the base's recorded checks; each breaks one rule in
#: a sample it adds or changes, most against a sample the base already had
PATCHED_MODELS = {
    "type-clash-with-base": [
        _add("/channels/0/samples/-", _sample("s", [1, 1], ("bkg_norm", "normfactor", None)))
    ],
    "type-clash-before-base": [
        _add("/channels/0/samples/0", _sample("s", [1, 1], ("bkg_norm", "normfactor", None)))
    ],
    "shapesys-reused": [
        _add("/channels/1/samples/-", _sample("s", [1], ("uncorr", "shapesys", [1.0])))
    ],
    "staterror-other-channel": [
        _add("/channels/1/samples/-", _sample("bkg2", [1], ("stat_SR", "staterror", [0.1])))
    ],
    "staterror-new-sample-name-in-other-channel": [
        _add("/channels/1/samples/-", _sample("signal", [1], ("stat_SR", "staterror", [0.1])))
    ],
    "duplicate-sample": [_add("/channels/1/samples/-", _sample("bkg", [1]))],
    "duplicate-sample-before-base": [_add("/channels/0/samples/0", _sample("bkg", [1, 2]))],
    "bins": [_add("/channels/0/samples/-", _sample("s", [1]))],
    "bins-first-sample": [_add("/channels/0/samples/0", _sample("s", [1, 2, 3]))],
    "histosys-length": [
        _add(
            "/channels/0/samples/-",
            _sample("s", [1, 1], ("h", "histosys", {"hi_data": [1], "lo_data": [1, 1]})),
        )
    ],
    "modifier-twice": [
        _add(
            "/channels/0/samples/-",
            _sample("s", [1, 1], ("n", "normsys", NORM), ("n", "normsys", NORM)),
        )
    ],
    "shapefactor-sizes": [
        _add("/channels/0/samples/-", _sample("s", [1, 1], ("sf", "shapefactor", None))),
        _add("/channels/1/samples/-", _sample("s", [1], ("sf", "shapefactor", None))),
    ],
    "lumi-as-normfactor": [
        _add("/channels/1/samples/-", _sample("s", [1], ("lumi", "normfactor", None)))
    ],
    "channel-without-observation": [
        {
            "op": "add",
            "path": "/channels/-",
            "value": {"name": "VR", "samples": [_sample("s", [1])]},
        }
    ],
    "setting-size": [
        _add("/channels/0/samples/-", _sample("s", [1, 1], ("sf", "shapefactor", None))),
        _add("/measurements/0/config/parameters/-", {"name": "sf", "inits": [1.0]}),
    ],
    "poi-per-bin": [
        {"op": "replace", "path": "/channels/0/samples/0/modifiers/0/type", "value": "shapefactor"}
    ],
    "base-sample-replaced": [
        {"op": "replace", "path": "/channels/0/samples/1/data", "value": [1.0]}
    ],
    "base-sample-moved": [
        {"op": "move", "from": "/channels/0/samples/1", "path": "/channels/1/samples/-"}
    ],
    "base-sample-moved-to-a-new-channel": [  # valid were it still in its channel
        _add("/channels/-", {"name": "VR", "samples": [_sample("v", [1, 1])]}),
        _add("/observations/-", {"name": "VR", "data": [1, 1]}),
        _add("/channels/0/samples/-", _sample("x", [1, 1], ("stat_SR", "staterror", [1, 1]))),
        {"op": "move", "from": "/channels/0/samples/1", "path": "/channels/2/samples/-"},
    ],
    "base-sample-copied": [
        {"op": "copy", "from": "/channels/0/samples/1", "path": "/channels/1/samples/-"}
    ],
    # valid: the recorded checks must not reject these
    "valid-signal": ADD_SIGNAL,
    "valid-shared-staterror": [
        _add("/channels/0/samples/0", _sample("s", [1, 1], ("stat_SR", "staterror", [0.1, 0.1])))
    ],
    "valid-shared-normsys-histosys": [
        _add(
            "/channels/1/samples/-",
            _sample("s", [1], ("bkg_norm", "histosys", {"hi_data": [1.2], "lo_data": [0.8]})),
        )
    ],
    "valid-new-channel": [
        {
            "op": "add",
            "path": "/channels/0",
            "value": {"name": "VR", "samples": [_sample("s", [1], ("uncorr2", "shapesys", [0.5]))]},
        },
        {"op": "add", "path": "/observations/-", "value": {"name": "VR", "data": [1]}},
    ],
    "valid-staterror-over-two-channels": [
        _add(
            "/channels/1/samples/0/modifiers/-",
            {"name": "stat_SR", "type": "staterror", "data": [1.0]},
        )
    ],
    "valid-base-sample-removed": [{"op": "remove", "path": "/channels/0/samples/0/modifiers/1"}],
}


@pytest.mark.parametrize("patch", list(PATCHED_MODELS.values()), ids=list(PATCHED_MODELS))
def test_patched_workspace_checks_agree_with_a_full_check(patch):
    """The checks that reuse the base's (a PatchBase's, kept from call to call, or one
    made for the call) give the verdict and the very error of validating all again."""

    def outcome(target, **options) -> str:
        try:
            apply_patches(target, [copy.deepcopy(patch)], file="p.json", **options)
        except InputError as error:
            return str(error)
        return "valid"

    full = outcome(base())
    assert outcome(PatchBase.of(base())) == outcome(base(), base_valid=True) == full
    assert full.startswith("valid") == ("valid" in patch_id(patch))


def patch_id(patch) -> str:
    return next(name for name, value in PATCHED_MODELS.items() if value is patch)


# ---------------------------------------------------------------------------------------
# patchsets


def patchset_doc() -> dict:
    def point(name: str, values: list) -> dict:
        return {"metadata": {"name": name, "values": values}, "patch": copy.deepcopy(ADD_SIGNAL)}

    return {
        "metadata": {
            "description": "toy signal grid",
            "digests": {"sha256": workspace_digest(BASE)},
            "labels": ["m1", "m2"],
            "references": {"hepdata": "ins0000000"},
        },
        "patches": [
            point("p_100_0", [100, 0]),
            point("p_200_0", [200, 0]),
            point("p_200_50", [200, 50]),
        ],
        "version": "1.0.0",
    }


def test_patchset_api():
    ps = load_patchset(patchset_doc(), name="ps.json")
    assert isinstance(ps, PatchSet)
    assert len(ps) == 3
    assert ps.names == ("p_100_0", "p_200_0", "p_200_50")
    assert [p.name for p in ps] == list(ps.names)
    assert ps["p_200_0"].values == (200.0, 0.0)
    assert ps[(200, 50)] is ps["p_200_50"] is ps[[200.0, 50.0]]
    assert isinstance(ps["p_100_0"], Patch)
    assert ps.labels == ("m1", "m2") and ps.source == "ps.json" and ps.version == "1.0.0"
    verify_patchset(ps, base())
    out = apply_patches(base(), [ps["p_200_0"]])
    assert out == dict(pyhf.PatchSet(patchset_doc()).apply(pyhf.Workspace(base()), "p_200_0"))
    with pytest.raises(InvalidPatchset) as info:
        ps["p_200_5"]
    assert "no patch named 'p_200_5'; did you mean p_200_50? known (3): p_100_0" in str(info.value)


def test_digest_is_pyhfs():
    """pyhf hashes json.dumps(sort_keys=True, ensure_ascii=False) with default separators:
    non-ASCII names and int-versus-float both matter."""
    ws = base()
    ws["channels"][0]["samples"][0]["name"] = "sïgnal"
    assert workspace_digest(ws) == pyhf.utils.digest(ws)
    assert workspace_digest(ws, "md5") == pyhf.utils.digest(ws, "md5")
    ws["observations"][1]["data"] = [98.0]
    assert workspace_digest(ws) == pyhf.utils.digest(ws) != workspace_digest(base())


def test_digest_mismatch():
    ps = load_patchset(patchset_doc(), name="ps.json")
    ws = base()
    ws["observations"][1]["data"] = [99]
    with pytest.raises(DigestMismatch) as info:
        verify_patchset(ps, ws)
    assert_one_line(
        info.value,
        "ps.json",
        "metadata.digests.sha256",
        f"patchset was made for workspace sha256:{workspace_digest(BASE)[:16]}… but this workspace is sha256:",
    )


def _set_patch(index: int, key: str, value) -> Callable[[dict], None]:
    return setp(["patches", index, "metadata", key], value)


@pytest.mark.parametrize(
    ("mutate", "path", "phrase"),
    [
        pytest.param(
            _set_patch(1, "name", "p_100_0"),
            "patches[1].metadata.name",
            "duplicate patch name 'p_100_0' (first: patches[0])",
            id="duplicate-name",
        ),
        pytest.param(
            _set_patch(2, "values", [200]),
            "patches[2].metadata.values",
            "1 value but the patchset has 2 labels (m1, m2)",
            id="values-length",
        ),
        pytest.param(
            _set_patch(2, "values", [200.0, 0.0]),
            "patches[2].metadata.values",
            "values [200.0, 0.0] repeat those of patches[1] ('p_200_0')",
            id="duplicate-values",
        ),
        pytest.param(
            _set_patch(0, "name", "p 100"),
            "patches[0].metadata.name",
            "'p 100' is not a valid name",
            id="bad-name",
        ),
        pytest.param(
            delp(["metadata", "digests"]),
            "metadata",
            "missing required key 'digests'",
            id="no-digests",
        ),
        pytest.param(
            setp(["metadata", "digests", "sha256"], "abc"),
            "metadata.digests.sha256",
            "'abc' is not a sha256 digest",
            id="bad-digest",
        ),
        pytest.param(
            setp(["patches", 0, "patch", 0, "op"], "merge"),
            "patches[0].patch[0].op",
            "unknown patch operation 'merge'",
            id="bad-op",
        ),
        pytest.param(setp(["patches"], []), "patches", "must not be empty", id="no-patches"),
    ],
)
def test_malformed_patchset(mutate, path, phrase):
    doc = patchset_doc()
    mutate(doc)
    with pytest.raises(InvalidPatchset) as info:
        load_patchset(doc, name="ps.json")
    assert_one_line(info.value, "ps.json", path, phrase)


# ---------------------------------------------------------------------------------------
# the published ATLAS likelihoods and the HS3 twins

ANALYSES = {
    "atlas-1lbb": (
        "BkgOnly.json.gz",
        "patchset.json.gz",
        ["C1N2_Wh_hbb_300_150", "C1N2_Wh_hbb_1000_0"],
    ),
    "atlas-3l-erjr": ("BkgOnly.json", "patchset.json", ["ERJR_300p0_100p0", "ERJR_100p0_20p0"]),
}


def _mu_bg_warning(analysis: str):
    """3L-eRJR sets up a parameter ``mu_BG`` that no modifier uses: loading it warns."""
    if analysis == "atlas-3l-erjr":
        return pytest.warns(SpecWarning, match="no modifier named 'mu_BG'")
    return contextlib.nullcontext()


@pytest.fixture(scope="module", params=sorted(ANALYSES))
def analysis(request, shared_data: Path):
    folder = shared_data / request.param
    ws_file, ps_file, points = ANALYSES[request.param]
    with _mu_bg_warning(request.param):
        ws = load_workspace(folder / ws_file)
    return {
        "name": request.param,
        "ws": ws,
        "ps": load_patchset(folder / ps_file),
        "raw_ps": load_json(folder / ps_file),
        "points": points,
    }


def test_atlas_workspace_digest_and_patchset(analysis):
    ws, ps = analysis["ws"], analysis["ps"]
    digest = workspace_digest(ws)
    assert digest == pyhf.utils.digest(ws) == ps.digests["sha256"]
    verify_patchset(ps, ws)
    assert len(ps) == {"atlas-1lbb": 125, "atlas-3l-erjr": 64}[analysis["name"]]
    assert len(ps.labels) == 2
    with pytest.raises(InvalidWorkspace, match="background-only"):
        measurement_config(ws)


def test_atlas_patches_match_pyhf(analysis):
    """The first point through pyhf.PatchSet.apply (digest check, pyhf's validation of the
    result: 2 s on 1Lbb), the second through pyhf's Patch alone (the same JSON Patch)."""
    ws, ps = analysis["ws"], analysis["ps"]
    reference = pyhf.PatchSet(analysis["raw_ps"])
    first, second = analysis["points"]
    ours = apply_patches(ws, [ps[first]], file=ps.source)
    assert ours == dict(reference.apply(pyhf.Workspace(ws, validate=False), first))
    assert measurement_config(ours)["poi"] == "mu_SIG"
    ours = apply_patches(ws, [ps[second]], file=ps.source)
    assert ours == reference[second].apply(ws)


def test_atlas_patches_leave_the_workspace_alone(analysis):
    """Every point of the patchset applied to one workspace: its digest never changes."""
    ws, ps = analysis["ws"], analysis["ps"]
    for patch in ps:
        apply_patches(ws, [patch], file=ps.source, base_valid=True)
    assert workspace_digest(ws) == ps.digests["sha256"]


def test_3l_mu_bg_setting_warns(shared_data: Path):
    with pytest.warns(SpecWarning, match="no modifier named 'mu_BG'"):
        load_workspace(shared_data / "atlas-3l-erjr" / "BkgOnly.json")


def test_atlas_patch_applied_to_the_other_workspace(analysis, shared_data: Path):
    other = "atlas-3l-erjr" if analysis["name"] == "atlas-1lbb" else "atlas-1lbb"
    ws_file = ANALYSES[other][0]
    with _mu_bg_warning(other):
        wrong = load_workspace(shared_data / other / ws_file)
    with pytest.raises(DigestMismatch, match="patchset was made for workspace sha256:"):
        verify_patchset(analysis["ps"], wrong)


def test_hs3_hifa_workspaces_load(shared_data: Path):
    files = sorted((shared_data / "hs3").glob("*_hifa.json"))
    assert files
    for path in files:
        ws = load_workspace(path, strict=True)
        assert measurement_config(ws)["poi"] == "mu"
        assert workspace_digest(ws) == pyhf.utils.digest(ws)
