"""The Snakemake workflow (workflow/, profiles/): locally, and through real Slurm and HTCondor.

Local (profiles/local): ATLAS 3L-eRJR, all 64 points in chunks of 16 → a table matching
pyhf's reference and a contour; a second run does nothing; a deleted part is recomputed
alone and merged again.

Batch systems (profiles/slurm, profiles/condor; started by ci/*-up.sh, see
tests/schedulers.py for when these run, skip or fail): a subset of 3L-eRJR points in
chunks of 2. While the workflow runs, one scan job is killed through the scheduler
(scancel / condor_rm); the run must retry it and end with the complete table, and the
scheduler's own records must show every job.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from schedulers import CONDOR_USER, as_condor_user, require_scheduler

from hfpipe.results import read_table
from hfpipe.scanning import scan

pytest.importorskip("snakemake")

ROOT = Path(__file__).resolve().parents[1]
CLS_COLUMNS = ["cls_obs", "cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]
#: a few 3L-eRJR points for the batch-system runs: two chunks of two
BATCH_POINTS = ["ERJR_100p0_20p0", "ERJR_100p0_40p0", "ERJR_125p0_35p0", "ERJR_150p0_50p0"]


def _write_config(folder: Path, analysis_dir: Path, points, chunk_size: int) -> Path:
    config = {
        "analyses": [
            {
                "name": "atlas-3l-erjr",
                "workspace": str(analysis_dir / "BkgOnly.json"),
                "patchset": str(analysis_dir / "patchset.json"),
                "points": points,
            }
        ],
        "chunk_size": chunk_size,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _snakemake(folder: Path, profile: str, *extra: str) -> list:
    """The command line running the repository's workflow in ``folder``."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "workflow" / "Snakefile"),
        "--directory",
        str(folder),
        "--configfile",
        str(folder / "config.yaml"),
        "--profile",
        str(ROOT / "profiles" / profile),
        *extra,
    ]


