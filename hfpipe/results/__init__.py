"""Scan tables on disk: the table schema, Parquet output with provenance, the parts of
an incremental scan, merging a chunked scan, toy chunk files. Nothing here imports JAX
(drawing a contour reads tables without the engine)."""

from hfpipe.results.columns import ERROR_STATUS, EXPECTED_COLUMNS, LIMIT_COLUMNS
from hfpipe.results.merge import merge_tables
from hfpipe.results.parts import PartStore
from hfpipe.results.table import read_scan_table, read_table, write_table

__all__ = [
    "ERROR_STATUS",
    "EXPECTED_COLUMNS",
    "LIMIT_COLUMNS",
    "PartStore",
    "merge_tables",
    "read_scan_table",
    "read_table",
    "write_table",
]
