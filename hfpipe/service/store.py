"""The job store: every request, its state and its result, in SQLite (WAL mode).

Nothing a service was told is lost: a job is committed before its id is answered, and a
state change is one transaction (``synchronous=FULL``: committed is on disk), so a
server killed at any moment restarts with every finished job's result and every
unfinished job to run again. Changes are conditional on the job's current state and
attempt (``finish`` of an attempt that was cancelled or timed out meanwhile changes
nothing), so of two racing outcomes exactly one is kept.

Large inputs (workspaces, patchsets) are stored once, by their sha256, in ``documents``;
a job's request refers to them, so many jobs on one workspace keep one copy.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hfpipe import __version__
from hfpipe.spec import workspace_digest

__all__ = ["ACTIVE", "FINISHED", "Job", "JobStore", "QueueFull"]

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
#: request parts stored as documents
_DOCUMENTS = ("workspace", "background", "patchset")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (sha256 TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    task TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    report TEXT,
    error TEXT,
    table_file TEXT,
    cached INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_key ON jobs (key, state);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, state);
"""


class QueueFull(Exception):
    """The owner has as many unfinished jobs as the service allows."""


@dataclass(frozen=True)
class Job:
    id: str
    owner: str
    task: str
    state: str
    report: dict | None
    error: str | None
    table_file: str | None
    cached: bool
    attempts: int
    created: float
    started: float | None
    finished: float | None
    request: dict  # documents referred to by sha256; see JobStore.request


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        owner=row["owner"],
        task=row["task"],
        state=row["state"],
        report=json.loads(row["report"]) if row["report"] else None,
        error=row["error"],
        table_file=row["table_file"],
        cached=bool(row["cached"]),
        attempts=row["attempts"],
        created=row["created"],
        started=row["started"],
        finished=row["finished"],
        request=json.loads(row["request"]),
    )


def _split_documents(request: dict) -> tuple[dict, dict[str, str]]:
    """``request`` with its large parts replaced by their sha256, and those parts as
    ``{sha256: JSON text}``."""
    slim, documents = dict(request), {}
    for part in _DOCUMENTS:
        if part in slim:
            digest = workspace_digest(slim[part])
            documents[digest] = json.dumps(slim[part], ensure_ascii=False)
            slim[part] = digest
    return slim, documents


def _request_key(slim: dict) -> str:
    """What makes two requests the same: the task, inputs (by digest) and settings, and
    the hfpipe version that would answer them."""
    return workspace_digest({"hfpipe_version": __version__, "request": slim})


class JobStore:
    """Jobs in one SQLite file, shared by the service's threads."""

    def __init__(self, path: str | Path):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(self, owner: str, request: dict, *, max_active: int) -> tuple[Job, bool]:
        """Record a request of ``owner``: ``(job, new)``. The same request again is the
        same job while it is queued, running or done; one another owner's job answered
        is a new job, done at once, with that result (``cached``). ``new`` says the job
        is to be run. Raises :class:`QueueFull` when the owner has ``max_active``
        unfinished jobs."""
        slim, documents = _split_documents(request)
        key = _request_key(slim)
        with self._transaction() as db:
            mine = db.execute(
                "SELECT * FROM jobs WHERE owner = ? AND key = ? AND state IN"
                " ('queued', 'running', 'done') ORDER BY created DESC LIMIT 1",
                (owner, key),
            ).fetchone()
            if mine is not None:
                return _job(mine), False
            done = db.execute(
                "SELECT * FROM jobs WHERE key = ? AND state = 'done' LIMIT 1", (key,)
            ).fetchone()
            now, job_id = time.time(), secrets.token_hex(16)
            if done is not None:
                db.execute(
                    "INSERT INTO jobs (id, owner, key, task, request, state, report, table_file,"
                    " cached, attempts, created, started, finished)"
                    " VALUES (?, ?, ?, ?, ?, 'done', ?, ?, 1, 0, ?, ?, ?)",
                    (
                        job_id,
                        owner,
                        key,
                        done["task"],
                        done["request"],
                        done["report"],
                        done["table_file"],
                        now,
                        now,
                        now,
                    ),
                )
                return self._get(db, job_id), False
            active = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE owner = ? AND state IN ('queued', 'running')",
                (owner,),
            ).fetchone()[0]
            if active >= max_active:
                raise QueueFull(f"{active} unfinished jobs of this token, the most allowed")
            db.executemany(
                "INSERT OR IGNORE INTO documents (sha256, body) VALUES (?, ?)", documents.items()
            )
            db.execute(
                "INSERT INTO jobs (id, owner, key, task, request, state, created)"
                " VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                (job_id, owner, key, request["task"], json.dumps(slim), now),
            )
            return self._get(db, job_id), True

    @staticmethod
    def _get(db, job_id: str) -> Job:
        return _job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def get(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job ``job_id`` (only if ``owner``'s, when given), or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            return None
        return _job(row)

    def request(self, job: Job) -> dict:
        """The job's request with its documents put back."""
        request = dict(job.request)
        with self._lock:
            for part in _DOCUMENTS:
                if part in request:
                    row = self._db.execute(
                        "SELECT body FROM documents WHERE sha256 = ?", (request[part],)
                    ).fetchone()
                    request[part] = json.loads(row["body"])
        return request

    def start(self, job_id: str) -> int | None:
        """Mark a queued job running: its attempt number, or None if it is not queued."""
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started = ?"
                " WHERE id = ? AND state = 'queued'",
                (time.time(), job_id),
            ).rowcount
            if not changed:
                return None
            return db.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]

    def finish(
        self, job_id: str, attempt: int, report: dict, table_file: str | None = None
    ) -> bool:
        """Store attempt ``attempt``'s result, if that attempt is still the running one."""
        return self._end(job_id, attempt, "done", report=json.dumps(report), table_file=table_file)

    def fail(self, job_id: str, attempt: int, error: str) -> bool:
        """Mark attempt ``attempt`` failed with ``error``, if it is still the running one."""
        return self._end(job_id, attempt, "failed", error=error)

    def _end(self, job_id: str, attempt: int, state: str, **values) -> bool:
        values = {"report": None, "error": None, "table_file": None} | values
        with self._transaction() as db:
            return bool(
                db.execute(
                    "UPDATE jobs SET state = ?, report = ?, error = ?, table_file = ?,"
                    " finished = ? WHERE id = ? AND state = 'running' AND attempts = ?",
                    (
                        state,
                        values["report"],
                        values["error"],
                        values["table_file"],
                        time.time(),
                        job_id,
                        attempt,
                    ),
                ).rowcount
            )

    def cancel(self, job_id: str, owner: str) -> str | None:
        """Cancel ``owner``'s job if unfinished: the state it had, or None if it was
        finished already (or is not theirs)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT state FROM jobs WHERE id = ? AND owner = ?", (job_id, owner)
            ).fetchone()
            if row is None or row["state"] not in ACTIVE:
                return None
            db.execute(
                "UPDATE jobs SET state = 'cancelled', error = 'cancelled', finished = ?"
                " WHERE id = ?",
                (time.time(), job_id),
            )
            return row["state"]

    def requeue_unfinished(self) -> list[str]:
        """Every job a previous server left queued or running, queued again (once: this
        is called at start, with the state directory locked), oldest first."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'")
            rows = db.execute(
                "SELECT id FROM jobs WHERE state = 'queued' ORDER BY created"
            ).fetchall()
        return [row["id"] for row in rows]
