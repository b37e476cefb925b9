"""Dask clusters for scans, from a small config: a local one, Slurm or HTCondor.

A config is a dict or a YAML file with these keys (all optional but ``kind``)::

    kind: slurm            # local | slurm | htcondor
    workers: 4             # worker processes (local) or batch jobs (slurm, htcondor)
    cores: 2               # cores per job (threads per worker process)
    memory: 4GB            # memory per job
    walltime: "01:00:00"   # slurm only (HTCondor has no walltime)
    disk: 2GB              # htcondor only (required there; default 1GB)
    gpus: 1                # GPUs per job: --gres=gpu:N (slurm), request_gpus (htcondor)
    queue: debug           # slurm partition
    account: myproject     # slurm account
    job_script_prologue:   # shell lines run before the worker starts
      - source /path/to/venv/bin/activate
    interface: lo          # network interface of the scheduler and workers
    extra: {}              # any other keyword of the dask-jobqueue cluster class

The batch kinds use dask-jobqueue's ``SLURMCluster`` and ``HTCondorCluster``
(``pip install hfpipe[cluster]``); each job runs one worker process, which compiles a
structure once and reuses it for every batch it gets.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from hfpipe.errors import InputError

__all__ = ["KINDS", "connect", "load_cluster_config", "make_cluster"]

KINDS = ("local", "slurm", "htcondor")
_KEYS = {
    "kind",
    "workers",
    "cores",
    "memory",
    "walltime",
    "disk",
    "gpus",
    "queue",
    "account",
    "job_script_prologue",
    "interface",
    "extra",
}
_ONLY = {"walltime": "slurm", "queue": "slurm", "account": "slurm", "disk": "htcondor"}


def load_cluster_config(source: str | os.PathLike | Mapping, **overrides) -> dict:
    """A cluster config from a YAML file or a mapping, with ``overrides`` replacing its
    keys, checked: unknown keys, an unknown kind or a key that the kind does not take end
    in one clear error."""
    import yaml

    file = None
    if isinstance(source, Mapping):
        config = dict(source)
    else:
        file = str(source)
        try:
            config = yaml.safe_load(Path(source).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise InputError(
                f"cannot read cluster config: {error}".replace("\n", " "), file=file
            ) from None
    if not isinstance(config, dict):
        raise InputError("a cluster config is a mapping of keys to values", file=file)
    config |= overrides
    for key in config:
        if key not in _KEYS:
            raise InputError(f"unknown key; known: {', '.join(sorted(_KEYS))}", file=file, path=key)
    kind = config.setdefault("kind", "local")
    if kind not in KINDS:
        raise InputError(
            f"unknown kind {kind!r}; one of {', '.join(KINDS)}", file=file, path="kind"
        )
    for key, only in _ONLY.items():
        if key in config and kind != only:
            raise InputError(f"only a {only} cluster takes this key", file=file, path=key)
    prologue = config.get("job_script_prologue", [])
    if isinstance(prologue, str):
        config["job_script_prologue"] = [prologue]
    return config


def make_cluster(config: str | os.PathLike | Mapping | None = None, **overrides):
    """A Dask cluster from ``config`` (see the module docstring), scaled to ``workers``.

    ``overrides`` replace config keys (``make_cluster("slurm.yaml", workers=8)``).
    """
    config = load_cluster_config(config or {}, **overrides)
    kind, workers = config["kind"], int(config.get("workers", 1))
    cores = int(config.get("cores", 1))
    if kind == "local":
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=workers,
            threads_per_worker=cores,
            processes=True,
            memory_limit=config.get("memory", "auto"),
            dashboard_address=None,
            **config.get("extra", {}),
        )
    try:
        import dask_jobqueue
    except ImportError:
        raise InputError(
            f"a {kind} cluster needs dask-jobqueue: pip install 'hfpipe[cluster]'"
        ) from None
    options = {
        "cores": cores,
        "memory": config.get("memory", "2GB"),
        "processes": 1,
        "job_script_prologue": config.get("job_script_prologue", []),
        "scheduler_options": {"dashboard_address": None},
    }
    if "interface" in config:
        options["interface"] = config["interface"]
        options["scheduler_options"]["interface"] = config["interface"]
    gpus = int(config.get("gpus", 0))
    if kind == "slurm":
        options |= {k: config[k] for k in ("walltime", "queue", "account") if k in config}
        options["job_extra_directives"] = [f"--gres=gpu:{gpus}"] if gpus else []
        cluster_class = dask_jobqueue.SLURMCluster
    else:
        options["disk"] = config.get("disk", "1GB")
        options["job_extra_directives"] = {"request_gpus": str(gpus)} if gpus else {}
        cluster_class = dask_jobqueue.HTCondorCluster
    cluster = cluster_class(**(options | config.get("extra", {})))
    cluster.scale(jobs=workers)
    return cluster


@contextlib.contextmanager
def connect(
    scheduler: str | None,
    cluster_config: str | os.PathLike | Mapping | None = None,
    workers: int | None = None,
) -> Iterator:
    """A ``dask.distributed.Client`` for ``scheduler`` — ``None`` (no client: the scan
    runs in this process), ``local``, ``slurm``, ``condor``/``htcondor`` (a cluster
    made from ``cluster_config``, closed on exit) or a scheduler address
    (``tcp://host:8786``, left running on exit)."""
    if scheduler is None:
        yield None
        return
    from distributed import Client

    kind = {"condor": "htcondor"}.get(scheduler, scheduler)
    if kind not in KINDS:
        with Client(scheduler) as client:
            yield client
        return
    overrides = {"kind": kind} | ({"workers": workers} if workers else {})
    with make_cluster(cluster_config, **overrides) as cluster, Client(cluster) as client:
        yield client
