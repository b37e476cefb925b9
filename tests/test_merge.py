"""Planning chunks (hfpipe prepare) and merging their parts (hfpipe merge): the checks
that make a scan run as many jobs one trustworthy table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from hfpipe.cli import main
from hfpipe.errors import HfpipeError
from hfpipe.results import merge_tables, read_table, write_table
from hfpipe.scanning.chunks import plan_chunks

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example"
PROVENANCE = {
    "hfpipe_version": "0.1.0",
    "workspace": {"path": "w.json", "sha256": "aa"},
    "patchset": {"path": "p.json", "sha256": "bb"},
    "settings": {"test_stat": "qtilde", "mu": 1.0},
}


@pytest.fixture
def example():
    return EXAMPLE / "BkgOnly.json", EXAMPLE / "patchset.json"


def _part(folder, name, points, **changes):
    frame = pd.DataFrame({"analysis": "a", "point": points, "cls_obs": 0.5, "status": "ok"})
    return write_table(frame, folder / name, {**PROVENANCE, **changes})


def test_plan_keeps_patchset_order_and_splits_into_chunks(example):
    workspace, patchset = example
    plan = plan_chunks(workspace, patchset, chunk_size=4)
    assert plan["chunks"] == [
        ["sig_300_100", "sig_400_100", "sig_500_200", "sig_600_200"],
        ["sig_700_300", "sig_800_300"],
    ]
    chosen = plan_chunks(workspace, patchset, chunk_size=1, points=["sig_800_300", "sig_300_100"])
    assert chosen["chunks"] == [["sig_300_100"], ["sig_800_300"]]
    assert chosen["analysis"] == "hfpipe-example"


@pytest.mark.parametrize(
    ("points", "chunk_size", "problem"),
    [(["sig_300_10"], 2, "no patch named 'sig_300_10'"), (None, 0, "at least 1")],
)
def test_plan_rejects_unknown_points_and_empty_chunks(example, points, chunk_size, problem):
    with pytest.raises(HfpipeError, match=problem):
        plan_chunks(*example, chunk_size=chunk_size, points=points)


def test_merge_concatenates_in_plan_order_and_keeps_provenance(tmp_path):
    parts = [_part(tmp_path, "b.parquet", ["p3", "p4"]), _part(tmp_path, "a.parquet", ["p1"])]
    frame, provenance = merge_tables(parts, expected_points=["p1", "p3", "p4"])
    assert list(frame["point"]) == ["p1", "p3", "p4"]
    assert provenance["settings"] == PROVENANCE["settings"]
    assert provenance["parts"] == ["b.parquet", "a.parquet"]


@pytest.mark.parametrize(
    ("second", "expected", "problem"),
    [
        ({"points": ["p2"], "settings": {"test_stat": "q", "mu": 1.0}}, None, "other inputs or"),
        ({"points": ["p2"], "patchset": {"sha256": "cc"}}, None, "other inputs or"),
        ({"points": ["p1"]}, None, "'p1' is in more than one part"),
        ({"points": ["p2"]}, ["p1", "p2", "p3"], r"missing \['p3'\]"),
    ],
)
def test_merge_refuses_parts_that_do_not_belong_together(tmp_path, second, expected, problem):
    first = _part(tmp_path, "1.parquet", ["p1"])
    other = _part(tmp_path, "2.parquet", second.pop("points"), **second)
    with pytest.raises(HfpipeError, match=problem):
        merge_tables([first, other], expected_points=expected)


def test_merge_command_reports_one_line(tmp_path):
    first = _part(tmp_path, "1.parquet", ["p1"])
    result = CliRunner().invoke(main, ["merge", str(first), str(first), "-o", "x.parquet"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("hfpipe: error: point 'p1'")
    good = CliRunner().invoke(main, ["merge", str(first), "-o", str(tmp_path / "m.parquet")])
    assert good.exit_code == 0, good.output
    assert list(read_table(tmp_path / "m.parquet")[0]["point"]) == ["p1"]
