"""Corners of the formulas and of the inputs that once gave a silent wrong answer.

* 0/0 in the asymptotic formulas: q~ at μ = 0 (q = q_A = 0), CLb underflowing;
* a tested POI value outside the POI's bounds (it was clipped to the bound);
* a patchset label named like a column of the results table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hfpipe.cli import main
from hfpipe.infer.calculators import cls_asymptotic
from hfpipe.scanning import scan

EXAMPLE = "examples/example"

#: pyhf's hello-world model (pyhf.simplemodels.uncorrelated_background) with data [51, 48]
HELLO = {
    "channels": [
        {
            "name": "singlechannel",
            "samples": [
                {
                    "name": "signal",
                    "data": [12.0, 11.0],
                    "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                },
                {
                    "name": "background",
                    "data": [50.0, 52.0],
                    "modifiers": [
                        {"name": "uncorr_bkguncrt", "type": "shapesys", "data": [3.0, 7.0]}
                    ],
                },
            ],
        }
    ],
    "observations": [{"name": "singlechannel", "data": [51.0, 48.0]}],
    "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
    "version": "1.0.0",
}


@pytest.fixture
def hello(tmp_path):
    path = tmp_path / "hello.json"
    path.write_text(json.dumps(HELLO))
    return str(path)


def test_qtilde_with_zero_asimov_statistic_is_one():
    """q~ at the Asimov μ: q_A = 0 and a tiny q > 0 from rounding; the branch beyond
    q_A would be q / 0. pyhf (since issue 2722) takes the other branch: CLs = 1."""
    cls, clsb, clb, cls_exp, _ = cls_asymptotic(np.array([1e-12, 0.0]), np.zeros(2), "qtilde")
    assert np.all(cls == 1.0) and np.all(cls_exp == 1.0)
    assert np.all(np.isfinite(clsb)) and np.all(np.isfinite(clb))


@pytest.mark.parametrize(("test_stat", "q"), [("qtilde", [164.0, 184.0]), ("q", [1764.0, 2209.0])])
def test_cls_stays_defined_where_both_tails_underflow(test_stat, q):
    """q values whose shifted statistic is 40 and 45 put CLs+b and CLb below the
    smallest double; CLs is still their ratio (from the logarithms), not 0/0, and it
    falls with q as it must."""
    cls, clsb, clb, _, _ = cls_asymptotic(np.array(q), np.array([4.0, 4.0]), test_stat)
    assert np.all(clb == 0.0) and np.all(clsb == 0.0)  # the tails themselves underflow ...
    assert np.all(np.isfinite(cls)) and np.all(cls > 0)  # ... their ratio does not
    assert cls[1] < cls[0] < 1e-30


def test_cls_at_poi_zero_on_the_hello_world_model(hello):
    """`hfpipe cls --poi-value 0` printed CLs_obs NaN with exit 0; pyhf gives ≈ 1."""
    result = CliRunner().invoke(main, ["cls", hello, "--poi-value", "0"])
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output["CLs_obs"] == pytest.approx(1.0, abs=1e-6)
    assert output["CLs_exp"] == pytest.approx([1.0] * 5, abs=1e-6)


@pytest.mark.parametrize(
    "args",
    [
        ["cls", "--poi-value", "12"],
        ["cls", "--poi-value", "-1"],
        ["cls", "--poi-value", "12", "--calctype", "toybased", "--ntoys", "10"],
        ["fit", "--fixed-poi", "10.5"],
    ],
    ids=["above", "below", "toys", "fit"],
)
def test_poi_value_outside_its_bounds_is_refused(hello, args):
    """A fit started inside the bounds clipped the POI to them and tested another
    hypothesis (μ = 10 for 12) without a word; pyhf refuses such a value."""
    result = CliRunner().invoke(main, [args[0], hello, *args[1:]])
    assert result.exit_code == 2, result.output
    assert "POI value" in result.stderr and "outside the bounds [0, 10]" in result.stderr
    assert result.stderr.count("\n") == 1


def test_fixed_poi_is_refused(tmp_path):
    """A POI fixed by the measurement leaves no free fit: pyhf refuses a hypothesis test
    of it; hfpipe computed CLs as if it were free (0.03708 against 0.03701)."""
    workspace = json.loads(json.dumps(HELLO))
    workspace["measurements"][0]["config"]["parameters"] = [{"name": "mu", "fixed": True}]
    path = tmp_path / "fixed.json"
    path.write_text(json.dumps(workspace))
    for args in (["cls"], ["cls", "--calctype", "toybased", "--ntoys", "10"]):
        result = CliRunner().invoke(main, [args[0], str(path), *args[1:]])
        assert result.exit_code == 2, result.output
        assert "the POI 'mu' is fixed by the measurement" in result.stderr
    assert CliRunner().invoke(main, ["fit", str(path)]).exit_code == 0  # a fit is fine


def test_scan_rows_outside_the_poi_bounds_are_invalid():
    frame = scan(f"{EXAMPLE}/BkgOnly.json", f"{EXAMPLE}/patchset.json", mu=20.0)
    assert set(frame["status"]) == {"invalid"}
    assert frame["message"].str.contains("outside the bounds").all()


def test_label_named_like_a_column_is_renamed(tmp_path):
    """A patchset label `point` overwrote the point names (internal error: KeyError)."""
    patchset = json.loads(Path(f"{EXAMPLE}/patchset.json").read_text())
    patchset["metadata"]["labels"] = ["point", "cls_obs"]
    path = tmp_path / "patchset.json"
    path.write_text(json.dumps(patchset))
    output = tmp_path / "out.parquet"
    result = CliRunner().invoke(
        main, ["scan", f"{EXAMPLE}/BkgOnly.json", str(path), "-o", str(output)]
    )
    assert result.exit_code == 0, result.output
    assert "label 'point' is also a column" in result.stderr
    table = pd.read_parquet(output)
    assert list(table["point"]) == [p["metadata"]["name"] for p in patchset["patches"]]
    values = [p["metadata"]["values"] for p in patchset["patches"]]
    assert list(table["label_point"]) == [v[0] for v in values]
    assert list(table["label_cls_obs"]) == [v[1] for v in values]
    assert (table["status"] == "ok").all() and table["cls_obs"].between(0, 1).all()
    strict = CliRunner().invoke(
        main, ["scan", f"{EXAMPLE}/BkgOnly.json", str(path), "-o", str(output), "--strict"]
    )
    assert strict.exit_code == 2 and "metadata.labels[0]" in strict.stderr
