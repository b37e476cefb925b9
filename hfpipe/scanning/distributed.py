"""Running a scan's batches as Dask tasks (``scan(..., client=client)``).

Each batch — many points of one union structure, :func:`hfpipe.scanning.batches.run_batch` — is
one task. Every union structure with its stacked numbers goes to the cluster once, as a
task of its own that the batch tasks depend on: Dask then copies it to a worker once
and reuses it for every batch that worker runs, and the worker's compiled functions
(cached per structure in the process) are reused across tasks too.

Why a task and not ``client.scatter``: scattered data lives only in workers' memory, so
a worker dying with it would fail every batch that needs it; a task's result is
recomputed by the scheduler from the task, so a lost worker costs only a re-run. The
price: the scheduler keeps a copy of the numbers (~45 MB for ATLAS 1Lbb's 125 points;
Dask's "large graph" warning is silenced for it).

Batches lost with a worker are rescheduled by Dask (up to the scheduler's
``distributed.scheduler.allowed-failures``); a batch that raises is retried ``retries``
times and then reported as an exception, which the scan turns into failed rows.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence

from hfpipe.scanning.union import UnionBatch

__all__ = ["run_batches"]

#: retries of a batch that raised (worker deaths are retried by the scheduler anyway)
DEFAULT_RETRIES = 2


def _hold(batch: UnionBatch) -> UnionBatch:
    """Identity: makes a union batch a recomputable Dask task result."""
    return batch


def run_batches(
    client,
    function: Callable,
    tasks: Sequence[tuple[UnionBatch, Sequence[int]]],
    settings,
    retries: int = DEFAULT_RETRIES,
) -> Iterator[tuple[int, list[dict] | BaseException]]:
    """Submit ``function(batch, rows, settings)`` (a batch run,
    :func:`hfpipe.scanning.batches.run_batch_here`) for every ``(batch, rows)`` task; yield
    ``(index, records)`` as tasks finish, or ``(index, exception)`` for a task that
    failed for good."""
    from distributed import as_completed

    run = uuid.uuid4().hex[:8]
    held: dict[int, object] = {}
    futures = {}
    for index, (batch, rows) in enumerate(tasks):
        if id(batch) not in held:
            with warnings.catch_warnings():  # large, on purpose: sent once, see above
                warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
                key = f"hfpipe-union-{run}-{len(held)}"
                held[id(batch)] = client.submit(_hold, batch, key=key)
        future = client.submit(
            function,
            held[id(batch)],
            list(rows),
            settings,
            retries=retries,
            key=f"hfpipe-batch-{run}-{index}",
        )
        futures[future] = index
    try:
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as error:
                yield futures[future], error
    finally:
        for future in [*futures, *held.values()]:
            future.cancel()
