"""Scan tables on disk: Parquet output with provenance, incremental parts and resume,
and merging a chunked scan."""

from hfpipe.results.merge import merge_tables
from hfpipe.results.parts import PartStore, scan_to_parquet
from hfpipe.results.table import read_table, write_table

__all__ = ["PartStore", "merge_tables", "read_table", "scan_to_parquet", "write_table"]
