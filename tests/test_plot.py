"""Exclusion contours and Brazil plots: geometry checked against analytic boundaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import qmc

from hfpipe.cli import main
from hfpipe.errors import InputError
from hfpipe.plot import brazil_curves, exclusion_contours
from hfpipe.results import write_table

#: semi-axes (x, y) of the elliptic boundary CLs = 0.05 for each kind
RADII = {
    "obs": (650.0, 330.0),
    "exp": (700.0, 350.0),
    "exp_m1": (760.0, 380.0),
    "exp_p1": (640.0, 320.0),
    "exp_m2": (820.0, 410.0),
    "exp_p2": (580.0, 290.0),
}
COLUMNS = {"obs": "cls_obs", **{k: f"cls_{k}" for k in RADII if k != "obs"}}
#: contour vertices must lie within this relative distance of the true ellipse
TOLERANCE = 0.01


def synthetic_scan(n: int = 250, seed: int = 1) -> pd.DataFrame:
    """Irregular (Halton) points over m1 ∈ [0, 1000], m2 ∈ [0, 500], with
    CLs = 0.05^(2 − r), r = sqrt((m1/a)² + (m2/b)²): CLs = 0.05 exactly on r = 1.
    Two 'failed' points with nonsense CLs must not bend the lines."""
    m1, m2 = (qmc.Halton(d=2, seed=seed).random(n) * [1000.0, 500.0]).T
    frame = pd.DataFrame(
        {"analysis": "toy", "point": [f"p{i}" for i in range(n)], "m1": m1, "m2": m2}
    )
    frame["mu"] = 1.0
    for kind, (a, b) in RADII.items():
        r = np.hypot(m1 / a, m2 / b)
        frame[COLUMNS[kind]] = np.minimum(0.05 ** (2 - r), 1.0)
    frame["status"] = "ok"
    broken = frame.sample(2, random_state=seed).index
    frame.loc[broken, "status"] = "failed"
    frame.loc[broken, list(COLUMNS.values())] = 1e-9
    return frame


def test_contour_matches_analytic_ellipse():
    contours = exclusion_contours(synthetic_scan(), "m1", "m2")
    assert contours.level == 0.05
    for kind, (a, b) in RADII.items():
        (line,) = contours.lines[kind]  # one connected line per kind
        r = np.hypot(line[:, 0] / a, line[:, 1] / b)
        assert np.max(np.abs(r - 1)) < TOLERANCE, kind
        # the line runs across the whole quadrant, from the m2 = 0 edge to the m1 = 0 edge
        angle = np.degrees(np.arctan2(line[:, 1] / b, line[:, 0] / a))
        assert angle.min() < 5 and angle.max() > 85, kind


def test_contour_data_table_and_cli(tmp_path):
    scan = synthetic_scan()
    write_table(scan, tmp_path / "scan.parquet", {})
    outputs = ["c.png", "c.pdf", "c.csv", "c.parquet"]
    args = ["contour", str(tmp_path / "scan.parquet"), "--cl", "0.95"]
    for name in outputs:
        args += ["-o", str(tmp_path / name)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "c.pdf").read_bytes()[:4] == b"%PDF"
    data = pd.read_csv(tmp_path / "c.csv")
    assert set(data["kind"]) == set(RADII)
    assert list(data.columns) == ["kind", "segment", "vertex", "m1", "m2"]
    pd.testing.assert_frame_equal(data, pd.read_parquet(tmp_path / "c.parquet"), check_dtype=False)
    observed = data[data["kind"] == "obs"]
    r = np.hypot(observed["m1"] / RADII["obs"][0], observed["m2"] / RADII["obs"][1])
    assert np.max(np.abs(r - 1)) < TOLERANCE


def test_contour_bad_input_is_one_line(tmp_path):
    scan = synthetic_scan(n=20)
    write_table(scan, tmp_path / "scan.parquet", {})
    result = CliRunner().invoke(main, ["contour", str(tmp_path / "scan.parquet"), "-o", "x.txt"])
    assert result.exit_code == 2 and "x.txt" in result.output
    result = CliRunner().invoke(
        main, ["contour", str(tmp_path / "scan.parquet"), "--x", "m3", "-o", "x.png"]
    )
    assert result.exit_code == 2 and "scan.parquet: no column 'm3'" in result.output
    with pytest.raises(InputError, match="at least 3 points"):
        exclusion_contours(scan.head(2), "m1", "m2")


def test_brazil_crossings_analytic(tmp_path):
    m = np.linspace(100.0, 1000.0, 19)
    limits = {
        "obs": 620.0,
        "exp_m2": 800.0,
        "exp_m1": 720.0,
        "exp": 660.0,
        "exp_p1": 600.0,
        "exp_p2": 540.0,
    }
    frame = pd.DataFrame({"analysis": "toy", "point": [f"p{i}" for i in range(len(m))], "m": m})
    frame["mu"] = 1.0
    for kind, limit in limits.items():
        # log CLs linear in m: the crossing of 0.05 is exactly at `limit`
        frame["cls_obs" if kind == "obs" else f"cls_{kind}"] = 0.05 ** (limit / m)
    frame["status"] = "ok"
    curves = brazil_curves(frame, "m")
    for kind, limit in limits.items():
        # 0.05^(limit/m) is not exactly log-linear in m; between grid points 50 apart
        # the interpolated crossing is within 2 GeV
        (crossing,) = curves.crossings[kind]
        assert crossing == pytest.approx(limit, abs=2.0), kind
    # upper limits: mu_up = (m / limit)^2 crosses 1 at the limit
    for kind, limit in limits.items():
        frame["mu_up_obs" if kind == "obs" else f"mu_up_{kind}"] = (m / limit) ** 2
    curves = brazil_curves(frame, "m", quantity="mu_up")
    assert curves.threshold == 1.0
    for kind, limit in limits.items():
        (crossing,) = curves.crossings[kind]
        assert crossing == pytest.approx(limit, abs=2.0), kind
    write_table(frame, tmp_path / "scan1d.parquet", {})
    result = CliRunner().invoke(
        main, ["brazil", str(tmp_path / "scan1d.parquet"), "-o", str(tmp_path / "b.png")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.png").stat().st_size > 1000


def test_no_lines_across_slivers_on_a_kinematic_edge():
    """A grid cut by a diagonal edge (m2 < m1 − 130), with extra points along the edge as
    published scans have: thin border triangles must not add stray pieces of line."""
    grid = [(m1, m2) for m1 in range(150, 1001, 50) for m2 in range(0, 800, 50) if m2 < m1 - 130]
    edge = [(m1, m1 - 130) for m1 in (165, 190, 240, 310, 420, 560, 730, 930)]
    m1, m2 = np.array(grid + edge, dtype=float).T
    frame = pd.DataFrame({"analysis": "toy", "point": [f"p{i}" for i in range(len(m1))]})
    frame["m1"], frame["m2"], frame["mu"], frame["status"] = m1, m2, 1.0, "ok"
    for column in COLUMNS.values():
        # boundary at m1 = 640 for every m2; curved in log CLs, so that interpolating
        # across a long sliver misplaces it (by 2% here, with the flat-triangle mask off)
        frame[column] = 0.05 ** (2 - (m1 / 640.0) ** 4)
    (line,) = exclusion_contours(frame, "m1", "m2").lines["obs"]
    assert np.max(np.abs(line[:, 0] / 640.0 - 1)) < TOLERANCE
    assert line[:, 1].max() > 480  # and it still runs up to the edge (m2 = 510 at m1 = 640)
    (unmasked,) = exclusion_contours(frame, "m1", "m2", min_circle_ratio=0).lines["obs"]
    assert np.max(np.abs(unmasked[:, 0] / 640.0 - 1)) > 2 * TOLERANCE
