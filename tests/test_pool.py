"""A scan's batches on a local process pool (hfpipe.scanning.pool): the same table, bit
for bit, as in one process; how many processes a scan or a toy run gets by default."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hfpipe.scanning import pool as pool_module
from hfpipe.scanning import scan
from hfpipe.scanning.pool import processes_for, toy_processes_for

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example"
INPUTS = EXAMPLE / "BkgOnly.json", EXAMPLE / "patchset.json"


@pytest.mark.parametrize("chunk_size", [256, 2])
def test_scan_on_two_processes_equals_one_process_bit_for_bit(chunk_size):
    """(with chunks of 2 points, the pool prepares each next chunk during the batches)"""
    one = scan(*INPUTS, workers=1, chunk_size=chunk_size)
    two = scan(*INPUTS, workers=2, chunk_size=chunk_size)
    columns = [c for c in one.columns if c != "seconds"]
    pd.testing.assert_frame_equal(one[columns], two[columns], check_exact=True)
    assert list(two["point"]) == list(one["point"])  # patchset order, not finish order


_MAIN_PROCESS = """
import sys
from hfpipe._platform import only_cpu_possible
from hfpipe.scanning import run, scan_to_parquet
handing_out = run._start_preparing
pandas_first = []
def start_preparing(*args):
    pandas_first.append("pandas" in sys.modules)
    return handing_out(*args)
run._start_preparing = start_preparing
frame = scan_to_parquet({background!r}, {patchset!r}, {output!r}, workers=2)
print("pandas before the workers:", pandas_first)
print("jax loaded:", "jax" in sys.modules, "only the CPU:", only_cpu_possible())
"""


def test_a_scans_main_process_leaves_the_engine_to_its_workers(tmp_path):
    """On a CPU machine the process that orchestrates a scan on a pool never imports JAX
    (it would spend a second on it before the workers start), nor pandas and pyarrow
    before it has handed out the points (they are first needed for the rows), and the
    table is the one-process table."""
    output = tmp_path / "scan.parquet"
    script = _MAIN_PROCESS.format(
        background=str(INPUTS[0]), patchset=str(INPUTS[1]), output=str(output)
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    *_, pandas_first, report = done.stdout.strip().splitlines()
    assert pandas_first == "pandas before the workers: [False]"
    assert report in (
        "jax loaded: False only the CPU: True",
        "jax loaded: True only the CPU: False",
    )
    one = scan(*INPUTS, workers=1)
    two = pd.read_parquet(output)
    columns = [c for c in one.columns if c != "seconds"]
    pd.testing.assert_frame_equal(one[columns], two[columns], check_exact=True)


def test_a_batch_raising_in_a_worker_is_yielded_as_its_exception():
    """(which the scan turns into rows with status error, as for a batch raising in
    this process: tests/test_distributed.py)"""
    with pool_module.ProcessPool(2) as pool:
        outcomes = dict(pool.run_batches(_raise_for_odd, [(_Batch(), [0]), (_Batch(), [1])], None))
    assert outcomes[0] == "ran 1 row"
    assert isinstance(outcomes[1], RuntimeError) and "odd batch" in str(outcomes[1])


class _Batch:
    """A stand-in for a UnionBatch: what the pool needs of it is ``take``."""

    def __init__(self, rows=()):
        self.rows = list(rows)

    def take(self, rows):
        return _Batch(rows)


def _raise_for_odd(batch, rows, settings):
    if batch.rows[0] % 2:
        raise RuntimeError("odd batch")
    return f"ran {len(rows)} row"


@pytest.mark.parametrize(
    ("batches", "workers", "cores", "expected"),
    [
        (125, None, 2, 2),  # 1Lbb on 2 cores: both
        (6, None, 2, 1),  # the example: too few batches to pay for a second process
        (16, None, 2, 2),
        (15, None, 2, 1),
        (1000, None, 16, 16),
        (40, None, 16, 5),
        (6, 2, 2, 2),  # asked for
        (1, 4, 2, 1),  # never more processes than batches
    ],
)
def test_processes_for(monkeypatch, batches, workers, cores, expected):
    monkeypatch.setattr(pool_module, "available_cores", lambda: cores)
    assert processes_for(batches, workers) == expected


@pytest.mark.parametrize(
    ("ntoys", "workers", "cores", "expected"),
    [(2000, None, 2, 1), (5000, None, 2, 2), (100_000, None, 16, 16), (10, 3, 2, 3), (2, 8, 2, 2)],
)
def test_toy_processes_for(monkeypatch, ntoys, workers, cores, expected):
    monkeypatch.setattr(pool_module, "available_cores", lambda: cores)
    assert toy_processes_for(ntoys, workers) == expected


def test_take_keeps_the_rows_numbers_and_members():
    from hfpipe import spec
    from hfpipe.model import compile_model
    from hfpipe.scanning.union import unify

    ws = spec.load_workspace(INPUTS[0])
    ps = spec.load_patchset(INPUTS[1])
    models = [compile_model(ws, patches=[ps[n]]) for n in list(ps.names)[:3]]
    samples = {c["name"]: {s["name"] for s in c["samples"]} for c in ws["channels"]}
    parameters = {m["name"] for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]}
    (batch,) = unify([(m.structure, m.numbers) for m in models], samples, parameters)
    taken = batch.take([2, 0])
    assert taken.members == [batch.members[2], batch.members[0]]
    for field, whole in zip(taken.numbers, batch.numbers, strict=True):
        np.testing.assert_array_equal(np.asarray(field), np.asarray(whole)[[2, 0]])
    np.testing.assert_array_equal(taken.padding_twice_nll, batch.padding_twice_nll[[2, 0]])


def test_a_daemonic_process_runs_its_work_itself(monkeypatch):
    """A Dask worker (or a pool's worker) may not start processes: by default, one."""
    import multiprocessing

    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True)
    assert processes_for(1000, None) == 1 and toy_processes_for(1_000_000, None) == 1


