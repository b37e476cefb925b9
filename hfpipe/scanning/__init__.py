"""Scans: every signal point of a patchset (or hypothesis of a signal table) through one
compiled, batched computation, chunk by chunk, in this process or on Dask workers,
written as it goes and resumed where it stopped.

The names below are imported from their modules on first use: a scan's worker process
imports :mod:`hfpipe.scanning.batches` (the engine) and the settings of
:mod:`hfpipe.scanning.run`, not the output, cluster and table modules (pandas, pyarrow,
Dask) this package also holds; the process that orchestrates a scan on a pool imports
no engine (see :mod:`hfpipe.scanning.run`).
"""

from __future__ import annotations

from hfpipe._lazy import lazy_names

#: public name -> the module of this package that defines it
_HOMES = {
    "DEFAULT_BATCH_SIZE": "run",
    "DEFAULT_CHUNK_SIZE": "run",
    "ScanSettings": "run",
    "UnionBatch": "union",
    "connect": "cluster",
    "load_cluster_config": "cluster",
    "make_cluster": "cluster",
    "resolve_settings": "run",
    "run_batch": "batches",
    "run_batch_here": "batches",
    "scan": "run",
    "scan_to_parquet": "output",
    "unify": "union",
}

__all__ = sorted(_HOMES)


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
