"""hfpipe.spec.workspace: loading and validating workspaces (a deep copy, never the input;
non-finite numbers; documents that are not workspaces; the file named in errors; the HS3
twins' HiFa workspaces).
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pyhf
import pytest
from spec_helpers import BASE, SR_BKG, assert_malformed, base, setp

from hfpipe.errors import InvalidWorkspace
from hfpipe.spec import load_workspace, measurement_config, validate_workspace, workspace_digest

# pyhf 0.7.6 validates with jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")


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


WORKSPACE_CASES = [
    pytest.param(
        setp([*SR_BKG, "data", 0], math.nan),
        "channels[0].samples[1].data[0]",
        "not a finite number",
        id="nan-in-dict",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "phrase"), WORKSPACE_CASES)
def test_malformed_workspace(mutate, path, phrase):
    assert_malformed(mutate, path, phrase)


def test_not_a_workspace():
    with pytest.raises(InvalidWorkspace, match=r"^x: \(document root\): .*looks like a patchset"):
        validate_workspace({"patches": [], "metadata": {}, "version": "1.0.0"}, file="x")
    with pytest.raises(InvalidWorkspace, match="a workspace is a JSON object, got an empty array"):
        validate_workspace([], file="x")


def test_load_workspace_from_file_names_the_file(tmp_path: Path):
    ws = base()
    ws["observations"][0]["data"][1] = -1
    target = tmp_path / "ws.json.gz"
    target.write_bytes(gzip.compress(json.dumps(ws).encode()))
    with pytest.raises(InvalidWorkspace, match=r"ws\.json\.gz: observations\[0\]\.data\[1\]: "):
        load_workspace(target)


def test_hs3_hifa_workspaces_load(shared_data: Path):
    files = sorted((shared_data / "hs3").glob("*_hifa.json"))
    assert files
    for path in files:
        ws = load_workspace(path, strict=True)
        assert measurement_config(ws)["poi"] == "mu"
        assert workspace_digest(ws) == pyhf.utils.digest(ws)
