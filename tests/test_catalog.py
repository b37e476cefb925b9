"""The Snakemake workflow catalog's conventions (snakemake.github.io/snakemake-workflow-catalog):
config/README.md describes every config key, .snakemake-workflow-catalog.yml has the
usage the catalog reads, min_version in workflow/Snakefile is the lower bound of the
snakemake pin in pyproject.toml, and profiles/default (which Snakemake applies on top of
every --profile) changes no setting of the other profiles. `snakemake --lint` and
`snakefmt --check` themselves run in .ci/run."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _schema_keys(schema: dict, prefix: str = "") -> list[str]:
    """Every property of the config schema, nested ones as `parent.key`."""
    keys = []
    for key, sub in schema.get("properties", {}).items():
        keys.append(f"{prefix}{key}")
        for nested in (sub, sub.get("items", {})):
            if isinstance(nested, dict) and "properties" in nested:
                keys += _schema_keys(nested, f"{prefix}{key}.")
    return keys


def test_config_readme_describes_every_key_of_the_schema():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    readme = (ROOT / "config" / "README.md").read_text()
    keys = _schema_keys(schema)
    assert {"analyses", "analyses.name", "settings.test_stat", "chunk_size"} <= set(keys)
    missing = [key for key in keys if f"`{key.rsplit('.', 1)[-1]}`" not in readme]
    assert not missing, f"config/README.md does not describe {missing}"


def test_catalog_usage_has_the_keys_the_catalog_reads():
    settings = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    usage = settings["usage"]
    assert set(usage["mandatory-flags"]) == {"desc", "flags"}
    assert usage["mandatory-flags"]["desc"].strip()
    deployment = usage["software-stack-deployment"]
    assert set(deployment) <= {"conda", "apptainer", "apptainer+conda", "singularity"}
    assert all(isinstance(value, bool) for value in deployment.values())
    assert isinstance(usage["report"], bool)
    assert (ROOT / "workflow" / "Snakefile").is_file() and (ROOT / "config" / "README.md").is_file()


def test_min_version_is_the_lower_bound_of_the_snakemake_pin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    workflow = project["optional-dependencies"]["workflow"]
    (pin,) = [p for p in workflow if re.match(r"snakemake\s*[<>=]", p)]
    lower = re.fullmatch(r"snakemake>=([0-9.]+),<[0-9.]+", pin.replace(" ", ""))
    assert lower, pin
    snakefile = (ROOT / "workflow" / "Snakefile").read_text()
    assert re.findall(r'^min_version\("([0-9.]+)"\)', snakefile, re.MULTILINE) == [lower[1]]


@pytest.mark.parametrize("other", ["local", "slurm", "condor", "gpu"])
def test_default_profile_changes_no_setting_of_another_profile(other):
    """Snakemake reads profiles/default after --profile X and lets it win: each of its
    settings must be one X leaves unset or sets alike, and none may decide where or on
    how many cores jobs run."""
    default = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    profile = yaml.safe_load((ROOT / "profiles" / other / "config.yaml").read_text())
    assert default and not {"cores", "jobs", "executor", "retries", "config"} & set(default)
    assert all(profile.get(key, value) == value for key, value in default.items())
