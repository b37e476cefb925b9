"""hfpipe.spec.patchset: the PatchSet API (points by name or by values) against pyhf's, and
malformed patchsets in one line.
"""

from __future__ import annotations

from collections.abc import Callable

import pyhf
import pytest
from spec_helpers import assert_one_line, base, delp, patchset_doc, setp

from hfpipe.errors import InvalidPatchset
from hfpipe.spec import Patch, PatchSet, apply_patches, load_patchset, verify_patchset

# pyhf 0.7.6 validates with jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")


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