def test_an_error_stops_the_pools_processes_at_once(monkeypatch):
    """A pool left by an error is terminated, not waited for while its processes still
    import the engine (as a scan whose workspace turns out to be invalid). (Spawned
    processes: forked ones start only with the first task.)"""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    monkeypatch.setattr(pool_module, "process_context", lambda: spawn)
    with pytest.raises(RuntimeError, match="bad input"), pool_module.ProcessPool(2) as pool:
        processes = list(pool._executor._processes.values())
        assert len(processes) == 2
        raise RuntimeError("bad input")
    for process in processes:
        process.join(timeout=30)
    assert all(p.exitcode is not None and p.exitcode < 0 for p in processes)  # killed


def _directory_variable_parent(_):
    return os.getcwd(), os.environ.get("HFPIPE_TEST_VARIABLE"), _LATER in sys.path, os.getppid()


def _ask_a_worker(processes: int = 1):
    with pool_module.ProcessPool(processes) as pool:
        (future,) = pool.submit_all(_directory_variable_parent, [(None,)])
        return future.result()


_LATER = "/a/folder/added/later"

_FORKED_WORKER = """
import json, os, sys
sys.path.insert(0, {tests!r})
from test_pool import _LATER, _ask_a_worker
from hfpipe.scanning import pool
pool.start_process_server()
os.chdir({directory!r})
os.environ["HFPIPE_TEST_VARIABLE"] = "set after the server started"
sys.path.append(_LATER)
method = pool.process_context().get_start_method()
print(json.dumps([method, *_ask_a_worker(), os.getpid()]))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="a fork server only on Linux")
def test_workers_come_from_the_fork_server_with_this_process_directory_and_environment(tmp_path):
    """(in a fresh process: one that ran a Dask cluster has changed its BLAS settings
    since its server started, and spawns its workers)"""
    script = _FORKED_WORKER.format(tests=str(Path(__file__).parent), directory=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    method, directory, variable, later, parent, caller = json.loads(done.stdout.splitlines()[-1])
    assert method == "forkserver"
    assert directory == str(tmp_path) and variable == "set after the server started" and later
    assert parent != caller  # forked by the server, not started by the caller


@pytest.mark.skipif(sys.platform != "linux", reason="a fork server only on Linux")
def test_a_variable_read_at_import_changed_since_the_server_started_spawns_workers(monkeypatch):
    """(the server's JAX was imported with the old value)"""
    pool_module.start_process_server()
    monkeypatch.setenv("JAX_HFPIPE_TEST_VARIABLE", "changed")
    assert pool_module.process_context().get_start_method() == "spawn"
    assert _ask_a_worker()[-1] == os.getpid()


def test_a_fork_server_that_cannot_start_leaves_the_workers_spawned(monkeypatch):
    """(e.g. a temporary folder too deep for the server's socket: OSError)"""
    import multiprocessing.forkserver

    def fail():
        raise OSError("AF_UNIX path too long")

    monkeypatch.setattr(pool_module, "_server_imported_with", [])
    monkeypatch.setattr(multiprocessing.forkserver, "ensure_running", fail)
    assert pool_module.process_context().get_start_method() == "spawn"
    assert _ask_a_worker()[-1] == os.getpid()


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


_SPINNING_POOL = """
import sys
sys.path.insert(0, {tests!r})
from test_pool import _spin
from hfpipe.scanning.pool import ProcessPool
with ProcessPool(2) as pool:
    for future in pool.submit_all(_spin, [(2.0,), (2.0,)]):
        future.result()
"""


def test_the_workers_cpu_time_is_counted_as_the_callers_children():
    """``time hfpipe scan`` counts its workers' CPU, although the fork server, not the
    scan, started them: the server is stopped and waited for at exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    script = _SPINNING_POOL.format(tests=str(Path(__file__).parent))
    subprocess.run([sys.executable, "-c", script], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert cpu >= 4.0


_SERVER_EXIT = """
import atexit, sys
atexit.register(lambda: print("torn down"))  # what the preloaded modules register
import hfpipe.scanning.server_exit
print("imported")
sys.exit(3)  # as the server leaves its loop: SystemExit
"""


def test_the_fork_server_ends_without_tearing_its_interpreter_down():
    """The module the server imports last ends it at once, status 0: handlers that the
    modules imported before registered do not run."""
    assert pool_module.SERVER_PRELOAD[-1] == "hfpipe.scanning.server_exit"
    done = subprocess.run([sys.executable, "-c", _SERVER_EXIT], capture_output=True, text=True)
    assert (done.returncode, done.stdout.split()) == (0, ["imported"]), done.stderr


@pytest.fixture
def nothing_frozen():
    """No object frozen (a test that prepared points here froze them), as before after."""
    import gc

    frozen = gc.get_freeze_count()
    gc.unfreeze()
    yield
    if frozen:
        gc.freeze()


def test_inputs_read_out_of_the_collector_are_frozen_until_the_scan_ends(nothing_frozen):
    import gc

    with pool_module.inputs_out_of_collector() as inputs_read:
        assert not gc.isenabled()
        inputs = [[float(k)] for k in range(1000)]
        inputs_read()
        assert gc.isenabled() and gc.get_freeze_count() >= len(inputs)
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_an_error_while_reading_inputs_leaves_the_collector_as_it_was(nothing_frozen):
    import gc

    with pytest.raises(ValueError), pool_module.inputs_out_of_collector():
        raise ValueError("a broken input")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_objects_the_caller_froze_stay_frozen(nothing_frozen):
    import gc

    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with pool_module.inputs_out_of_collector() as inputs_read:
            inputs_read()
            assert gc.isenabled() and gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_a_scan_in_another_thread_leaves_the_collector_alone(nothing_frozen):
    """(pausing and freezing are the whole process's: concurrent scans in threads of one
    process, as the service runs its jobs, would undo each other's)"""
    import gc
    import threading

    seen = []

    def scan_inputs():
        with pool_module.inputs_out_of_collector() as inputs_read:
            seen.append(gc.isenabled())
            inputs_read()
            seen.append(gc.get_freeze_count())

    thread = threading.Thread(target=scan_inputs)
    thread.start()
    thread.join()
    assert seen == [True, 0] and gc.isenabled()
