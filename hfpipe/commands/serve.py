"""``hfpipe serve``: the HTTP API (see :mod:`hfpipe.service` and docs/service.md)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from hfpipe.commands import one_line_errors
from hfpipe.errors import HfpipeError

__all__ = ["serve"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--scheduler",
    default="local",
    show_default=True,
    help="Where jobs run: local (a LocalCluster), slurm, condor or a scheduler address.",
)
@click.option(
    "--cluster-config",
    type=click.Path(dir_okay=False, exists=True),
    help="YAML cluster config for --scheduler local|slurm|condor (see docs/dask.md).",
)
@click.option("--workers", type=click.IntRange(1), help="Dask workers (local) or batch jobs.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    default="hfpipe-service",
    show_default=True,
    help="Job store and scan tables; a restart on the same folder resumes its jobs.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="Accepted bearer tokens, one a line (also: $HFPIPE_SERVICE_TOKEN).",
)
@click.option(
    "--no-auth", is_flag=True, help="Accept requests without a token (loopback hosts only)."
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="Browser origin allowed to call the API (repeatable; default: none).",
)
@click.option(
    "--max-body-mb",
    type=click.FloatRange(0, min_open=True),
    default=64.0,
    show_default=True,
    help="Largest request body, in MiB (larger: 413).",
)
@click.option(
    "--max-queued",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Unfinished jobs a token may have (more: 429).",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(0, min_open=True),
    default=3600.0,
    show_default=True,
    help="Seconds a job may run before it is failed.",
)
@one_line_errors
def serve(
    host,
    port,
    scheduler,
    cluster_config,
    workers,
    state_dir,
    token_file,
    no_auth,
    cors_origins,
    max_body_mb,
    max_queued,
    time_limit,
):
    """Serve fits, hypothesis tests, upper limits and scans over HTTP (API under /v1,
    OpenAPI page at /docs), computed on a Dask cluster.

    Every request needs 'Authorization: Bearer TOKEN' with a token of --token-file or
    $HFPIPE_SERVICE_TOKEN; without any token the service does not start, unless
    --no-auth and a loopback --host.
    """
    from hfpipe.service import ServiceConfig
    from hfpipe.service import serve as run
    from hfpipe.service.auth import load_tokens
    from hfpipe.service.server import is_loopback

    tokens = load_tokens(token_file, os.environ)
    if no_auth and tokens:
        raise HfpipeError("--no-auth with tokens given: drop one or the other")
    if not tokens and not no_auth:
        raise HfpipeError(
            "no token: give --token-file or set HFPIPE_SERVICE_TOKEN (--no-auth for a local test)"
        )
    if no_auth and not is_loopback(host):
        raise HfpipeError(f"--no-auth serves this machine only; --host {host} is not loopback")
    config = ServiceConfig(
        state_dir=Path(state_dir),
        tokens=tokens,
        scheduler=scheduler,
        cluster_config=cluster_config,
        workers=workers,
        max_body=int(max_body_mb * 2**20),
        max_queued=max_queued,
        time_limit=time_limit,
        cors_origins=tuple(cors_origins),
    )
    run(config, host, port)
