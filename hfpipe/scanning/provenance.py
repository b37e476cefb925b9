"""Provenance of a scan table: what it was computed from and how.

Stored in the table's Parquet metadata by :func:`hfpipe.results.write_table`; a later
run compares it (:func:`same_inputs`) to decide whether a table is still up to date.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence

from hfpipe.scanning.run import ScanSettings
from hfpipe.spec.digests import file_sha256

__all__ = ["same_inputs", "scan_provenance"]


def scan_provenance(
    workspace,
    patchset,
    settings: ScanSettings,
    points: Sequence[str] | None = None,
) -> dict:
    """hfpipe version, the inputs' paths and sha256, the settings and the chosen points.

    ``workspace`` and ``patchset`` are paths (their bytes are hashed) or loaded objects
    (their canonical JSON is hashed; no path is recorded).
    """
    from hfpipe import __version__

    return {
        "hfpipe_version": __version__,
        "workspace": _input(workspace),
        "patchset": _input(patchset),
        "settings": dataclasses.asdict(settings),
        "points": list(points) if points is not None else "all",
    }


def _public(items) -> dict:
    """A dataclass's fields as a dict, without its private ones (a PatchSet's lookup
    index has tuple keys, which JSON cannot hold)."""
    return {key: value for key, value in items if not key.startswith("_")}


def _input(source) -> dict:
    if isinstance(source, str | os.PathLike):
        return {"path": os.fspath(source), "sha256": file_sha256(source)}
    if dataclasses.is_dataclass(source):
        document = dataclasses.asdict(source, dict_factory=_public)
    else:
        document = source
    text = json.dumps(document, sort_keys=True, default=str)
    return {"path": None, "sha256": hashlib.sha256(text.encode()).hexdigest()}


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