def _env() -> dict:
    """Jobs import this checkout's hfpipe, whatever is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run(command: list, **kwargs) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, env=_env(), timeout=900, **kwargs
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


def _job_counts(output: str) -> dict[str, int]:
    """The jobs a Snakemake run started: rule → how many (from its `rule x:` headers)."""
    counts: dict[str, int] = {}
    for rule in re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):$", output, re.MULTILINE):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def _reference(analysis_dir: Path) -> dict[str, dict]:
    with open(analysis_dir / "reference_pyhf.csv") as f:
        return {row["point"]: row for row in csv.DictReader(f)}


def _assert_matches_reference(table: Path, analysis_dir: Path, points) -> None:
    """Every planned point once, all fits ok, CLs within 1e-3 of pyhf's reference.

    Where the engine and pyhf's reference differ by more (points where pyhf's fits stop
    early or sit at the POI bound; test_cls_parity.py shows each of our fits is at least
    as good as pyhf's there), the workflow must give exactly what one in-process
    ``hfpipe.scanning`` of those points gives: chunking and batch jobs change no number.
    """
    frame, provenance = read_table(table)
    assert sorted(frame["point"]) == sorted(points) and frame["point"].is_unique
    assert (frame["status"] == "ok").all(), frame[["point", "status", "message"]]
    assert frame["analysis"].eq("atlas-3l-erjr").all()
    assert provenance["patchset"]["sha256"] and provenance["settings"]["test_stat"] == "qtilde"
    reference = _reference(analysis_dir)
    ours = frame.set_index("point")[CLS_COLUMNS]
    theirs = pd.DataFrame([reference[p] for p in ours.index], index=ours.index)[CLS_COLUMNS]
    differ = (ours - theirs.astype(float)).abs().max(axis=1) > 1e-3
    print(f"{(~differ).sum()} of {len(ours)} points within 1e-3 of pyhf's reference")
    if differ.any():
        direct = scan(
            analysis_dir / "BkgOnly.json",
            analysis_dir / "patchset.json",
            points=list(ours.index[differ]),
        ).set_index("point")[CLS_COLUMNS]
        np.testing.assert_allclose(ours[differ], direct.loc[ours.index[differ]], atol=1e-6)


def test_bundled_config_plans_the_example_and_the_schema_rejects_bad_configs(tmp_path):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config.yaml")
    dry_run = _run(_snakemake(tmp_path, "local", "--dry-run"))
    assert "hfpipe prepare examples/example/BkgOnly.json" in dry_run
    assert "--chunk-size 16" in dry_run

    good = yaml.safe_load((tmp_path / "config.yaml").read_text())
    zero_chunks = {**good, "chunk_size": 0}
    bad_points = {**good, "analyses": [{**good["analyses"][0], "points": "some"}]}
    for bad, where in [(zero_chunks, "['chunk_size']"), (bad_points, "['points']")]:
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
        done = subprocess.run(
            _snakemake(tmp_path, "local", "--dry-run"), capture_output=True, text=True, env=_env()
        )
        assert done.returncode != 0
        assert "Error validating config file" in done.stdout and where in done.stdout, done.stdout


@pytest.mark.slow
def test_local_profile_3l_all_points_rerun_and_partial_rerun(shared_data, tmp_path):
    analysis_dir = shared_data / "atlas-3l-erjr"
    all_points = list(_reference(analysis_dir))
    _write_config(tmp_path, analysis_dir, "all", chunk_size=16)
    command = _snakemake(tmp_path, "local", "--cores", "2")
    results = tmp_path / "results" / "atlas-3l-erjr"

    first = _run(command)
    counts = _job_counts(first)
    assert counts["scan_chunk"] == 4 and counts["prepare"] == 1, counts  # 64 points, 16 a job
    _assert_matches_reference(results / "scan.parquet", analysis_dir, all_points)
    for plot in ("contour.png", "contour.pdf"):
        assert (results / plot).stat().st_size > 1000
    assert (tmp_path / "logs" / "atlas-3l-erjr" / "scan_chunk_003.log").exists()
    assert any((tmp_path / ".jax-cache").iterdir())  # the scan jobs' compiled fits

    assert "Nothing to be done" in _run(command)
    before = read_table(results / "scan.parquet")[0]

    parts = sorted((results / "parts").glob("chunk_*.parquet"))
    kept = {p.name: p.stat().st_mtime_ns for p in parts if p.name != "chunk_002.parquet"}
    (results / "parts" / "chunk_002.parquet").unlink()
    third = _run(command)
    counts = _job_counts(third)
    assert counts["scan_chunk"] == 1 and counts["merge"] == 1, counts
    assert set(counts) <= {"scan_chunk", "merge", "contour", "all"}, counts
    assert "chunk_002.parquet" in third
    assert {p.name: p.stat().st_mtime_ns for p in parts if p.name in kept} == kept
    again = read_table(results / "scan.parquet")[0]
    np.testing.assert_allclose(again[CLS_COLUMNS], before[CLS_COLUMNS], rtol=1e-10)
    assert list(again["point"]) == list(before["point"])


# --- real batch systems --------------------------------------------------------------------


def _kill_first_scan_job(process: subprocess.Popen, running_scan_jobs, kill) -> str:
    """Wait until a scan job runs under the scheduler, kill it there, return its id."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        jobs = running_scan_jobs()
        if jobs:
            time.sleep(2)  # let it really start working
            kill(jobs[0])
            return jobs[0]
        time.sleep(1)
    raise AssertionError("no scan job was seen running under the scheduler")


def _run_with_a_kill(command: list, running_scan_jobs, kill, cwd: Path) -> tuple[str, str]:
    with open(cwd / "snakemake.out", "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=cwd
        )
        try:
            killed = _kill_first_scan_job(process, running_scan_jobs, kill)
            process.wait(timeout=900)
        finally:
            if process.poll() is None:
                process.kill()
    output = (cwd / "snakemake.out").read_text()
    assert process.returncode == 0, output[-6000:]
    return output, killed


def _lines(command: list) -> list[list[str]]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return [line.split() for line in done.stdout.splitlines() if line.strip()]


def _check_batch_run(output: str, submitted: list[str], killed: str, folder: Path, shared_data):
    # two chunks, plus the resubmission of the killed one
    assert killed in submitted, (killed, submitted)
    assert len(submitted) == 3, submitted
    assert re.search(r"Trying to restart job \d+", output) or "attempt: 2" in output, output[-4000:]
    results = folder / "results" / "atlas-3l-erjr"
    analysis_dir = shared_data / "atlas-3l-erjr"
    _assert_matches_reference(results / "scan.parquet", analysis_dir, BATCH_POINTS)
    assert (results / "contour.png").exists() and (results / "contour.pdf").exists()


