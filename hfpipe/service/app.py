"""The ASGI application: the routes of :mod:`hfpipe.service.routes` under ``/v1``, the
guard in front of them, and errors as one JSON line ``{"error": "..."}``.

A request the service cannot take is answered with the command line's one-line message:
``request: workspace.channels[0].samples[1].data: ...`` (HTTP 422, the JSON path also
in ``path``). The OpenAPI schema is at ``/openapi.json``, its browser page at ``/docs``.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from hfpipe import __version__
from hfpipe.errors import HfpipeError, InputError, json_path
from hfpipe.service import routes
from hfpipe.service.auth import Guard
from hfpipe.service.schema import TASKS
from hfpipe.service.server import Service
from hfpipe.service.store import QueueFull
from hfpipe.service.tasks import REQUEST

__all__ = ["create_app"]

#: seconds a client told 429 should wait before it asks again
RETRY_AFTER = 5

_DESCRIPTION = """HistFactory fits, hypothesis tests, upper limits and scans of pyhf JSON
workspaces, computed by hfpipe's engine on a Dask cluster. Send `Authorization: Bearer
TOKEN` with every request."""


def create_app(service: Service) -> FastAPI:
    """The application serving ``service``."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.waiters.bind(asyncio.get_running_loop())
        yield

    app = FastAPI(
        title="hfpipe",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.service = service
    app.add_middleware(Guard, tokens=service.tokens, max_body=service.config.max_body)
    if service.config.cors_origins:  # added last: outermost, so preflights need no token
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(service.config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HfpipeError, _bad_input)
    app.add_exception_handler(QueueFull, _queue_full)
    app.add_exception_handler(HTTPException, _http_error)
    app.include_router(routes.router, prefix="/v1")
    return app


def _error(status: int, error: str, **more) -> JSONResponse:
    return JSONResponse({"error": error, **more}, status_code=status)


def _describe_validation(error: dict) -> tuple[str, str]:
    """A request-shape error of pydantic as ``(path, one-line message)``."""
    loc = list(error["loc"])
    if loc[:1] == ["body"]:
        loc = loc[1:]
    if loc[:1] and loc[0] in TASKS:  # the discriminated union's branch, not a key
        loc = loc[1:]
    context = error.get("ctx") or {}
    problem = error["msg"]
    if error["type"] == "union_tag_invalid":
        loc, problem = ["task"], f"unknown task {context.get('tag')!r}; one of {', '.join(TASKS)}"
    elif error["type"] == "json_invalid":
        loc, problem = [], f"not valid JSON: {context.get('error', problem)}"
    elif error["type"] == "missing" and not loc:
        problem = "no body: send the job as JSON"
    path = json_path(loc)
    return path, " ".join(f"{REQUEST}: {path}: {problem}".split())


async def _invalid_request(request, exc: RequestValidationError) -> JSONResponse:
    path, message = _describe_validation(exc.errors()[0])
    return _error(422, message, path=path)


async def _bad_input(request, exc: HfpipeError) -> JSONResponse:
    path = exc.path if isinstance(exc, InputError) else None
    return _error(422, " ".join(str(exc).split()), path=path)


async def _queue_full(request, exc: QueueFull) -> JSONResponse:
    response = _error(429, f"too many jobs: {exc}; retry when some have finished")
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


async def _http_error(request, exc: HTTPException) -> JSONResponse:
    return _error(exc.status_code, str(exc.detail))
