"""Running jobs on the Dask client: dispatch, time limits, cancellation, restart.

One thread dispatches queued jobs, oldest first, while the cluster has room: two jobs
per worker thread, the one it computes and the next, so that no worker idles while a
finished job is recorded and the next one sent. A job is ``running`` once dispatched,
and its time limit counts from then, not from the end of a queue. A hypotest, fit or upper limit is one Dask task,
:func:`~hfpipe.service.tasks.run_model_job`; a scan runs
:func:`~hfpipe.service.tasks.run_scan_job` in a thread of the server, which sends the
scan's batches to the cluster as ``hfpipe scan --scheduler`` does, and writes its table
under the state directory, where a restarted job resumes from the parts.

A job past the time limit is failed with a message and its Dask futures cancelled; so is
a job cancelled by its owner. Dask cannot stop a task already running on a worker: that
computation ends on its own and its result is dropped. At start every job a previous
server left unfinished is queued again, once.
"""

from __future__ import annotations

import collections
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hfpipe.errors import HfpipeError
from hfpipe.service.store import Job, JobStore
from hfpipe.service.tasks import run_model_job, run_scan_job

__all__ = ["JobRunner"]

#: seconds between the dispatcher's looks at deadlines and the cluster's size
_TICK = 0.25
#: jobs dispatched per worker thread: the one it computes and the next
_PER_THREAD = 2


@dataclass
class _Running:
    attempt: int
    deadline: float
    cancel: Callable[[], None]


class _TrackedClient:
    """The Dask client as one scan sees it: the futures it submits are kept, so that
    cancelling the job cancels them (the scan then ends, quickly, with error rows)."""

    def __init__(self, client):
        self._client, self._futures, self._lock = client, [], threading.Lock()
        self._cancelled = False

    def submit(self, *args, **kwargs):
        future = self._client.submit(*args, **kwargs)
        with self._lock:
            self._futures.append(future)
            if self._cancelled:
                future.cancel()
        return future

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            futures = list(self._futures)
        self._client.cancel(futures)

    def __getattr__(self, name):
        return getattr(self._client, name)


def describe(error: BaseException) -> str:
    """One line for a job's error: hfpipe's own message, or the exception's type and text."""
    text = str(error) if isinstance(error, HfpipeError) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())


class JobRunner:
    """Runs the store's jobs on ``client``; ``on_change(job_id)`` is called (from any
    thread) whenever a job finished, failed or was cancelled."""

    def __init__(
        self,
        store: JobStore,
        client,
        *,
        tables: Path,
        time_limit: float,
        on_change: Callable[[str], None],
    ):
        self.store, self.client, self.tables = store, client, Path(tables)
        self.time_limit, self.on_change = time_limit, on_change
        self.tables.mkdir(parents=True, exist_ok=True)
        self._queue: collections.deque[str] = collections.deque()
        self._running: dict[str, _Running] = {}
        self._changed = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="hfpipe-jobs", daemon=True)

    def start(self) -> None:
        """Queue again what a previous server left unfinished, then start dispatching."""
        self._queue.extend(self.store.requeue_unfinished())
        self._thread.start()

    def close(self) -> None:
        """Stop dispatching. Running jobs stay ``running`` in the store: a restarted
        server runs them again."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()

    def enqueue(self, job_id: str) -> None:
        with self._changed:
            self._queue.append(job_id)
            self._changed.notify_all()

    def cancel(self, job_id: str) -> None:
        """Stop the computation of a job the store has just marked cancelled."""
        with self._changed:
            running = self._running.pop(job_id, None)
            self._changed.notify_all()
        if running is not None:
            running.cancel()
        self.on_change(job_id)

    def capacity(self) -> int:
        """Worker threads of the cluster now (a batch system's jobs come and go)."""
        return sum(self.client.nthreads().values())

    def _loop(self) -> None:
        while True:
            with self._changed:
                if self._closing:
                    return
            room = _PER_THREAD * self.capacity()
            with self._changed:
                expired = self._expired()
                ready = []
                while self._queue and len(self._running) + len(ready) < room:
                    ready.append(self._queue.popleft())
            for job_id, running in expired:
                self._expire(job_id, running)
            for job_id in ready:
                self._dispatch(job_id)
            with self._changed:
                if not self._closing:
                    self._changed.wait(_TICK)

    def _expired(self) -> list[tuple[str, _Running]]:
        now = time.monotonic()
        late = [(i, r) for i, r in self._running.items() if r.deadline < now]
        for job_id, _ in late:
            del self._running[job_id]
        return late

    def _expire(self, job_id: str, running: _Running) -> None:
        if self.store.fail(
            job_id, running.attempt, f"time limit of {self.time_limit:g} s exceeded"
        ):
            running.cancel()
            self.on_change(job_id)

    def _dispatch(self, job_id: str) -> None:
        attempt = self.store.start(job_id)
        if attempt is None:  # cancelled while queued
            return
        job = self.store.get(job_id)
        request = self.store.request(job)
        deadline = time.monotonic() + self.time_limit
        if job.task == "scan":
            tracked = _TrackedClient(self.client)
            with self._changed:
                self._running[job_id] = _Running(attempt, deadline, tracked.cancel)
            threading.Thread(
                target=self._run_scan,
                args=(job, attempt, request, tracked),
                name=f"hfpipe-scan-{job_id[:8]}",
                daemon=True,
            ).start()
            return
        future = self.client.submit(
            run_model_job, request, key=f"hfpipe-job-{job_id}-{attempt}", pure=False
        )
        with self._changed:
            self._running[job_id] = _Running(attempt, deadline, future.cancel)
        future.add_done_callback(lambda done: self._model_done(job_id, attempt, done))

    def _model_done(self, job_id: str, attempt: int, future) -> None:
        if future.cancelled():
            return
        try:
            kept = self.store.finish(job_id, attempt, future.result())
        except Exception as error:
            kept = self.store.fail(job_id, attempt, describe(error))
        self._settle(job_id, attempt, kept)

    def _run_scan(self, job: Job, attempt: int, request: dict, client: _TrackedClient) -> None:
        output = self.tables / f"{job.id}.parquet"
        try:
            report, error = run_scan_job(request, output, client), None
        except Exception as caught:
            report, error = None, caught
        if self._closing:  # the cluster went away under it: it runs again after a restart
            return
        if error is None:
            kept = self.store.finish(job.id, attempt, report, table_file=output.name)
        else:
            kept = self.store.fail(job.id, attempt, describe(error))
        if not kept:  # cancelled or timed out meanwhile: nothing of it is kept
            output.unlink(missing_ok=True)
            shutil.rmtree(output.with_name(output.name + ".parts"), ignore_errors=True)
        self._settle(job.id, attempt, kept)

    def _settle(self, job_id: str, attempt: int, changed: bool) -> None:
        with self._changed:
            running = self._running.get(job_id)
            if running is not None and running.attempt == attempt:
                del self._running[job_id]
            self._changed.notify_all()
        if changed:
            self.on_change(job_id)
