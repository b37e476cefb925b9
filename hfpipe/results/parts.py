"""The parts directory of a scan: one Parquet part per finished batch, merged at the end.

Each part is written atomically (:func:`hfpipe.results.table.write_table`) and records
the *run digest* of the scan and one *point digest* per row, so that a later run can
tell which rows it may take back (:meth:`PartStore.finished`) and which it must
recompute. :func:`hfpipe.scanning.scan_to_parquet` drives it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hfpipe.results.columns import ERROR_STATUS
from hfpipe.results.table import read_table, write_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PartStore", "digest", "document_digest"]


def digest(value) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_digest(value) -> str:
    """sha256 of parsed JSON (dicts, lists, strings, numbers) by its pickle, for the
    large documents a scan digests point by point (patches): several times faster than
    :func:`digest`, which writes every number out as text. Equal documents read from the
    same text digest equally; the same values in another key order digest differently
    (their rows are recomputed, never mistaken for others')."""
    return hashlib.sha256(pickle.dumps(value, protocol=5)).hexdigest()


class PartStore:
    """The parts directory of one scan output, for one run digest."""

    def __init__(self, output: str | os.PathLike, run_digest: str):
        self.output = Path(output)
        self.directory = self.output.with_name(self.output.name + ".parts")
        self.run_digest = run_digest

    def finished(self, point_digests: Mapping[str, str]) -> list[dict]:
        """Rows already computed for these points (by name → point digest), from the final
        table and the parts; the newest part wins where a point appears twice."""
        self._remove_temporaries()
        sources = [self.output] if self.output.exists() else []
        if self.directory.is_dir():
            sources += sorted(self.directory.glob("*.parquet"), key=lambda p: p.stat().st_mtime)
        found: dict[str, dict] = {}
        for path in sources:
            try:
                frame, provenance = read_table(path)
            except Exception as error:  # an unreadable file is recomputed, never fatal
                warnings.warn(
                    f"{path}: unreadable, its points are recomputed ({error})", stacklevel=2
                )
                continue
            if provenance.get("run_digest") != self.run_digest:
                continue
            digests = provenance.get("point_digests", {})
            for record in frame.to_dict("records"):
                name = record.get("point")
                if (
                    name in point_digests
                    and digests.get(name) == point_digests[name]
                    and record.get("status") != ERROR_STATUS
                ):
                    found[name] = record
        return list(found.values())

    def write(self, frame: pd.DataFrame, point_digests: Mapping[str, str]) -> Path:
        """Write one finished batch as a part (atomically); named by its points."""
        names = list(frame["point"])
        key = digest([self.run_digest, names])[:20]
        provenance = {
            "run_digest": self.run_digest,
            "point_digests": {name: point_digests[name] for name in names},
        }
        return write_table(frame, self.directory / f"part-{key}.parquet", provenance)

    def merge(
        self, frame: pd.DataFrame, provenance: dict, point_digests: Mapping[str, str]
    ) -> Path:
        """Write the whole table to the output atomically, then drop the parts."""
        provenance = {
            **provenance,
            "run_digest": self.run_digest,
            "point_digests": {name: point_digests[name] for name in frame["point"]},
        }
        path = write_table(frame, self.output, provenance)
        shutil.rmtree(self.directory, ignore_errors=True)
        return path

    def _remove_temporaries(self) -> None:
        """Temporary files of writes a kill interrupted (never complete: renamed otherwise)."""
        stale = list(self.output.parent.glob(f".{self.output.name}.*.tmp"))
        if self.directory.is_dir():
            stale += self.directory.glob(".*.tmp")
        for path in stale:
            path.unlink(missing_ok=True)
