"""Requests that wait for a job to finish (``GET /v1/jobs/{id}?wait=S``), woken when it
does instead of polling the store.

The job runner's threads call :meth:`Waiters.notify`; the waiting requests' events live
on the server's event loop and are only touched there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

__all__ = ["Waiters"]


class Waiters:
    def __init__(self):
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, set[asyncio.Event]] = collections.defaultdict(set)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the waiting requests run on (the server's, once it started)."""
        self._loop = loop

    def notify(self, job_id: str) -> None:
        """Wake the requests waiting for ``job_id``; callable from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, job_id)

    def _wake(self, job_id: str) -> None:
        for event in self._events.pop(job_id, ()):
            event.set()

    @contextlib.asynccontextmanager
    async def watch(self, job_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set when ``job_id`` changes next. Look at the job's state after
        entering: a change before that is not signalled."""
        event = asyncio.Event()
        self._events[job_id].add(event)
        try:
            yield event
        finally:
            watchers = self._events.get(job_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._events[job_id]
