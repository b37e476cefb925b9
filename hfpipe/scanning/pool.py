"""Several processes on one machine: how a scan and a long toy run use every core.

hfpipe's JAX runs on one core per process (``hfpipe/_jax.py``: with more XLA threads,
batched fits wedge XLA's CPU runtime), so one machine uses its cores with several
processes: a scan's batches go to a :class:`ProcessPool`, and a point's toys are cut
into chunks that this process and worker processes take in turn, merged into the
distribution of one run (toys depend on their index only, see :mod:`hfpipe.infer.toys`).
The processes are forked from a fork server that imported the engine's modules once,
before any JAX runtime existed (a process with one does not survive a fork), or spawned
where that cannot be (:func:`process_context`); each then starts its own JAX and loads
its compiled fits (from the persistent cache after the first compilation), which pays
off for work of seconds or more. A spawned process re-imports the caller's main module:
scripts must call this under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import contextlib
import functools
import gc
import importlib
import math
import multiprocessing
import multiprocessing.forkserver
import os
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the engine is imported where toys are run: a pool starts without it
    from hfpipe.infer.toys import ToyDistributions
    from hfpipe.model.structure import Numbers, Structure

__all__ = [
    "EngineFunction",
    "ProcessPool",
    "available_cores",
    "freeze_long_lived",
    "inputs_out_of_collector",
    "may_use_processes",
    "prepare_toy_processes",
    "process_context",
    "processes_for",
    "start_process_server",
    "toy_chunks",
    "toy_processes_for",
    "toys_in_processes",
]


#: A chunk of :func:`toys_in_processes` is this share of the toys still left to hand
#: out, divided among the processes ("guided" scheduling): the first chunks are large,
#: so that their own fits (to the observed data) cost little, and the last ones a single
#: compiled call, so that the processes finish within about a call of each other.
CHUNK_SHARE = 0.5


def toy_chunks(ntoys: int, per_call: int, workers: int) -> list[int]:
    """The sizes of the chunks ``workers`` processes take ``ntoys`` toys in: whole calls
    of ``per_call`` toys (but the last), each :data:`CHUNK_SHARE` of what is left
    shared among the processes, one call at least."""
    sizes, calls = [], -(-ntoys // per_call)
    while calls > 0:
        size = max(1, math.ceil(CHUNK_SHARE * calls / workers))
        sizes.append(size * per_call)
        calls -= size
    sizes[-1] -= sum(sizes) - ntoys
    return sizes


def toys_in_processes(
    structure: Structure,
    numbers: Numbers,
    mu: float,
    *,
    ntoys: int,
    first_toy: int,
    workers: int,
    **settings,
) -> ToyDistributions:
    """:func:`~hfpipe.infer.toys.toy_distributions` of toys ``first_toy …
    first_toy+ntoys-1`` in ``workers`` processes (this one and ``workers - 1`` workers,
    :func:`process_context`); ``settings`` are its other keywords.

    The toys are cut into chunks (:func:`toy_chunks`: whole compiled calls, ever
    smaller) that every process takes in order as it gets free, this one included: a
    worker starts later than this one (its own JAX, loading the compiled fits; a spawned
    one also imports the engine), and fixed shares would leave this one waiting for it."""
    from hfpipe.infer.toys import DEFAULT_TOY_BATCH_SIZE, merge, toy_distributions, toys_per_call

    per_call = toys_per_call(structure, settings.get("batch_size", DEFAULT_TOY_BATCH_SIZE))
    sizes = toy_chunks(ntoys, per_call, workers)
    starts = first_toy + np.cumsum([0, *sizes[:-1]])
    chunks = [(int(start), size) for start, size in zip(starts, sizes, strict=True)]
    numbers = type(numbers)(*map(np.asarray, numbers))
    work = functools.partial(toy_distributions, structure, numbers, mu, **settings)
    if workers < 2:
        return work(ntoys=ntoys, first_toy=first_toy)
    waiting = collections.deque(enumerate(chunks))
    lock = threading.Lock()
    done: dict[int, ToyDistributions] = {}

    def take(run) -> None:
        """Run chunks until none is left (none is left either once a chunk failed)."""
        try:
            while True:
                with lock:
                    if not waiting:
                        return
                    k, (start, count) = waiting.popleft()
                done[k] = run(ntoys=count, first_toy=start)
        except BaseException:
            waiting.clear()
            raise

    context = process_context()
    spawned = workers - 1
    with (
        concurrent.futures.ProcessPoolExecutor(
            spawned, mp_context=context, initializer=_adopt, initargs=_surroundings()
        ) as pool,
        concurrent.futures.ThreadPoolExecutor(spawned) as feeders,
    ):
        fed = [
            feeders.submit(take, lambda **chunk: pool.submit(work, **chunk).result())
            for _ in range(spawned)
        ]
        take(work)
        for feeder in fed:
            feeder.result()
    return merge([done[k] for k in range(len(chunks))])


def available_cores() -> int:
    """CPUs this process may run on; 1 in a daemonic process (a Dask worker's or a
    pool's), which may not start processes of its own and shares the machine with
    its siblings."""
    if multiprocessing.current_process().daemon:
        return 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def may_use_processes(workers: int | None) -> bool:
    """Whether ``workers`` (None: every core) may mean processes besides this one."""
    return (workers or available_cores()) > 1


#: Batches a worker process should get, at least, for a pool to pay off: each process
#: imports hfpipe and loads (or compiles) its fits first, seconds of start-up.
MIN_BATCHES_PER_PROCESS = 8


def processes_for(batches: int, workers: int | None) -> int:
    """How many processes run ``batches`` scan batches: ``workers`` if given, else every
    core, but no more than give each process :data:`MIN_BATCHES_PER_PROCESS`."""
    if workers is not None:
        return max(1, min(workers, batches))
    return max(1, min(available_cores(), batches // MIN_BATCHES_PER_PROCESS))


#: Toys a worker process should get, at least (pseudo-experiments of both hypotheses,
#: 2 · ntoys): a second process pays its start-up only for a run of seconds or more.
MIN_TOYS_PER_PROCESS = 5000


def toy_processes_for(ntoys: int, workers: int | None) -> int:
    """How many processes share ``ntoys`` toys of each hypothesis: ``workers`` if
    given, else every core, but no more than give each process
    :data:`MIN_TOYS_PER_PROCESS` pseudo-experiments."""
    if workers is not None:
        return max(1, min(workers, ntoys))
    return max(1, min(available_cores(), 2 * ntoys // MIN_TOYS_PER_PROCESS))


def prepare_toy_processes(ntoys: int, workers: int | None) -> int:
    """How many processes share ``ntoys`` toys (:func:`toy_processes_for`); where more
    than one will, their fork server (:func:`start_process_server`) is started now, to
    import the engine while the caller compiles the model."""
    processes = toy_processes_for(ntoys, workers)
    if processes > 1:
        start_process_server()
    return processes


#: What every worker process imports, loaded once in the fork server the workers are
#: forked from: the engine's heavy modules that start no JAX runtime (the CPU client,
#: whose threads would not survive a fork, is made in each worker); last, what makes the
#: server itself end quickly (:mod:`hfpipe.scanning.server_exit`).
SERVER_PRELOAD = (
    "numpy", "scipy.special", "jax", "jax.numpy", "jax.scipy.special", "hfpipe.spec",
    "hfpipe.scanning.server_exit",
)  # fmt: skip

#: Environment variables that :data:`SERVER_PRELOAD` reads as it is imported (JAX's
#: settings, the BLAS thread pools, NumPy's and SciPy's switches, Python's own), by
#: prefix: a worker forked from the server has their values of the moment the server
#: started. (Not the logging variables JAX's import itself sets, ``TF_CPP_MIN_LOG_LEVEL``.)
_READ_AT_IMPORT = ("JAX_", "XLA_", "NPY_", "NUMPY_", "SCIPY_", "OPENBLAS_", "OMP_", "MKL_",
                   "GOTO_", "PYTHON")  # fmt: skip

#: the variables read at import the fork server was started with (None: it could not start)
_server_imported_with: list[dict[str, str] | None] = []


def _import_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_READ_AT_IMPORT)}


def process_context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context of hfpipe's worker processes.

    On Linux they are forked from a fork server (started here on first use, or earlier
    by :func:`start_process_server`) that imported :data:`SERVER_PRELOAD` once, so a
    worker is ready in a tenth of a second rather than the second a fresh interpreter
    spends importing JAX, and many workers do not each pay it. Each worker then takes
    this process's working directory, environment and import path (:func:`_adopt`), as
    a spawned one would have them; only what the preloaded modules read as they were
    imported is the server's. Where that differs from this process's now (a variable of
    :data:`_READ_AT_IMPORT` changed since the server started: a Dask cluster, for one,
    sets the BLAS thread counts of this process), and where there is no fork server (not
    Linux, or it could not start), the workers are spawned (fresh interpreters) instead.
    """
    if sys.platform != "linux":
        return multiprocessing.get_context("spawn")
    if not _server_imported_with:
        _server_imported_with.append(_start_server())
    same = _server_imported_with[0] == _import_settings()
    return multiprocessing.get_context("forkserver" if same else "spawn")


def _start_server() -> dict[str, str] | None:
    """Start the fork server; the settings it imported with, or None where it could not
    start (its socket lives in the temporary folder, which may be read-only, or so deep
    a path that a socket's name cannot hold it, as in some batch jobs' folders)."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(SERVER_PRELOAD))
    try:
        multiprocessing.forkserver.ensure_running()
    except OSError:
        return None
    atexit.register(_stop_server)
    return _import_settings()


def start_process_server() -> None:
    """Start the fork server of :func:`process_context` now, if it is not running: it
    imports the engine meanwhile (about a second of its own core), so that a pool made
    once the inputs are read has its workers at once."""
    process_context()


def _stop_server() -> None:
    """At exit, stop the fork server and wait for it: it has collected its workers, so
    their CPU time is then counted as this process's children's (``time hfpipe scan``
    reports every core's work) rather than lost with a server that outlives this one."""
    stop = getattr(multiprocessing.forkserver._forkserver, "_stop", None)  # private, 3.11+
    if stop is not None:
        with contextlib.suppress(OSError, ChildProcessError):
            stop()


def _surroundings() -> tuple[str, dict[str, str], list[str]]:
    """This process's working directory, environment and import path, for
    :func:`_adopt` in a worker."""
    return os.getcwd(), dict(os.environ), list(sys.path)


def _adopt(
    directory: str, environment: dict[str, str], path: list[str], engine: bool = False
) -> None:
    """Worker initializer: take the working directory, environment and import path of
    the process that made the pool (:func:`_surroundings`), as a spawned worker has them;
    with ``engine``, then import the engine (JAX and its settings) before the first task
    and exempt what the import made from garbage collection (:func:`freeze_long_lived`)."""
    os.chdir(directory)
    os.environ.clear()
    os.environ.update(environment)
    sys.path[:] = path
    if engine:
        import hfpipe.scanning.batches  # noqa: F401

        freeze_long_lived()


@dataclass(frozen=True)
class EngineFunction:
    """A function of the engine named by its module, imported where it is called: a pool
    task sent from a process that has not imported the engine (a scan's main process,
    which only orchestrates) pickles as these two names."""

    module: str
    name: str

    def __call__(self, *args, **kwargs):
        return getattr(importlib.import_module(self.module), self.name)(*args, **kwargs)


def freeze_long_lived() -> None:
    """Move every object alive now out of the garbage collector's reach (``gc.freeze``).

    A worker holds what lives as long as it does (the engine's modules, a scan's
    background workspace) and then makes many short-lived containers (patched
    workspaces, JSON copies, traces); every full collection walks the long-lived ones
    again, which made preparing a point markedly slower in a worker than in a fresh
    process. A frozen object is still freed when its last reference goes, but a frozen
    reference cycle never is: call this only once what is kept has been made."""
    gc.freeze()


@contextlib.contextmanager
def inputs_out_of_collector():
    """Read a scan's inputs out of the garbage collector's way.

    Yields a function to call once they are read: until then the collector is paused;
    the call freezes every object alive (``gc.freeze``: among them the inputs just read)
    and resumes it; at the end they are unfrozen. A published patchset parses into
    millions of lists and dicts that live as long as the scan, none in a reference
    cycle, and with the collector running, the collections their own allocations start
    walk them again and again (about half a second of the 1Lbb scan's main process,
    docs/performance.md). Where objects were frozen before (the caller's own
    ``gc.freeze``), nothing is frozen or unfrozen here, only paused. Only the main thread
    does either: both are the whole process's, and scans run in threads of one process
    (the service's jobs) would undo each other's; there the collector is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    enabled, ours, frozen = gc.isenabled(), gc.get_freeze_count() == 0, []

    def read() -> None:
        if ours and not frozen:
            gc.freeze()
            frozen.append(True)
        if enabled:
            gc.enable()

    gc.disable()
    try:
        yield read
    finally:
        if frozen:
            gc.unfreeze()
        if enabled:
            gc.enable()


class ProcessPool:
    """Worker processes that prepare the points and run the batches of a scan.

    Each process runs one batch at a time with one XLA thread; together they use every
    core. A batch is a pure function of its points' numbers, so where it runs does not
    change its rows: a scan's table is the same, bit for bit, on one process or many.
    Spawned processes (:func:`process_context`) are started when the pool is made (an
    executor starts them at its first tasks: each is given an empty one), so that their
    start-up, importing the engine, overlaps whatever the caller does until the first
    real task: a scan makes its pool as soon as it knows it needs one, before it reads
    and prepares its inputs. Processes forked from the fork server start at the first
    real tasks, in milliseconds: made earlier, they would only wait (and keep the
    caller waiting) for the server to finish importing the engine.
    """

    def __init__(self, processes: int):
        context = process_context()
        self.processes = processes
        self._executor = concurrent.futures.ProcessPoolExecutor(
            processes, mp_context=context, initializer=_adopt, initargs=(*_surroundings(), True)
        )
        if context.get_start_method() != "forkserver":
            for _ in range(processes):
                self._executor.submit(int)

    def submit_all(self, function, tasks) -> list[concurrent.futures.Future]:
        """``function(*task)`` of every task, queued for the processes in order."""
        return [self._executor.submit(function, *task) for task in tasks]

    #: batches a process has queued or running at once: enough that none waits for the
    #: next, few enough that the batches' numbers are not all copied out at once
    BATCHES_IN_FLIGHT = 2

    def run_batches(self, function, tasks, settings):
        """Submit ``function(batch, rows, settings)`` for every ``(batch, rows)`` task,
        each with only its rows' numbers, :data:`BATCHES_IN_FLIGHT` a process at a time;
        yield ``(index, records)`` as they finish, or ``(index, exception)`` for a batch
        that raised."""
        waiting = iter(enumerate(tasks))
        running: dict[concurrent.futures.Future, int] = {}

        def submit_next() -> None:
            for k, (batch, rows) in waiting:
                future = self._executor.submit(
                    function, batch.take(rows), range(len(rows)), settings
                )
                running[future] = k
                return

        for _ in range(self.BATCHES_IN_FLIGHT * self.processes):
            submit_next()
        while running:
            done, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in done:
                k = running.pop(future)
                submit_next()
                try:
                    yield k, future.result()
                except Exception as error:
                    yield k, error

    def terminate(self) -> None:
        """Stop the processes now, whatever they are doing (after an error: their results
        are not wanted, and one may still be starting)."""
        terminate_workers = getattr(self._executor, "terminate_workers", None)  # 3.14+
        if terminate_workers is not None:
            terminate_workers()
            return
        for process in list((self._executor._processes or {}).values()):
            process.terminate()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._executor.shutdown(cancel_futures=True)

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        """Close the pool; after an error its processes are stopped at once (their
        results are not wanted, and one may still be starting)."""
        if exc_type is None:
            self.close()
        else:
            self.terminate()
