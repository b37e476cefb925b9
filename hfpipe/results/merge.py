"""Merge the parts of a chunked scan into one table, checking that they belong together.

A scan run as many jobs (one Parquet part per chunk of points) is one result only if
every part was computed from the same inputs with the same settings, and together they
hold each point exactly once. :func:`merge_tables` checks exactly that and keeps the
shared provenance, so the merged file records its inputs as a single scan's would.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hfpipe.errors import HfpipeError
from hfpipe.results.table import read_table

__all__ = ["merge_tables"]

#: provenance entries that must agree between parts (the paths may differ, e.g. when a
#: job without a shared filesystem saw its inputs under another folder)
_MUST_AGREE = ("hfpipe_version", "settings")


def _identity(provenance: dict) -> dict:
    same = {key: provenance.get(key) for key in _MUST_AGREE}
    for key in ("workspace", "patchset"):
        same[key] = (provenance.get(key) or {}).get("sha256")
    return same


def merge_tables(
    parts: Sequence[str | os.PathLike], *, expected_points: Sequence[str] | None = None
) -> tuple[pd.DataFrame, dict]:
    """Concatenate scan parts into one table and provenance.

    Raises :class:`~hfpipe.errors.HfpipeError` if the parts disagree on inputs or
    settings, repeat a point, or (with ``expected_points``) miss or add one. Rows come
    in the order of ``expected_points`` where given, else in the order of the parts.
    """
    if not parts:
        raise HfpipeError("nothing to merge: no parts given")
    frames, identity, provenance = [], None, {}
    for part in parts:
        frame, meta = read_table(part)
        if identity is None:
            identity, provenance = _identity(meta), meta
        elif _identity(meta) != identity:
            raise HfpipeError(
                f"{part}: computed from other inputs or settings than {parts[0]}; "
                "rerun it (or merge the two scans separately)"
            )
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)
    keys = merged[["analysis", "point"]]
    repeated = keys[keys.duplicated()]
    if len(repeated):
        raise HfpipeError(f"point {repeated.iloc[0]['point']!r} is in more than one part")
    if expected_points is not None:
        have, want = set(merged["point"]), set(expected_points)
        if have != want:
            missing, extra = sorted(want - have), sorted(have - want)
            raise HfpipeError(
                f"the parts do not hold the planned points: missing {missing[:5]}"
                + (f", unplanned {extra[:5]}" if extra else "")
            )
        order = {name: k for k, name in enumerate(expected_points)}
        merged = merged.sort_values("point", key=lambda s: s.map(order), ignore_index=True)
    provenance = {**provenance, "parts": [Path(part).name for part in parts]}
    return merged, provenance
