"""The workflow's ranking rule (workflow/rules/ranking.smk) on the bundled example: the
points under an analysis' `rank` are part of the default target, a local-profile run
makes their table and plot, equal to an in-process ranking, and the schema checks the
key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from workflow_helpers import example_run_folder, run_snakemake

from hfpipe.infer.ranking import IMPACTS, ranking
from hfpipe.model import compile_model
from hfpipe.results import read_table
from hfpipe.spec import load_patchset

pytest.importorskip("snakemake")

ROOT = Path(__file__).resolve().parents[1]
POINT = "sig_600_200"  # the bundled config's point to rank


@pytest.fixture
def folder(tmp_path) -> Path:
    return example_run_folder(tmp_path)


def test_ranked_points_are_in_the_default_target_and_the_schema_checks_them(folder):
    dry = run_snakemake(folder, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert (
        f"rank examples/example/BkgOnly.json --patchset examples/example/patchset.json --point {POINT}"
        in dry.stdout
    )
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["analyses"][0]["rank"] = ["a/b"]
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    bad = run_snakemake(folder, "--dry-run")
    assert bad.returncode != 0 and "Error validating config file" in bad.stdout


@pytest.mark.slow
def test_local_profile_ranks_the_point(folder):
    results = folder / "results" / "example" / "ranking"
    targets = [f"results/example/ranking/{POINT}.{suffix}" for suffix in ("parquet", "png")]
    done = run_snakemake(folder, "--cores", "1", *targets)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    table, provenance = read_table(results / f"{POINT}.parquet")
    assert provenance["point"] == POINT and provenance["settings"]["normsys_code"] == "code4"
    patch = load_patchset(ROOT / "examples" / "example" / "patchset.json")[POINT]
    model = compile_model(ROOT / "examples" / "example" / "BkgOnly.json", patches=[patch])
    expected = ranking(model)
    np.testing.assert_allclose(table[list(IMPACTS)], expected[list(IMPACTS)], atol=1e-9)
    assert (results / f"{POINT}.png").read_bytes()[:4] == b"\x89PNG"
