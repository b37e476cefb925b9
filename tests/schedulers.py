"""Which real batch systems the tests may use, and how to reach them.

The contract with CI: ``HFPIPE_CI_SCHEDULERS`` lists the schedulers that ``.ci/run``
started (``slurm,htcondor``; see ``ci/*-up.sh``). A test needing a listed scheduler fails
if it cannot reach it; one needing a scheduler that is not listed and not reachable is
skipped (a developer's machine without Slurm or HTCondor).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

__all__ = ["CONDOR_USER", "as_condor_user", "require_scheduler"]

#: HTCondor refuses jobs owned by root; ci/htcondor-up.sh creates this user to submit
CONDOR_USER = "hfpipe"


def _listed() -> set[str]:
    return {s.strip() for s in os.environ.get("HFPIPE_CI_SCHEDULERS", "").split(",") if s.strip()}


def _output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"<{error}>"
    return done.stdout if done.returncode == 0 else f"<exit {done.returncode}: {done.stderr}>"


def as_condor_user(command: list[str]) -> list[str]:
    """``command`` run as the unprivileged submitter when we are root (as on CI)."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", CONDOR_USER, "--", *command]


def _reachable(name: str) -> str | None:
    """None if ``name`` accepts jobs, else why not."""
    if name == "slurm":
        if not shutil.which("sinfo"):
            return "sinfo not found"
        states = _output(["sinfo", "-h", "-o", "%T"])
        ok = any(s in states for s in ("idle", "mixed", "allocated", "completing"))
        return None if ok else f"no Slurm node accepts jobs (sinfo: {states.strip()!r})"
    if name == "htcondor":
        if not shutil.which("condor_status"):
            return "condor_status not found"
        if (
            os.geteuid() == 0
            and subprocess.run(["id", CONDOR_USER], capture_output=True).returncode
        ):
            return f"no user {CONDOR_USER!r} to submit as (run ci/htcondor-up.sh)"
        schedds = _output(as_condor_user(["condor_status", "-schedd", "-af", "Name"]))
        return None if schedds.strip() and not schedds.startswith("<") else f"no schedd: {schedds}"
    raise ValueError(name)


def require_scheduler(name: str) -> None:
    """Fail (listed in HFPIPE_CI_SCHEDULERS) or skip (not listed) unless ``name`` is up."""
    problem = _reachable(name)
    if problem is None:
        return
    if name in _listed():
        pytest.fail(f"{name} is listed in HFPIPE_CI_SCHEDULERS but unreachable: {problem}")
    pytest.skip(f"{name} not available: {problem}")
