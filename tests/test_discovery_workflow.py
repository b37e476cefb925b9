"""The workflow's discovery-table rule (workflow/rules/discovery.smk) on the bundled example:
an analysis' `discovery` regions are part of the default target, a local-profile run
writes the table (Parquet, Markdown, LaTeX) equal to an in-process one, and the schema
checks the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from workflow_helpers import example_run_folder, run_snakemake

from hfpipe.results import read_table
from hfpipe.results.discovery import format_markdown
from hfpipe.scanning.discovery import discovery_table

pytest.importorskip("snakemake")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path) -> Path:
    return example_run_folder(tmp_path)


def test_discovery_regions_are_in_the_default_target_and_the_schema_checks_them(folder):
    dry = run_snakemake(folder, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "discovery-table examples/example/BkgOnly.json --region CR --lumi 139" in dry.stdout
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["analyses"][0]["discovery"] = {"lumi": 139}  # no regions
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    bad = run_snakemake(folder, "--dry-run")
    assert bad.returncode != 0 and "Error validating config file" in bad.stdout


def test_local_profile_writes_the_discovery_table(folder):
    results = folder / "results" / "example"
    targets = [f"results/example/discovery.{suffix}" for suffix in ("parquet", "md", "tex")]
    done = run_snakemake(folder, "--cores", "1", *targets)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    table, provenance = read_table(results / "discovery.parquet")
    assert provenance["settings"]["regions"] == ["CR"] and provenance["settings"]["lumi"] == 139
    expected = discovery_table(ROOT / "examples" / "example" / "BkgOnly.json", ["CR"], lumi=139.0)
    np.testing.assert_allclose(table["s_obs"], expected["s_obs"], rtol=1e-9)
    assert (results / "discovery.md").read_text().strip() == format_markdown(expected)
    assert (results / "discovery.tex").read_text().startswith(r"\begin{tabular}")
