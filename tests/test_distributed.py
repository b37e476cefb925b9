"""Scans on Dask and scans that lose nothing: a LocalCluster scan equals the in-process
one, a worker killed mid-scan costs nothing, a batch that raises becomes failed rows, and
``hfpipe scan`` killed with SIGKILL leaves only complete Parquet files and resumes.

And ``hfpipe scan --scheduler slurm|condor`` through dask-jobqueue against the real
single-node Slurm and HTCondor pool that ``ci/*-up.sh`` start (tests/schedulers.py: these
fail when listed in ``HFPIPE_CI_SCHEDULERS`` but unreachable, else skip).

All on ATLAS 3L-eRJR (64 points, batches of 16; slow), and the Dask scan and the resume
also on the bundled example (6 points, batches of 2; the fast tier). Worker processes, batch jobs and CLI
subprocesses share a JAX compilation cache in a temporary directory, so the scan's
functions are compiled once per test module, not once per process.
"""

from __future__ import annotations

import os
import shutil
import signal
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

from hfpipe.errors import InputError
from hfpipe.results import ERROR_STATUS, read_table
from hfpipe.scanning import scan, scan_to_parquet
from hfpipe.scanning.cluster import load_cluster_config, make_cluster

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
def jax_cache():
    """Environment that points new processes at one persistent JAX compilation cache
    (writable by everyone: HTCondor jobs run as an unprivileged user)."""
    folder = tempfile.mkdtemp(prefix="hfpipe-jax-cache-")
    os.chmod(folder, 0o777)
    yield {
        "JAX_COMPILATION_CACHE_DIR": folder,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    shutil.rmtree(folder)


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


@pytest.fixture(scope="module")
def cluster_scan(erjr, client):
    """The LocalCluster scan; after it, both workers have compiled the scan's functions."""
    return scan(*erjr, batch_size=BATCH, client=client)


@pytest.mark.slow
def test_local_cluster_scan_equals_in_process_scan(cluster_scan, reference):
    frame = cluster_scan
    _assert_same(frame, reference)
    assert list(frame["point"]) == list(reference.index)  # patchset order, not finish order


def _count_compilations(dask_worker) -> None:
    """On a worker: count XLA compilations from now on (JAX's compile event)."""
    import jax

    dask_worker.compilations = found = []

    def listen(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            found.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)


def _compilations(dask_worker) -> int | None:
    found = getattr(dask_worker, "compilations", None)
    return None if found is None else len(found)


@pytest.mark.slow
def test_worker_killed_mid_scan(erjr, reference, client, cluster_scan):
    """Also: a worker that ran batches of this structure before (``cluster_scan``)
    compiles nothing."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    client.run(_count_compilations)
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
    compilations = client.run(_compilations)  # None: the restarted worker (new process)
    assert [n for n in compilations.values() if n is not None] == [0]  # survivor reused


EXAMPLE = ROOT / "examples" / "example"


@pytest.fixture(scope="module")
def example():
    """The bundled example (6 points) and its in-process scan in batches of 2: the fast
    tier's Dask scans."""
    inputs = EXAMPLE / "BkgOnly.json", EXAMPLE / "patchset.json"
    frame = scan(*inputs, batch_size=2)
    assert len(frame) == 6 and (frame["status"] == "ok").all()
    return inputs, frame.set_index("point")


def test_local_cluster_scan_of_the_example_equals_in_process_scan(example, client):
    inputs, reference = example
    frame = scan(*inputs, batch_size=2, client=client)
    _assert_same(frame, reference)
    assert list(frame["point"]) == list(reference.index)  # patchset order, not finish order


def test_raising_batch_of_the_example_is_failed_rows_and_resume_recomputes_them(
    example, tmp_path, monkeypatch
):
    import hfpipe.scanning.batches as run

    (inputs, reference), original = example, run.run_batch

    def flaky(batch, rows, settings):
        if 0 in rows:
            raise RuntimeError("device lost")
        return original(batch, rows, settings)

    output = tmp_path / "scan.parquet"
    monkeypatch.setattr(run, "run_batch", flaky)
    frame = scan_to_parquet(*inputs, output, batch_size=2)
    failed = frame[frame["status"] == ERROR_STATUS]
    assert len(failed) == 2 and (frame["status"] != ERROR_STATUS).sum() == 4
    assert failed["message"].str.contains("RuntimeError: device lost").all()

    monkeypatch.setattr(run, "run_batch", original)
    frame = scan_to_parquet(*inputs, output, batch_size=2)
    assert frame.attrs == {"computed": 2, "reused": 4}
    _assert_same(frame, reference)
    _assert_same(read_table(output)[0], reference)


def test_connect_to_a_scheduler_address(client):
    from hfpipe.scanning.cluster import connect

    with connect(client.scheduler.address) as other:
        assert other.scheduler.address == client.scheduler.address
        assert other.scheduler_info()["workers"]
    assert client.status == "running"  # a cluster we did not start is left running


@pytest.mark.slow
def test_raising_batch_is_failed_rows_and_resume_recomputes_them(
    erjr, reference, tmp_path, monkeypatch
):
    import hfpipe.scanning.batches as run

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


@pytest.mark.slow
def test_sigkilled_cli_scan_leaves_complete_files_and_resumes(erjr, reference, tmp_path, jax_cache):
    output = tmp_path / "scan.parquet"
    parts = tmp_path / "scan.parquet.parts"
    command = [sys.executable, "-m", "hfpipe.cli", "scan", *map(str, erjr), "-o", str(output)]
    command += ["--batch-size", str(BATCH)]
    env = {**os.environ, **jax_cache, "PYTHONPATH": str(ROOT)}
    inputs = [path.read_bytes() for path in erjr]
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
    assert [path.read_bytes() for path in erjr] == inputs  # inputs never written to


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["slurm", "condor"])
def test_cli_scan_on_batch_system(scheduler, erjr, reference, jax_cache):
    """Two batch jobs (dask-jobqueue ``SLURMCluster`` / ``HTCondorCluster``), each one Dask
    worker, scan 32 points; the table equals the in-process scan."""
    require_scheduler({"condor": "htcondor"}.get(scheduler, scheduler))
    folder = Path(tempfile.mkdtemp(prefix=f"hfpipe-{scheduler}-"))
    folder.chmod(0o777)  # HTCondor runs the scan and the jobs as an unprivileged user
    env = {**os.environ, **jax_cache, "PYTHONPATH": str(ROOT)}
    config = {
        "cores": 1,
        "memory": "2GB",
        "interface": "lo",
        "job_script_prologue": [
            f"export {k}={v}" for k, v in {**jax_cache, "PYTHONPATH": ROOT}.items()
        ],
        "extra": {"log_directory": str(folder / "logs")},
    }
    if scheduler == "slurm":
        config["walltime"] = "00:20:00"
    else:
        env["HOME"] = os.path.expanduser(f"~{CONDOR_USER}")
    (folder / "cluster.yaml").write_text(yaml.safe_dump(config))
    points = list(reference.index[: 2 * BATCH])
    command = [sys.executable, "-m", "hfpipe.cli", "scan", *map(str, erjr)]
    command += ["-o", str(folder / "scan.parquet"), "--batch-size", str(BATCH)]
    command += ["--points", ",".join(points), "--scheduler", scheduler, "--workers", "2"]
    command += ["--cluster-config", str(folder / "cluster.yaml")]
    if scheduler == "condor":
        command = as_condor_user(command)
    try:
        done = subprocess.run(
            command, env=env, cwd=folder, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert list((folder / "logs").iterdir())  # the workers ran as batch jobs
        frame, _ = read_table(folder / "scan.parquet")
        _assert_same(frame, reference.loc[points])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
