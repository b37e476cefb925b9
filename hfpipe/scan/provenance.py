"""Provenance of a scan table: what it was computed from and how (DESIGN.md §4).

Stored in the table's Parquet metadata by :func:`hfpipe.results.write_table`; a later
run compares it (:func:`same_inputs`) to decide whether a table is still up to date.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from hfpipe.scan.run import ScanSettings
from hfpipe.spec.digests import file_sha256

__all__ = ["same_inputs", "scan_provenance"]


def scan_provenance(
    workspace: str | os.PathLike,
    patchset: str | os.PathLike,
    settings: ScanSettings,
    points: Sequence[str] | None = None,
) -> dict:
    """hfpipe version, the inputs' paths and sha256, the settings and the chosen points."""
    from hfpipe import __version__

    return {
        "hfpipe_version": __version__,
        "workspace": {"path": os.fspath(workspace), "sha256": file_sha256(workspace)},
        "patchset": {"path": os.fspath(patchset), "sha256": file_sha256(patchset)},
        "settings": dataclasses.asdict(settings),
        "points": list(points) if points is not None else "all",
    }


def same_inputs(recorded: dict, wanted: dict) -> bool:
    """Whether a table's recorded provenance has the inputs (by digest), settings and
    points of ``wanted`` — paths and the hfpipe version may differ."""

    def key(p: dict):
        return (
            p.get("workspace", {}).get("sha256"),
            p.get("patchset", {}).get("sha256"),
            p.get("settings"),
            p.get("points", "all"),
        )

    return key(recorded) == key(wanted)
