"""hfpipe.spec on the published ATLAS likelihoods (1Lbb, 3L-eRJR): digests and patchsets as
pyhf has them, patches applied as pyhf applies them, and each patchset refused for the
other analysis' workspace.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pyhf
import pytest

from hfpipe.errors import DigestMismatch, InvalidWorkspace
from hfpipe.spec import (
    SpecWarning,
    apply_patches,
    load_json,
    load_patchset,
    load_workspace,
    measurement_config,
    verify_patchset,
    workspace_digest,
)

# pyhf 0.7.6 validates with jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")

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
