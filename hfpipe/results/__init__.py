"""Scan tables on disk: Parquet output with provenance, incremental parts and resume."""

from hfpipe.results.parts import PartStore, scan_to_parquet
from hfpipe.results.table import read_table, write_table

__all__ = ["PartStore", "read_table", "scan_to_parquet", "write_table"]
