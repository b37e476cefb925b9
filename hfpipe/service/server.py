"""A running service: its state directory, job store, Dask client and job runner.

:func:`open_service` locks the state directory (one server per directory, so a restart
re-queues each unfinished job exactly once), opens the store, connects to Dask as
``hfpipe scan --scheduler`` does (:func:`hfpipe.scanning.cluster.connect`) and starts the
runner; :func:`serve` puts uvicorn in front of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hfpipe.errors import InputError
from hfpipe.service.auth import Tokens
from hfpipe.service.jobs import JobRunner
from hfpipe.service.store import JobStore
from hfpipe.service.waiters import Waiters

__all__ = ["Service", "ServiceConfig", "is_loopback", "open_service", "serve"]


@dataclass(frozen=True)
class ServiceConfig:
    """What ``hfpipe serve`` is told. ``tokens`` empty means no authentication
    (``--no-auth``, for a service on the loopback interface only)."""

    state_dir: Path
    tokens: tuple = ()
    scheduler: str = "local"
    cluster_config: str | None = None
    workers: int | None = None
    max_body: int = 64 * 2**20  # bytes
    max_queued: int = 100  # unfinished jobs per token
    time_limit: float = 3600.0  # seconds a job may run
    cors_origins: tuple = ()  # browser origins allowed (CORS); none: no CORS headers


@dataclass
class Service:
    config: ServiceConfig
    store: JobStore
    runner: JobRunner
    waiters: Waiters
    tokens: Tokens | None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's lock (the kernel drops it when the process dies)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "service.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                "another hfpipe serve uses this state directory", file=os.fspath(state_dir)
            ) from None
        yield


@contextlib.contextmanager
def open_service(config: ServiceConfig) -> Iterator[Service]:
    """The service of ``config``, running until the block ends; unfinished jobs stay
    in the store for the next start."""
    from hfpipe.scanning.cluster import connect

    state_dir = Path(config.state_dir)
    with _locked(state_dir):
        store = JobStore(state_dir / "jobs.sqlite")
        waiters = Waiters()
        try:
            with connect(config.scheduler, config.cluster_config, config.workers) as client:
                runner = JobRunner(
                    store,
                    client,
                    tables=state_dir / "tables",
                    time_limit=config.time_limit,
                    on_change=waiters.notify,
                )
                runner.start()
                try:
                    tokens = Tokens(config.tokens) if config.tokens else None
                    yield Service(config, store, runner, waiters, tokens)
                finally:
                    runner.close()
        finally:
            store.close()


def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service on ``host:port`` until interrupted (SIGINT, SIGTERM)."""
    import uvicorn

    from hfpipe.service.app import create_app

    with open_service(config) as service:
        uvicorn.run(create_app(service), host=host, port=port, log_level="info")
