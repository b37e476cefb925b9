"""The bundled example (examples/example/): reproducible from its script and valid for pyhf."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pyhf
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "example"
FILES = ("BkgOnly.json", "patchset.json")
POINTS = ("sig_300_100", "sig_400_100", "sig_500_200", "sig_600_200", "sig_700_300", "sig_800_300")

# pyhf 0.7.6 still uses jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver:DeprecationWarning")


def _load(name: str) -> dict:
    return json.loads((EXAMPLE / name).read_text("utf8"))


@pytest.fixture(scope="module")
def workspace() -> pyhf.Workspace:
    return pyhf.Workspace(_load("BkgOnly.json"))


@pytest.fixture(scope="module")
def patchset() -> pyhf.PatchSet:
    return pyhf.PatchSet(_load("patchset.json"))


def test_script_reproduces_committed_files(tmp_path):
    spec = importlib.util.spec_from_file_location("make_example", EXAMPLES / "make_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes(), name


def test_digest_matches_pyhf(workspace, patchset):
    assert patchset.digests["sha256"] == pyhf.utils.digest(_load("BkgOnly.json"))
    patchset.verify(workspace)


def test_point_names(patchset):
    assert tuple(patch.name for patch in patchset.patches) == POINTS
    assert patchset.labels == ["m1", "m2"]
    for patch in patchset.patches:
        assert patch.name == "sig_{}_{}".format(*patch.values)


@pytest.mark.parametrize("point", POINTS)
def test_pyhf_hypotest(workspace, patchset, point):
    patched = pyhf.Workspace(patchset.apply(workspace, point))
    model = patched.model()
    assert model.config.poi_name == "mu_SIG"
    cls = float(pyhf.infer.hypotest(1.0, patched.data(model), model, test_stat="qtilde"))
    assert 0.0 < cls < 1.0


def test_some_points_excluded_some_not(workspace, patchset):
    cls = {}
    for point in POINTS:
        patched = pyhf.Workspace(patchset.apply(workspace, point))
        model = patched.model()
        cls[point] = float(pyhf.infer.hypotest(1.0, patched.data(model), model))
    excluded = {point for point, value in cls.items() if value < 0.05}
    assert excluded and excluded != set(POINTS), cls
