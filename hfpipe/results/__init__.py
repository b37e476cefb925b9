"""Scan tables on disk: the table schema, Parquet output with provenance, the parts of
an incremental scan, merging a chunked scan, toy chunk files. Nothing here imports JAX
(drawing a contour reads tables without the engine).

The schema (:mod:`hfpipe.results.columns`) is plain constants; the names that read and
write tables (pandas, pyarrow) are imported on first use, so that a scan's worker
process, which needs the schema only, does not load them.
"""

from __future__ import annotations

from hfpipe._lazy import lazy_names
from hfpipe.results.columns import ERROR_STATUS, EXPECTED_COLUMNS, LIMIT_COLUMNS

#: public name -> the module of this package that defines it
_HOMES = {
    "PartStore": "parts",
    "merge_tables": "merge",
    "read_scan_table": "table",
    "read_table": "table",
    "write_table": "table",
}

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


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
