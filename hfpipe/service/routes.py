"""The routes of the service's API, version 1 (mounted under ``/v1``).

* ``POST /jobs``: a job (:class:`~hfpipe.service.schema.JobRequest`) → 202 ``{"id",
  "state", "cached"}``; checked first (422), answered from the stored result when the
  same request was computed before.
* ``GET /jobs/{id}[?wait=S]``: its state and, when done, its result (waiting up to S
  seconds for it to finish).
* ``GET /jobs/{id}/table``: a done scan's Parquet table.
* ``DELETE /jobs/{id}``: cancel it.
* ``GET /result`` with ``{"id": ...}`` (body or query): the result itself, for the
  two-call example of the pyhf roadmap.
* ``GET /health``: the service's version and worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

from hfpipe import __version__
from hfpipe.service.schema import JobAccepted, JobRequest, JobStatus, ResultLookup
from hfpipe.service.store import FINISHED, Job
from hfpipe.service.tasks import check_request

__all__ = ["router"]

router = APIRouter()

_ERRORS = {
    401: {"description": "No token, or not a known one."},
    404: {"description": "No such job of this token."},
}
#: the longest a request may wait for a job (GET /jobs/{id}?wait=)
MAX_WAIT = 60.0


def _service(request: Request):
    return request.app.state.service


def _owner(request: Request) -> str:
    return request.state.owner


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses={
        **_ERRORS,
        413: {"description": "The body is over the service's limit."},
        422: {"description": "A malformed request: one line naming the JSON path."},
        429: {"description": "This token has as many unfinished jobs as allowed."},
    },
)
def submit_job(job: JobRequest, request: Request) -> JobAccepted:
    """Queue a hypotest, fit, upper-limits or scan job (or a bare pyhf workspace: its
    hypotest at μ = 1)."""
    service = _service(request)
    body = job.root.model_dump()
    check_request(body)
    stored, new = service.store.add(_owner(request), body, max_active=service.config.max_queued)
    if new:
        service.runner.enqueue(stored.id)
    return JobAccepted(id=stored.id, state=stored.state, cached=not new and stored.state == "done")


def status(job: Job) -> JobStatus:
    """What the API says about a job."""
    report = job.report or {}
    return JobStatus(
        id=job.id,
        task=job.task,
        state=job.state,
        result=report.get("output"),
        error=job.error,
        ok=report.get("ok"),
        warnings=report.get("warnings", []),
        table=f"/v1/jobs/{job.id}/table" if job.table_file else None,
        cached=job.cached,
        attempts=job.attempts,
        created=job.created,
        started=job.started,
        finished=job.finished,
    )


async def _job(request: Request, job_id: str, wait: float = 0.0) -> Job:
    """The owner's job, once finished or after ``wait`` seconds; 404 if there is none."""
    service, owner = _service(request), _owner(request)
    job = await run_in_threadpool(service.store.get, job_id, owner)
    if job is None:
        raise HTTPException(404, f"no job {job_id} of this token")
    if job.state in FINISHED or wait <= 0:
        return job
    async with service.waiters.watch(job_id) as changed:
        job = await run_in_threadpool(service.store.get, job_id, owner)
        if job.state not in FINISHED:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)
    return await run_in_threadpool(service.store.get, job_id, owner)


@router.get("/jobs/{job_id}", response_model=JobStatus, responses=_ERRORS)
async def get_job(
    job_id: str,
    request: Request,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT, description="Seconds to wait for the end.")
    ] = 0.0,
) -> JobStatus:
    """The job's state and, when done, its result in the command line's JSON shape."""
    return status(await _job(request, job_id, wait))


@router.get(
    "/jobs/{job_id}/table",
    response_class=FileResponse,
    responses={**_ERRORS, 409: {"description": "The scan is not done."}},
)
def get_table(job_id: str, request: Request) -> FileResponse:
    """The Parquet table of a done scan job, as ``hfpipe scan -o`` writes it."""
    service = _service(request)
    job = service.store.get(job_id, _owner(request))
    if job is None:
        raise HTTPException(404, f"no job {job_id} of this token")
    if job.task != "scan":
        raise HTTPException(404, f"job {job_id} is a {job.task}, not a scan: it has no table")
    if job.state != "done":
        raise HTTPException(409, f"job {job_id} is {job.state}: its table comes when it is done")
    return FileResponse(
        service.runner.tables / job.table_file,
        media_type="application/vnd.apache.parquet",
        filename=f"{job_id}.parquet",
    )


@router.delete(
    "/jobs/{job_id}",
    response_model=JobStatus,
    responses={**_ERRORS, 409: {"description": "The job has finished already."}},
)
def cancel_job(job_id: str, request: Request) -> JobStatus:
    """Cancel a queued or running job."""
    service, owner = _service(request), _owner(request)
    if service.store.cancel(job_id, owner) is None:
        job = service.store.get(job_id, owner)
        if job is None:
            raise HTTPException(404, f"no job {job_id} of this token")
        raise HTTPException(409, f"job {job_id} is {job.state} already")
    service.runner.cancel(job_id)
    return status(service.store.get(job_id, owner))


@router.get(
    "/result",
    responses={
        **_ERRORS,
        200: {"description": "The job's result: what the command prints."},
        202: {"description": "Not finished yet: `{id, state}`."},
        409: {"description": "Failed or cancelled: `{id, state, error}`."},
    },
)
async def get_result(
    request: Request,
    lookup: Annotated[ResultLookup | None, Body()] = None,
    job_id: Annotated[
        str | None, Query(alias="id", description="The job id, if not in the body.")
    ] = None,
    wait: Annotated[
        float, Query(ge=0, le=300, description="Seconds to wait, if not in the body.")
    ] = 30.0,
) -> JSONResponse:
    """A job's result by id, waiting for it up to ``wait`` seconds:
    ``requests.get(URL + "/v1/result", json={"id": job_id})``."""
    if lookup is None:
        if job_id is None:
            raise HTTPException(422, "request: id: give the job id, in the body or the query")
        lookup = ResultLookup(id=job_id, wait=wait)
    job = await _job(request, lookup.id, lookup.wait)
    if job.state == "done":
        return JSONResponse(job.report["output"])
    code = 202 if job.state not in FINISHED else 409
    return JSONResponse({"id": job.id, "state": job.state, "error": job.error}, code)


@router.get("/health")
def health(request: Request) -> dict:
    """The service's hfpipe version and the worker threads its cluster has now."""
    return {
        "status": "ok",
        "version": __version__,
        "worker_threads": _service(request).runner.capacity(),
    }
