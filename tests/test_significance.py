"""Discovery significance: p0 and Z from q0 in `hfpipe cls --test-stat q0` and as scan
columns (`hfpipe scan --significance`), against separate q0 tests and pyhf 0.7.6's
``hypotest(0.0, ..., test_stat="q0")``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import norm

import hfpipe
from hfpipe import spec
from hfpipe.cli import main
from hfpipe.infer.significance import z_value
from hfpipe.results import read_table
from hfpipe.results.columns import SIGNIFICANCE_COLUMNS, label_columns
from hfpipe.spec import load_patchset, workspace_digest

EXAMPLE = "examples/example/BkgOnly.json"
PATCHSET = "examples/example/patchset.json"
POINTS = ["sig_300_100", "sig_600_200"]
#: the one ill-conditioned shapesys γ of 3L-eRJR (τ ≈ 1.9e11), which stalls pyhf's SLSQP
STIFF_GAMMA = "shape_mcstat_diboson3LISR_CRISR_obs_cuts"


def test_z_is_the_one_sided_normal_quantile():
    p = np.array([0.5, 0.1586552539, 0.0227501319, 2.866515719e-7, 1e-300])
    np.testing.assert_allclose(z_value(p), [0.0, 1.0, 2.0, 5.0, norm.isf(1e-300)], rtol=1e-9)
    assert np.signbit(z_value(0.5)) == np.False_  # +0, not -0, for p = 0.5
    assert z_value(0.0) == np.inf


def test_cls_q0_prints_z_of_the_observed_and_expected_p0():
    result = CliRunner().invoke(
        main,
        ["cls", EXAMPLE, "--patchset", PATCHSET, "--point", "sig_300_100", "--test-stat", "q0"],
    )
    assert result.exit_code == 0, result.output
    output = json.loads(result.output.strip().splitlines()[-1])
    assert output["Z_obs"] == pytest.approx(norm.isf(output["CLs_obs"]), rel=1e-12)
    np.testing.assert_allclose(output["Z_exp"], norm.isf(output["CLs_exp"]), rtol=1e-10)
    # pyhf's order: −2σ first, the smallest p0; the expected Z are the median ± 1, ± 2
    np.testing.assert_allclose(np.diff(output["Z_exp"]), -1.0, atol=1e-9)
    patch = load_patchset(PATCHSET)["sig_300_100"]
    direct = hfpipe.hypotest(EXAMPLE, 0.0, patches=[patch], test_stat="q0")
    assert output["CLs_obs"] == pytest.approx(direct.cls_obs[0], rel=1e-12)


def test_cls_without_q0_has_no_z():
    result = CliRunner().invoke(
        main, ["cls", EXAMPLE, "--patchset", PATCHSET, "--point", POINTS[0]]
    )
    assert result.exit_code == 0 and "Z_obs" not in result.output


def test_scan_significance_columns_equal_a_separate_q0_test(tmp_path):
    output = tmp_path / "scan.parquet"
    points = ",".join(POINTS)
    result = CliRunner().invoke(
        main, ["scan", EXAMPLE, PATCHSET, "-o", str(output), "--points", points, "--significance"]
    )
    assert result.exit_code == 0, result.output
    frame, provenance = read_table(output)
    assert provenance["settings"]["significance"] is True
    assert not set(SIGNIFICANCE_COLUMNS) & set(label_columns(frame.columns))
    assert list(frame.columns).index("p0_obs") > list(frame.columns).index("cls_exp_p2")
    patchset = load_patchset(PATCHSET)
    for row in frame.itertuples():
        direct = hfpipe.hypotest(EXAMPLE, 0.0, patches=[patchset[row.point]], test_stat="q0")
        assert row.p0_obs == pytest.approx(direct.cls_obs[0], rel=1e-9)
        assert row.p0_exp == pytest.approx(direct.cls_exp[0][2], rel=1e-9)
        assert row.z_obs == pytest.approx(norm.isf(direct.cls_obs[0]), rel=1e-9)
        assert row.z_exp == pytest.approx(norm.isf(direct.cls_exp[0][2]), rel=1e-9)
        assert row.status == "ok"
    plain = hfpipe.scan(EXAMPLE, PATCHSET, points=POINTS)
    np.testing.assert_allclose(frame["cls_obs"], plain["cls_obs"], rtol=1e-12)
    assert "p0_obs" not in plain


def test_scan_significance_by_toys_is_reproducible():
    settings = {"points": POINTS[:1], "significance": True, "calctype": "toybased", "ntoys": 60}
    first = hfpipe.scan(EXAMPLE, PATCHSET, seed=3, **settings)
    again = hfpipe.scan(EXAMPLE, PATCHSET, seed=3, **settings)
    assert first[SIGNIFICANCE_COLUMNS].equals(again[SIGNIFICANCE_COLUMNS])
    assert 0.0 <= first["p0_obs"].iloc[0] <= 1.0


def test_a_poi_bounded_above_zero_fails_only_the_significance(tmp_path):
    """q0 holds the POI at 0: a POI bound that excludes 0 refuses the test, and the rows
    say so, with CLs still computed."""
    workspace = json.loads(Path(EXAMPLE).read_text())
    parameters = workspace["measurements"][0]["config"]["parameters"]
    next(p for p in parameters if p["name"] == "mu_SIG")["bounds"] = [[0.1, 10.0]]
    path = tmp_path / "bounded.json"
    path.write_text(json.dumps(workspace))
    patchset = json.loads(Path(PATCHSET).read_text())
    patchset["metadata"]["digests"] = {"sha256": workspace_digest(workspace)}
    patches = tmp_path / "patchset.json"
    patches.write_text(json.dumps(patchset))
    frame = hfpipe.scan(path, patches, points=POINTS[:1], significance=True)
    row = frame.iloc[0]
    assert row.status == "failed" and "significance" in row.message and "bounds" in row.message
    assert np.isnan(row.p0_obs) and np.isfinite(row.cls_obs)


def _pyhf_p0(pyhf, workspace: dict):
    """pyhf 0.7.6 (numpy, scipy) q0 test: observed p0 and the expected band."""
    pyhf.set_backend("numpy")
    pyhf_workspace = pyhf.Workspace(workspace)
    model = pyhf_workspace.model(
        modifier_settings={"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}
    )
    observed, expected = pyhf.infer.hypotest(
        0.0, pyhf_workspace.data(model), model, test_stat="q0", return_expected_set=True
    )
    return float(observed), np.array([float(e) for e in expected])


@pytest.mark.slow
def test_z_equals_pyhf_on_the_docs_model_and_three_3l_points(shared_data, load_analysis):
    """Z_obs and the expected Z band to 1e-3. On 3L-eRJR the stiff γ is held at its
    auxiliary value in both codes (pyhf's SLSQP stops at the start otherwise and reports
    p0 = 0.5; hfpipe's Z moves by ~1e-10 when it is held): the same likelihood for both."""
    pyhf = pytest.importorskip("pyhf")
    docs = spec.load_workspace(shared_data / "toys" / "docs_2bin.json")
    workspace, patchset, _ = load_analysis("atlas-3l-erjr")
    held = json.loads(json.dumps(workspace))
    held["measurements"][0]["config"]["parameters"].append({"name": STIFF_GAMMA, "fixed": True})
    cases = [docs] + [
        spec.apply_patches(held, [patchset[point]])
        for point in ("ERJR_100p0_20p0", "ERJR_150p0_50p0", "ERJR_300p0_100p0")
    ]
    for case in cases:
        p0, band = _pyhf_p0(pyhf, case)
        ours = hfpipe.hypotest(case, 0.0, test_stat="q0")
        assert z_value(ours.cls_obs[0]) == pytest.approx(z_value(p0), abs=1e-3)
        np.testing.assert_allclose(z_value(ours.cls_exp[0]), z_value(band), atol=1e-3)
