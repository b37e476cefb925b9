"""``hfpipe serve``: fitting as a service, an HTTP API in front of the Dask-backed engine.

A client posts a job (a workspace with patches and a task: ``hypotest``, ``fit``,
``upper_limits``, or a background with a patchset: ``scan``) and gets an id; it asks for
the job by id and gets the result the command line would print. The modules, from the
door inwards:

* :mod:`~hfpipe.service.auth`: bearer tokens (constant-time) and the body limit;
* :mod:`~hfpipe.service.app`, :mod:`~hfpipe.service.routes`: the ASGI application;
* :mod:`~hfpipe.service.schema`: what a request may say;
* :mod:`~hfpipe.service.tasks`: the command line's functions run on a request;
* :mod:`~hfpipe.service.store`: jobs and results in SQLite (WAL), nothing lost;
* :mod:`~hfpipe.service.jobs`: jobs on the Dask client, time limits, cancellation;
* :mod:`~hfpipe.service.server`: a service put together, and served by uvicorn.

Needs the ``service`` extra (FastAPI, uvicorn): ``pip install 'hfpipe[service]'``.
"""

from hfpipe.service.server import Service, ServiceConfig, open_service, serve

__all__ = ["Service", "ServiceConfig", "open_service", "serve"]
