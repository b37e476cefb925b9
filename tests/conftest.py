"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hfpipe._jax  # noqa: F401  (sets JAX's flags before any test touches JAX)

#: the published likelihoods used by tests, next to the repository (never copied into it)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: skips the test where it is absent, but fails on CI (``CI`` set)."""
    if not SHARED_DATA.is_dir():
        message = f"shared test data not found at {SHARED_DATA}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def load_analysis(shared_data):
    """``load_analysis("atlas-3l-erjr")`` → (workspace, patchset, reference rows)."""
    import csv

    from hfpipe import spec

    cache = {}

    def load(name: str):
        if name not in cache:
            folder = shared_data / name
            suffix = ".json.gz" if (folder / "BkgOnly.json.gz").exists() else ".json"
            with open(folder / "reference_pyhf.csv") as f:
                rows = list(csv.DictReader(f))
            cache[name] = (
                spec.load_workspace(folder / f"BkgOnly{suffix}"),
                spec.load_patchset(folder / f"patchset{suffix}"),
                rows,
            )
        return cache[name]

    return load


#: test modules that submit jobs to the CI's Slurm and HTCondor (a node of two cores, a
#: pool of one slot): one xdist worker runs them, one after another, so that no test's
#: jobs queue behind another's
_BATCH_SYSTEM_MODULES = {"test_distributed.py", "test_workflow.py"}


def pytest_collection_modifyitems(items):
    """Groups for ``pytest -n 2 --dist loadgroup`` (pytest-xdist, as the README runs the
    tests): a module's tests stay on one worker, so module-scoped fixtures (a server, a
    scan) are made once, and the batch-system modules share one worker."""
    for item in items:
        module = item.path.name
        group = "batch-systems" if module in _BATCH_SYSTEM_MODULES else module
        item.add_marker(pytest.mark.xdist_group(group))
