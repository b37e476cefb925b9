"""The Snakemake workflow with a signal table instead of a patchset (``signals:`` and
``signals_config:`` in the config): the bundled example's signal points, written into a
table, in chunks of 3 with the local profile, give the table an in-process patchset scan
gives; ``hfpipe prepare`` plans a table's hypotheses; the schema takes one of patchset
and signals."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from signal_tables import patchset_to_signals
from workflow_helpers import run_snakemake

from hfpipe import spec
from hfpipe.results import read_table
from hfpipe.scanning import scan
from hfpipe.scanning.chunks import plan_chunks

pytest.importorskip("snakemake")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "example"
VALUES = ["cls_obs", "cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]


def _signal_inputs(folder: Path) -> tuple[Path, Path]:
    workspace = spec.load_workspace(EXAMPLE / "BkgOnly.json")
    frame, config = patchset_to_signals(spec.load_patchset(EXAMPLE / "patchset.json"), workspace)
    frame.to_csv(folder / "signals.csv", index=False)
    (folder / "signals.yaml").write_text(yaml.safe_dump(config))
    return folder / "signals.csv", folder / "signals.yaml"


def _config(folder: Path, analysis: dict) -> None:
    config = {"analyses": [analysis], "chunk_size": 3}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))


def test_prepare_plans_the_hypotheses_of_a_table(tmp_path):
    table, config = _signal_inputs(tmp_path)
    plan = plan_chunks(
        EXAMPLE / "BkgOnly.json", None, chunk_size=4, signals=table, signals_config=config
    )
    assert plan["chunks"] == [
        ["sig_300_100", "sig_400_100", "sig_500_200", "sig_600_200"],
        ["sig_700_300", "sig_800_300"],
    ]
    assert plan["patchset"] is None and plan["signals"] == str(table)


def test_schema_takes_a_patchset_or_signals_not_both(tmp_path):
    table, _ = _signal_inputs(tmp_path)
    both = {
        "name": "example",
        "workspace": str(EXAMPLE / "BkgOnly.json"),
        "patchset": str(EXAMPLE / "patchset.json"),
        "signals": str(table),
    }
    _config(tmp_path, both)
    done = run_snakemake(tmp_path, "--dry-run")
    assert done.returncode != 0 and "Error validating config file" in done.stdout, done.stdout


@pytest.mark.slow
def test_local_profile_scans_a_signal_table(tmp_path):
    table, config = _signal_inputs(tmp_path)
    analysis = {
        "name": "example-signals",
        "workspace": str(EXAMPLE / "BkgOnly.json"),
        "signals": str(table),
        "signals_config": str(config),
    }
    _config(tmp_path, analysis)
    done = run_snakemake(tmp_path, "--cores", "2")
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    results = tmp_path / "results" / "example-signals"
    assert len(list((results / "parts").glob("chunk_*.parquet"))) == 2
    frame, provenance = read_table(results / "scan.parquet")
    assert provenance["patchset"]["kind"] == "signals"
    assert (results / "contour.png").stat().st_size > 1000
    direct = scan(EXAMPLE / "BkgOnly.json", EXAMPLE / "patchset.json")
    assert list(frame["point"]) == list(direct["point"]) and (frame["status"] == "ok").all()
    assert frame[VALUES].to_numpy().tolist() == direct[VALUES].to_numpy().tolist()
