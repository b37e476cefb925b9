"""Scans: every signal point of a patchset through one compiled, batched computation."""

from hfpipe.scan.columns import EXPECTED_COLUMNS, LIMIT_COLUMNS, column_order, label_columns
from hfpipe.scan.run import (
    DEFAULT_BATCH_SIZE,
    ERROR_STATUS,
    ScanSettings,
    resolve_settings,
    run_batch,
    run_batch_here,
    scan,
)
from hfpipe.scan.union import UnionBatch, unify

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ERROR_STATUS",
    "EXPECTED_COLUMNS",
    "LIMIT_COLUMNS",
    "ScanSettings",
    "UnionBatch",
    "column_order",
    "label_columns",
    "resolve_settings",
    "run_batch",
    "run_batch_here",
    "scan",
    "unify",
]
