"""Scans: every signal point of a patchset through one compiled, batched computation."""

from hfpipe.scan.columns import EXPECTED_COLUMNS, LIMIT_COLUMNS, column_order, label_columns
from hfpipe.scan.run import DEFAULT_BATCH_SIZE, ScanSettings, run_batch, scan
from hfpipe.scan.union import UnionBatch, unify

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EXPECTED_COLUMNS",
    "LIMIT_COLUMNS",
    "ScanSettings",
    "UnionBatch",
    "column_order",
    "label_columns",
    "run_batch",
    "scan",
    "unify",
]
