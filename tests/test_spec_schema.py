"""hfpipe.spec.schema: workspaces that break the JSON schema give one-line errors naming the
file, the JSON path and the problem; the fast pre-check (fastjsonschema) never accepts what
jsonschema rejects.
"""

from __future__ import annotations

import copy

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from spec_helpers import (
    ADD_SIGNAL,
    BASE,
    SR_BKG,
    assert_malformed,
    delp,
    patchset_doc,
    setp,
)

from hfpipe.spec import schema as schema_module

# pyhf 0.7.6 validates with jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")

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
        setp(["channels"], {"SR": []}),
        "channels",
        "expected an array, got an object",
        id="channels-not-array",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "phrase"), WORKSPACE_CASES)
def test_malformed_workspace(mutate, path, phrase):
    assert_malformed(mutate, path, phrase)


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
