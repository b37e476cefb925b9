"""Scan tables on disk: Parquet output with provenance."""

from hfpipe.results.table import read_table, write_table

__all__ = ["read_table", "write_table"]
