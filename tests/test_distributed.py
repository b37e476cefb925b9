"""Scans on Dask and scans that lose nothing: a LocalCluster scan equals the in-process
one, a worker killed mid-scan costs nothing, a batch that raises becomes failed rows, and
``hfpipe scan`` killed with SIGKILL leaves only complete Parquet files and resumes.

All on ATLAS 3L-eRJR (64 points, batches of 16). Worker processes and CLI subprocesses
share a JAX compilation cache in a temporary directory, so each compiles the scan's
functions once per test session, not once per process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hfpipe.cluster import load_cluster_config, make_cluster
from hfpipe.errors import InputError
from hfpipe.results import read_table, scan_to_parquet
from hfpipe.scan import ERROR_STATUS, scan

ROOT = Path(__file__).resolve().parents[1]
VALUES = ["cls_obs", "cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]
VALUES += ["mu_hat", "twice_nll"]
BATCH = 16


@pytest.fixture(scope="module")
def erjr(shared_data):
    folder = shared_data / "atlas-3l-erjr"
    return folder / "BkgOnly.json", folder / "patchset.json"


@pytest.fixture(scope="module")
def reference(erjr):
    """The in-process scan every other result must reproduce."""
    frame = scan(*erjr, batch_size=BATCH)
    assert len(frame) == 64 and (frame["status"] == "ok").all()
    return frame.set_index("point")


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory) -> dict[str, str]:
    """Environment that points new processes at one persistent JAX compilation cache."""
    return {
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache")),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


@pytest.fixture(scope="module")
def client(jax_cache):
    from distributed import Client

    config = {"kind": "local", "workers": 2, "cores": 1, "extra": {"env": jax_cache}}
    with make_cluster(config) as cluster, Client(cluster) as client:
        yield client


def _assert_same(frame: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert sorted(frame["point"]) == sorted(reference.index)  # every point exactly once
    assert (frame["status"] == "ok").all(), list(frame["message"])
    ours = frame.set_index("point").loc[reference.index, VALUES].to_numpy(float)
    np.testing.assert_allclose(ours, reference[VALUES].to_numpy(float), rtol=0, atol=1e-10)


def test_local_cluster_scan_equals_in_process_scan(erjr, reference, client):
    frame = scan(*erjr, batch_size=BATCH, client=client)
    _assert_same(frame, reference)
    assert list(frame["point"]) == list(reference.index)  # patchset order, not finish order


def test_worker_killed_mid_scan(erjr, reference, client):
    killed = {}

    def kill_a_busy_worker(records):
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        assert busy, "no batch left running to lose"
        pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
        killed.update(worker=busy[0], tasks=client.processing()[busy[0]])
        os.kill(pid, signal.SIGKILL)

    frame = scan(*erjr, batch_size=BATCH, client=client, on_batch=kill_a_busy_worker)
    assert killed["tasks"]  # the killed worker was running a batch: it had to be re-run
    assert len(frame) == 64
    _assert_same(frame, reference)


def test_raising_batch_is_failed_rows_and_resume_recomputes_them(
    erjr, reference, tmp_path, monkeypatch
):
    import hfpipe.scan.run as run

    original = run.run_batch

    def flaky(batch, rows, settings):
        if 0 in rows:
            raise RuntimeError("device lost")
        return original(batch, rows, settings)

    output = tmp_path / "scan.parquet"
    monkeypatch.setattr(run, "run_batch", flaky)
    frame = scan_to_parquet(*erjr, output, batch_size=BATCH)
    failed = frame[frame["status"] == ERROR_STATUS]
    assert len(failed) == BATCH and (frame["status"] != ERROR_STATUS).sum() == 64 - BATCH
    assert failed["message"].str.contains("RuntimeError: device lost").all()

    monkeypatch.setattr(run, "run_batch", original)
    frame = scan_to_parquet(*erjr, output, batch_size=BATCH)
    assert frame.attrs == {"computed": BATCH, "reused": 64 - BATCH}
    _assert_same(frame, reference)
    _assert_same(read_table(output)[0], reference)


def test_sigkilled_cli_scan_leaves_complete_files_and_resumes(erjr, reference, tmp_path, jax_cache):
    output = tmp_path / "scan.parquet"
    parts = tmp_path / "scan.parquet.parts"
    command = [sys.executable, "-m", "hfpipe.cli", "scan", *map(str, erjr), "-o", str(output)]
    command += ["--batch-size", str(BATCH)]
    env = {**os.environ, **jax_cache, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not list(parts.glob("*.parquet")) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    stderr = process.communicate()[1]
    assert process.returncode == -signal.SIGKILL, stderr  # killed, not finished

    assert not output.exists()
    kept = {}
    for path in tmp_path.rglob("*.parquet"):  # every Parquet file left is complete
        frame, provenance = read_table(path)
        assert provenance["run_digest"] and len(frame) == BATCH
        kept |= {row["point"]: row for row in frame.to_dict("records")}
    assert 0 < len(kept) < 64

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert f"({64 - len(kept)} computed, {len(kept)} from an earlier run)" in rerun.stderr
    frame, provenance = read_table(output)
    _assert_same(frame, reference)
    assert provenance["settings"]["batch_size"] == BATCH
    for point, row in frame.set_index("point").loc[list(kept)].iterrows():
        assert row["seconds"] == kept[point]["seconds"]  # read back, not recomputed
    assert not parts.exists() and not list(tmp_path.glob(".*.tmp"))


def test_cluster_config_errors_are_one_line(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text("kind: pbs\n")
    with pytest.raises(InputError, match=r"cluster.yaml: kind: unknown kind 'pbs'"):
        load_cluster_config(config)
    with pytest.raises(InputError, match="walltime: only a slurm cluster"):
        load_cluster_config({"kind": "htcondor", "walltime": "01:00:00"})
    with pytest.raises(InputError, match="gpu: unknown key"):
        load_cluster_config({"kind": "slurm", "gpu": 1})
    assert load_cluster_config({"kind": "slurm", "job_script_prologue": "source env"})[
        "job_script_prologue"
    ] == ["source env"]
