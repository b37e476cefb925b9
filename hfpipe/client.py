"""A client of ``hfpipe serve``: submit jobs, wait for them, collect their results.

>>> client = Client("http://127.0.0.1:8000", token)            # doctest: +SKIP
>>> job = client.submit("BkgOnly.json", patches=["signal.json"])  # doctest: +SKIP
>>> client.wait(job)                                          # doctest: +SKIP
{'CLs_obs': 0.037, 'CLs_exp': [...]}

Inputs are dicts or paths of JSON files (``.json`` or ``.json.gz``). The token defaults
to ``$HFPIPE_SERVICE_TOKEN``. Errors the service answers (401, 413, 422, 429, ...) raise
:class:`ServiceError` with its one-line message; a job that failed or was cancelled
raises :class:`JobFailed`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from hfpipe.errors import HfpipeError

__all__ = ["Client", "JobFailed", "JobNotFinished", "ServiceError"]

#: the longest one status request waits on the server (its limit)
_LONGEST_WAIT = 60.0


class ServiceError(HfpipeError):
    """The service refused a request: ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str, retry_after: float | None = None):
        self.status, self.message, self.retry_after = status, message, retry_after
        super().__init__(f"HTTP {status}: {message}")


class JobFailed(HfpipeError):
    """The job ended without a result; ``job`` is its status."""

    def __init__(self, job: dict):
        self.job = job
        super().__init__(f"job {job['id']} {job['state']}: {job.get('error')}")


class JobNotFinished(HfpipeError):
    """The job has no result yet."""


def _document(source):
    from hfpipe.spec import load_json

    return source if isinstance(source, dict | list) else load_json(source)


class Client:
    """The service at ``url`` (``http://host:port``), as the owner of ``token``."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 120.0):
        self.url, self.timeout = url.rstrip("/"), timeout
        token = token if token is not None else os.environ.get("HFPIPE_SERVICE_TOKEN")
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, route: str, **kwargs) -> requests.Response:
        wait = kwargs.get("params", {}).get("wait", 0)
        response = self._session.request(
            method, self.url + route, timeout=self.timeout + wait, **kwargs
        )
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            retry = response.headers.get("Retry-After")
            raise ServiceError(response.status_code, message, float(retry) if retry else None)
        return response

    def submit(
        self,
        workspace=None,
        *,
        task: str = "hypotest",
        patches: Sequence = (),
        background=None,
        patchset=None,
        points: Sequence[str] | None = None,
        analysis: str | None = None,
        settings: dict | None = None,
    ) -> str:
        """Submit a job and return its id. ``workspace`` and ``patches`` for a hypotest,
        fit or upper_limits; ``background``, ``patchset`` and ``points`` for a scan;
        ``settings`` by the command line's option names (``poi_value``, ``test_stat``, ...)."""
        body: dict = {"task": task, "settings": dict(settings or {})}
        if workspace is not None:
            body["workspace"] = _document(workspace)
        if patches:
            body["patches"] = [_document(patch) for patch in patches]
        if background is not None:
            body["background"] = _document(background)
        if patchset is not None:
            body["patchset"] = _document(patchset)
        if points is not None:
            body["points"] = list(points)
        if analysis is not None:
            body["analysis"] = analysis
        return self._call("POST", "/v1/jobs", json=body).json()["id"]

    def status(self, job_id: str, wait: float = 0.0) -> dict:
        """The job's state (and result, when done), waiting up to ``wait`` seconds (at
        most 60) for it to finish."""
        params = {"wait": min(wait, _LONGEST_WAIT)}
        return self._call("GET", f"/v1/jobs/{job_id}", params=params).json()

    def result(self, job_id: str) -> dict:
        """The job's result; :class:`JobNotFinished` if it has none yet."""
        job = self.status(job_id)
        return self._result(job)

    def wait(self, job_id: str, timeout: float | None = None) -> dict:
        """The job's result once it is done; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _LONGEST_WAIT if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"job {job_id} not finished after {timeout:g} s")
            job = self.status(job_id, wait=left)
            if job["state"] not in ("queued", "running"):
                return self._result(job)

    @staticmethod
    def _result(job: dict) -> dict:
        if job["state"] == "done":
            return job["result"]
        if job["state"] in ("queued", "running"):
            raise JobNotFinished(f"job {job['id']} is {job['state']}")
        raise JobFailed(job)

    def cancel(self, job_id: str) -> dict:
        """Cancel a queued or running job; its status after."""
        return self._call("DELETE", f"/v1/jobs/{job_id}").json()

    def table(self, job_id: str, path: str | os.PathLike) -> Path:
        """Write a done scan job's Parquet table to ``path`` (atomically)."""
        from hfpipe.results.atomic import atomic_path

        response = self._call("GET", f"/v1/jobs/{job_id}/table")
        with atomic_path(path) as temporary:
            temporary.write_bytes(response.content)
        return Path(path)
