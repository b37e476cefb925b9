"""Several processes on one machine: how a scan and a long toy run use every core.

hfpipe's JAX runs on one core per process (``hfpipe/_jax.py``: with more XLA threads,
batched fits wedge XLA's CPU runtime), so one machine uses its cores with several
processes: a scan's batches go to a :class:`ProcessPool`, and a point's toys are cut
into chunks that this process and spawned ones take in turn, merged into the
distribution of one run (toys depend on their index only, see :mod:`hfpipe.infer.toys`).
The processes are spawned (JAX does not survive a fork): each imports hfpipe and loads
its compiled fits (seconds; from the persistent cache after the first), which pays off
for work of tens of seconds or more. Spawning re-imports the caller's main module: scripts must call
this under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import gc
import importlib
import multiprocessing
import os
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
    "processes_for",
    "toy_processes_for",
    "toys_in_processes",
]


#: Chunks a process of :func:`toys_in_processes` takes, about: enough that all finish
#: within about one chunk of each other, few enough that a chunk's own fits (to the
#: observed data) and its last, partly filled call stay small.
CHUNKS_PER_PROCESS = 8


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
    first_toy+ntoys-1`` in ``workers`` processes (this one and ``workers - 1`` spawned);
    ``settings`` are its other keywords.

    The toys are cut into chunks (about :data:`CHUNKS_PER_PROCESS` a process, whole
    compiled calls each) that every process takes in order as it gets free, this one
    included: a spawned process starts seconds later than this one (imports, loading the
    compiled fits), and fixed shares would leave this one waiting for it."""
    from hfpipe.infer.toys import DEFAULT_TOY_BATCH_SIZE, merge, toy_distributions, toys_per_call

    per_call = toys_per_call(structure, settings.get("batch_size", DEFAULT_TOY_BATCH_SIZE))
    chunk = per_call * max(1, -(-ntoys // (CHUNKS_PER_PROCESS * workers * per_call)))
    chunks = [
        (start, min(chunk, first_toy + ntoys - start))
        for start in range(first_toy, first_toy + ntoys, chunk)
    ]
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

    context = multiprocessing.get_context("spawn")
    spawned = workers - 1
    with (
        concurrent.futures.ProcessPoolExecutor(spawned, mp_context=context) as pool,
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


def _start_engine() -> None:
    """Worker initializer: import the engine (JAX and its settings) before the first task,
    then exempt what the import made from garbage collection (:func:`freeze_long_lived`)."""
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


class ProcessPool:
    """Spawned worker processes that prepare the points and run the batches of a scan.

    Each process runs one batch at a time with one XLA thread; together they use every
    core. A batch is a pure function of its points' numbers, so where it runs does not
    change its rows: a scan's table is the same, bit for bit, on one process or many.
    The processes are spawned when the pool is made (an executor spawns them at its
    first tasks: each is given an empty one), so that their start-up overlaps whatever
    the caller does until the first real task: a scan makes its pool as soon as it
    knows it needs one, before it reads and prepares its inputs.
    """

    def __init__(self, processes: int):
        context = multiprocessing.get_context("spawn")
        self.processes = processes
        self._executor = concurrent.futures.ProcessPoolExecutor(
            processes, mp_context=context, initializer=_start_engine
        )
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
