"""Scans: every signal point of a patchset (or hypothesis of a signal table) through one
compiled, batched computation, chunk by chunk, in this process or on Dask workers,
written as it goes and resumed where it stopped."""

from hfpipe.scanning.cluster import connect, load_cluster_config, make_cluster
from hfpipe.scanning.output import scan_to_parquet
from hfpipe.scanning.run import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE,
    ScanSettings,
    resolve_settings,
    run_batch,
    run_batch_here,
    scan,
)
from hfpipe.scanning.union import UnionBatch, unify

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "ScanSettings",
    "UnionBatch",
    "connect",
    "load_cluster_config",
    "make_cluster",
    "resolve_settings",
    "run_batch",
    "run_batch_here",
    "scan",
    "scan_to_parquet",
    "unify",
]
