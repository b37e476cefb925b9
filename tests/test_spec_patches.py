"""hfpipe.spec.patches: JSON Patches (RFC 6902) applied copy-on-write, malformed patches and
patches that break the workspace in one line, and the checks that reuse the base's verdicts
(PatchBase) agreeing with a full check.
"""

from __future__ import annotations

import copy

import pytest
from spec_helpers import ADD_SIGNAL, BASE, assert_one_line, base

from hfpipe.errors import InputError, InvalidPatch, InvalidWorkspace
from hfpipe.spec import PatchBase, apply_patches, load_patch

# pyhf 0.7.6 validates with jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")


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


def test_shared_values_end_up_in_the_result_and_no_operation_writes_into_them():
    """With ``share_values`` the result holds the patch's own values, and later
    operations that write inside an added value (a modifier into an added sample, a
    yield replaced, a modifier removed) change copies: the patch stays as it was, and
    the result is the copying one's."""
    writes_inside = [
        *ADD_SIGNAL,
        {"op": "replace", "path": "/channels/1/samples/1/data/0", "value": 3.0},
        {
            "op": "add",
            "path": "/channels/1/samples/1/modifiers/-",
            "value": {"name": "extra", "type": "normfactor", "data": None},
        },
        {"op": "remove", "path": "/channels/1/samples/1/modifiers/0"},
        *copy.deepcopy(EVERY_OPERATION[len(ADD_SIGNAL) :]),
    ]
    patch = copy.deepcopy(writes_inside)
    shared = apply_patches(base(), [patch], validate=False, share_values=True)
    assert patch == writes_inside
    assert shared == apply_patches(base(), [copy.deepcopy(writes_inside)], validate=False)
    added = shared["channels"][1]["samples"][1]["modifiers"][-1]
    assert added is patch[2]["value"]  # shared, not copied


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
    "duplicate-sample-bins": [_add("/channels/1/samples/-", _sample("bkg", [1, 2]))],
    "bins": [_add("/channels/0/samples/-", _sample("s", [1]))],
    "bins-first-sample": [_add("/channels/0/samples/0", _sample("s", [1, 2, 3]))],
    "histosys-length": [
        _add(
            "/channels/0/samples/-",
            _sample("s", [1, 1], ("h", "histosys", {"hi_data": [1], "lo_data": [1, 1]})),
        )
    ],
    "shapesys-twice": [
        _add(
            "/channels/0/samples/-",
            _sample("s", [1, 1], ("n", "shapesys", [1, 1]), ("n", "shapesys", [1, 1])),
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
    # valid as pyhf takes them (the later sample or modifier of a name wins), with warnings
    "valid-duplicate-sample": [_add("/channels/1/samples/-", _sample("bkg", [1]))],
    "valid-duplicate-sample-before-base": [_add("/channels/0/samples/0", _sample("bkg", [1, 2]))],
    "valid-modifier-twice": [
        _add(
            "/channels/0/samples/-",
            _sample("s", [1, 1], ("n", "normsys", NORM), ("n", "normsys", NORM)),
        )
    ],
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