@pytest.fixture
def batch_folder():
    """A work folder in /tmp that the HTCondor submitter (and Slurm's jobs) can use."""
    folder = Path(tempfile.mkdtemp(prefix="hfpipe-workflow-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # a minute or more of batch jobs
def test_slurm_profile_runs_jobs_through_slurm_and_retries_a_scancelled_job(
    shared_data, batch_folder
):
    require_scheduler("slurm")
    _write_config(batch_folder, shared_data / "atlas-3l-erjr", BATCH_POINTS, chunk_size=2)
    command = _snakemake(
        batch_folder,
        "slurm",
        # this CI Slurm has no accounting database (so no sacct, no accounts) and little memory
        "--slurm-status-command",
        "squeue",
        "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks",
        "3",
        "--seconds-between-status-checks",
        "3",
        "--set-resources",
        "scan_chunk:mem_mb=1500",
    )

    def running_scan_jobs():
        rows = _lines(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"])
        return [row[0] for row in rows if len(row) > 1 and row[1].startswith("rule_scan_chunk")]

    def kill(job_id):
        subprocess.run(["scancel", job_id], check=True)

    output, killed = _run_with_a_kill(command, running_scan_jobs, kill, batch_folder)
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", output)
    _check_batch_run(output, submitted, killed, batch_folder, shared_data)
    # Slurm's own record of those jobs (kept for MinJobAge = 300 s by ci/slurm-up.sh)
    states = dict(_lines(["squeue", "-h", "-t", "all", "-j", ",".join(submitted), "-o", "%i %T"]))
    assert states[killed] == "CANCELLED", states
    assert sorted(s for j, s in states.items() if j != killed) == ["COMPLETED", "COMPLETED"]


@pytest.mark.slow  # a minute or more of batch jobs
def test_condor_profile_runs_jobs_through_htcondor_and_retries_a_removed_job(
    shared_data, batch_folder
):
    require_scheduler("htcondor")
    _write_config(batch_folder, shared_data / "atlas-3l-erjr", BATCH_POINTS, chunk_size=2)
    if os.geteuid() == 0:
        shutil.chown(batch_folder, CONDOR_USER, CONDOR_USER)
        shutil.chown(batch_folder / "config.yaml", CONDOR_USER, CONDOR_USER)
    inner = _snakemake(
        batch_folder,
        "condor",
        "--seconds-between-status-checks",
        "3",
        "--set-resources",
        "scan_chunk:htcondor_request_mem_mb=1500",
        "scan_chunk:htcondor_submit_request_cpus=2",
    )
    # HTCondor refuses root's jobs: submit as the unprivileged user, with our environment
    keep = [f"{k}={v}" for k, v in _env().items() if k in ("PATH", "PYTHONPATH", "CI")]
    home = os.path.expanduser(f"~{CONDOR_USER}")
    command = as_condor_user(["env", f"HOME={home}", *keep, *inner])

    def running_scan_jobs():
        rows = _lines(
            as_condor_user(
                ["condor_q", "-constraint", "JobStatus == 2", "-af", "ClusterId", "JobBatchName"]
            )
        )
        return [row[0] for row in rows if len(row) > 1 and row[1].startswith("scan_chunk")]

    def kill(cluster_id):
        subprocess.run(as_condor_user(["condor_rm", cluster_id]), check=True)

    output, killed = _run_with_a_kill(command, running_scan_jobs, kill, batch_folder)
    submitted = re.findall(r"submitted to HTCondor Cluster ID (\d+)", output)
    _check_batch_run(output, submitted, killed, batch_folder, shared_data)
    # HTCondor's own record: the removed job (JobStatus 3) and the completed ones (4)
    history = dict(
        _lines(
            [
                "condor_history",
                "-constraint",
                f"ClusterId >= {min(map(int, submitted))}",
                "-af",
                "ClusterId",
                "JobStatus",
            ]
        )
    )
    assert history[killed] == "3", history
    assert sorted(history[j] for j in submitted if j != killed) == ["4", "4"], history
