"""Scans: batching over a union structure changes nothing; real-likelihood scans agree
with pyhf; upper limits sit at CLs = 0.05; the CLI writes the Parquet table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hfpipe import spec
from hfpipe.infer import hypotest_batch
from hfpipe.model import compile_model
from hfpipe.results import LIMIT_COLUMNS, read_table
from hfpipe.scanning import scan

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example"
EXPECTED = ["cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]
RESULT_COLUMNS = ["cls_obs", *EXPECTED, "mu_hat", "twice_nll"]


def _point_by_point(workspace, patchset, names):
    rows = []
    for name in names:
        model = compile_model(spec.apply_patches(workspace, [patchset[name]]))
        result = hypotest_batch(model.structure, model.numbers, 1.0)
        rows.append([result.cls_obs[0], *result.cls_exp[0], result.mu_hat[0], result.twice_nll[0]])
    return np.array(rows)


@pytest.mark.parametrize(
    "analysis", ["example", pytest.param("atlas-3l-erjr", marks=pytest.mark.slow)]
)
def test_batched_scan_equals_point_by_point(request, analysis):
    if analysis == "example":
        workspace = spec.load_workspace(EXAMPLE / "BkgOnly.json")
        patchset = spec.load_patchset(EXAMPLE / "patchset.json")
        names = list(patchset.names)
    else:
        workspace, patchset, _ = request.getfixturevalue("load_analysis")(analysis)
        names = list(patchset.names)[::11]  # points of different structures
    frame = scan(workspace, patchset, points=names, batch_size=4)
    assert list(frame["point"]) == names and (frame["status"] == "ok").all()
    np.testing.assert_allclose(
        frame[RESULT_COLUMNS].to_numpy(),
        _point_by_point(workspace, patchset, names),
        rtol=1e-8,
        atol=1e-10,
    )


def test_scan_table_and_cli(tmp_path):
    output = tmp_path / "out.parquet"
    result = CliRunner().invoke(
        __import__("hfpipe.cli", fromlist=["main"]).main,
        [
            "scan",
            str(EXAMPLE / "BkgOnly.json"),
            str(EXAMPLE / "patchset.json"),
            "-o",
            str(output),
            "--points",
            "sig_300_100,sig_800_300",
        ],
    )
    assert result.exit_code == 0, result.output
    frame, provenance = read_table(output)
    assert list(frame.columns[:4]) == ["analysis", "point", "m1", "m2"]
    assert list(frame["point"]) == ["sig_300_100", "sig_800_300"]
    assert set(
        [
            *RESULT_COLUMNS,
            "status",
            "message",
            "calctype",
            "test_stat",
            "ntoys",
            "seconds",
            "device",
            "mu",
        ]
    ) <= set(frame.columns)
    assert provenance["settings"]["test_stat"] == "qtilde"
    assert len(provenance["workspace"]["sha256"]) == 64
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file


def test_unknown_point_is_one_line_error(tmp_path):
    from hfpipe.cli import main

    result = CliRunner().invoke(
        main,
        [
            "scan",
            str(EXAMPLE / "BkgOnly.json"),
            str(EXAMPLE / "patchset.json"),
            "-o",
            str(tmp_path / "x.parquet"),
            "--points",
            "nope",
        ],
    )
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.large_batch
@pytest.mark.parametrize(("analysis", "n_points"), [("atlas-1lbb", 125), ("atlas-3l-erjr", 64)])
def test_full_scan_matches_reference(load_analysis, analysis, n_points):
    workspace, patchset, rows = load_analysis(analysis)
    frame = scan(workspace, patchset)
    assert len(frame) == n_points and (frame["status"] == "ok").all(), frame["message"]
    by_point = frame.set_index("point")
    reference = pd.DataFrame(rows).set_index("point")
    for point, ref in reference.iterrows():
        ours = by_point.loc[point, ["cls_obs", *EXPECTED]].to_numpy(float)
        theirs = ref[["cls_obs", *EXPECTED]].to_numpy(float)
        if np.max(np.abs(ours - theirs)) > 1e-3:
            # such points are checked fit by fit against pyhf in test_cls_parity.py; here
            # the scan must reproduce that single-point result exactly
            model = compile_model(spec.apply_patches(workspace, [patchset[point]]))
            result = hypotest_batch(model.structure, model.numbers, 1.0)
            np.testing.assert_allclose(
                [result.cls_obs[0], *result.cls_exp[0]], ours, rtol=1e-8, atol=1e-10
            )


@pytest.mark.slow
@pytest.mark.large_batch
def test_upper_limits_sit_at_cls_005(load_analysis, shared_data):
    workspace, patchset, _ = load_analysis("atlas-3l-erjr")
    names = [
        "ERJR_300p0_100p0",
        "ERJR_150p0_50p0",
        "ERJR_200p0_100p0",
        "ERJR_250p0_100p0",
        "ERJR_400p0_0p0",
    ]
    frame = scan(workspace, patchset, points=names, upper_limits=True, batch_size=5)
    assert (frame["status"] == "ok").all(), list(frame["message"])
    limit_columns = LIMIT_COLUMNS
    for _, row in frame.iterrows():
        model = compile_model(spec.apply_patches(workspace, [patchset[row["point"]]]))
        numbers = model.numbers._replace(upper=np.maximum(model.numbers.upper, 50.0))
        result = hypotest_batch(model.structure, numbers, row[limit_columns].to_numpy(float))
        cls_at_limit = [result.cls_obs[0], *[result.cls_exp[k + 1][k] for k in range(5)]]
        np.testing.assert_allclose(cls_at_limit, 0.05, atol=0.002)
    reference = pd.read_csv(shared_data / "atlas-3l-erjr" / "reference_upper_limit.csv")
    ours = frame.set_index("point").loc["ERJR_300p0_100p0", limit_columns].to_numpy(float)
    theirs = reference.set_index("point").loc["ERJR_300p0_100p0", limit_columns].to_numpy(float)
    np.testing.assert_allclose(ours, theirs, rtol=5e-3)
    json.dumps(frame.to_dict())  # plain values only


def test_cls_curves_equal_full_hypothesis_tests():
    """The limits' shortcut (μ-independent fits reused, warm starts) gives the CLs of a
    full hypothesis test at every μ, for each curve."""
    from hfpipe.infer.limits import CLsCurves

    workspace = spec.load_workspace(EXAMPLE / "BkgOnly.json")
    patchset = spec.load_patchset(EXAMPLE / "patchset.json")
    model = compile_model(spec.apply_patches(workspace, [patchset[patchset.names[0]]]))
    reference = hypotest_batch(model.structure, model.numbers, 1.0)
    curves = CLsCurves(model.structure, model.numbers, reference, test_stat="qtilde")
    for mus in ([0.3, 0.5, 0.8, 1.1, 1.7, 2.5], [2.0, 0.2, 4.0, 0.7, 1.3, 0.9]):
        cls, ok = curves(np.array([mus]))
        assert ok.all()
        full = hypotest_batch(model.structure, model.numbers, np.array(mus))
        expected = [full.cls_obs[0], *[full.cls_exp[k + 1][k] for k in range(5)]]
        np.testing.assert_allclose(cls[0], expected, rtol=1e-6, atol=1e-9)


def test_upper_limits_refuse_q0():
    from hfpipe.errors import HfpipeError
    from hfpipe.scanning import ScanSettings

    with pytest.raises(HfpipeError, match="qtilde or q"):
        ScanSettings(upper_limits=True, test_stat="q0")


def test_table_of_loaded_inputs_resumes(tmp_path):
    """Loaded inputs (a PatchSet object, a workspace dict) are recorded by the digest of
    their JSON, so the table is written and a second run takes its rows from it (a
    PatchSet's lookup index once broke the digest: TypeError at the final merge)."""
    from hfpipe.scanning import scan_to_parquet

    workspace = spec.load_workspace(EXAMPLE / "BkgOnly.json")
    patchset = spec.load_patchset(EXAMPLE / "patchset.json")
    output = tmp_path / "scan.parquet"
    first = scan_to_parquet(workspace, patchset, output, points=["sig_300_100"])
    again = scan_to_parquet(workspace, patchset, output, points=["sig_300_100"])
    assert (first.attrs["computed"], again.attrs["reused"]) == (1, 1)
    assert again["cls_obs"].tolist() == first["cls_obs"].tolist()


def test_a_rerun_recomputes_only_the_points_whose_patch_changed(tmp_path):
    """Each row is kept with the digest of its patch: editing one patch of the file
    recomputes that point alone, and its new numbers are used."""
    from hfpipe.scanning import scan_to_parquet

    document = json.loads((EXAMPLE / "patchset.json").read_text())
    points = ["sig_300_100", "sig_400_100"]
    output, patchset = tmp_path / "scan.parquet", tmp_path / "patchset.json"
    patchset.write_text(json.dumps(document))
    first = scan_to_parquet(EXAMPLE / "BkgOnly.json", patchset, output, points=points)
    document["patches"][0]["patch"][0]["value"]["data"] = [0.96]  # sig_300_100, a CR yield
    patchset.write_text(json.dumps(document))
    again = scan_to_parquet(EXAMPLE / "BkgOnly.json", patchset, output, points=points)
    assert (again.attrs["computed"], again.attrs["reused"]) == (1, 1)
    changed = again.set_index("point")["cls_obs"]
    assert changed["sig_400_100"] == first.set_index("point")["cls_obs"]["sig_400_100"]
    assert changed["sig_300_100"] != first.set_index("point")["cls_obs"]["sig_300_100"]
