"""Scan tables on disk: Parquet with provenance, written atomically.

One row per (analysis, point). Files are written atomically — to a temporary file in
the same directory, then renamed — so a killed scan leaves either the old file or the
new one, never a torn one. Provenance (hfpipe version, input digests, settings) goes
into the Parquet key-value metadata under ``hfpipe``. pandas and pyarrow are imported
when a table is first read or written: a scan's main process starts its workers and
reads its inputs first (importing them took a third of a second of that).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hfpipe.errors import InputError
from hfpipe.results.atomic import atomic_path

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["read_scan_table", "read_table", "write_table"]


def write_table(frame: pd.DataFrame, path: str | os.PathLike, provenance: dict) -> Path:
    """Write ``frame`` to Parquet at ``path`` atomically, with ``provenance`` metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[b"hfpipe"] = json.dumps(provenance, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary)
    return path


def read_table(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Read a scan table and its provenance."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(b"hfpipe", b"{}")
    return table.to_pandas(), json.loads(raw)


def read_scan_table(path: str | os.PathLike, analysis: str | None = None) -> pd.DataFrame:
    """The rows of one analysis of a scan table (``analysis`` picks one if it holds
    several); a one-line :class:`~hfpipe.errors.InputError` where it cannot be read."""
    try:
        table, _ = read_table(path)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the scan table: {error}", file=str(path), path="") from None
    names = sorted(table["analysis"].unique()) if "analysis" in table else []
    if analysis is not None:
        if analysis not in names:
            raise InputError(
                f"no analysis {analysis!r} in the table (has {names})", file=str(path), path=""
            )
        table = table[table["analysis"] == analysis]
    elif len(names) > 1:
        raise InputError(
            f"the table holds several analyses {names}: pick one with --analysis",
            file=str(path),
            path="",
        )
    return table
