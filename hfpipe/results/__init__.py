"""Scan tables on disk: Parquet output with provenance, and merging a chunked scan."""

from hfpipe.results.merge import merge_tables
from hfpipe.results.table import read_table, write_table

__all__ = ["merge_tables", "read_table", "write_table"]
