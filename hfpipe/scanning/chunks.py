"""Split a scan into chunks of points: the jobs of a batch-system or workflow run.

:func:`plan_chunks` checks the inputs once, up front (schemas, the patchset's digest
against the workspace — or a signal table's channels and bins —, the chosen point
names), so a typo fails before any job is submitted, and splits the points
deterministically (patchset or table order, ``chunk_size`` a chunk) — the same inputs
always give the same chunks, so a rerun finds its finished parts again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from hfpipe import spec
from hfpipe.errors import HfpipeError

__all__ = ["plan_chunks", "read_plan", "write_plan"]


def plan_chunks(
    workspace: str | os.PathLike,
    patchset: str | os.PathLike | None,
    *,
    chunk_size: int,
    points: Sequence[str] | None = None,
    analysis: str | None = None,
    signals: str | os.PathLike | None = None,
    signals_config: str | os.PathLike | None = None,
) -> dict:
    """Validate a scan's inputs and split its points into chunks of ``chunk_size``.

    The points come from ``patchset`` or, instead, from the signal table ``signals``
    (with its ``signals_config``; :func:`hfpipe.spec.load_signals`), checked against
    the workspace. Returns a JSON-ready plan: ``analysis``, the input paths, ``points``
    (all chosen, in patchset or table order) and ``chunks`` (lists of point names).
    """
    if chunk_size < 1:
        raise HfpipeError(f"chunk size must be at least 1, got {chunk_size}")
    if (patchset is None) == (signals is None):
        raise HfpipeError("give either a patchset or a signal table (exactly one)")
    ws = spec.load_workspace(workspace)
    if signals is not None:
        ps = spec.load_signals(signals, signals_config).bind(ws)
        source = signals
    else:
        ps = spec.load_patchset(patchset)
        spec.verify_patchset(ps, ws, file=str(patchset))
        source = patchset
    chosen = _chosen(ps, points, source)
    comma = next((name for name in chosen if "," in name), None)
    if comma is not None:
        raise HfpipeError(f"{source}: point name {comma!r} has a comma, which --points splits at")
    plan = {
        "analysis": analysis or ps.name or ps.analysis_id or "analysis",
        "workspace": str(workspace),
        "patchset": None if patchset is None else str(patchset),
    }
    if signals is not None:
        plan["signals"] = str(signals)
        plan["signals_config"] = None if signals_config is None else str(signals_config)
    return plan | {
        "points": chosen,
        "chunks": [chosen[k : k + chunk_size] for k in range(0, len(chosen), chunk_size)],
    }


def _chosen(ps, points: Sequence[str] | None, source) -> list[str]:
    """The chosen point names (default: all), in the patchset's (or table's) order."""
    if points is None:
        return list(ps.names)
    known = set(ps.names)
    for name in points:
        if name not in known:
            ps[name]  # an unknown name raises a one-line error naming the patchset
    wanted = set(points)
    if len(wanted) != len(points):
        raise HfpipeError(f"{source}: a point is chosen more than once")
    return [name for name in ps.names if name in wanted]


def write_plan(plan: dict, path: str | os.PathLike) -> Path:
    """Write a plan as JSON (atomically: a killed job leaves no half-written plan)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(plan, indent=1) + "\n")
    os.replace(temporary, path)
    return path


def read_plan(path: str | os.PathLike) -> dict:
    """Read a plan written by :func:`write_plan`."""
    with open(path) as f:
        return json.load(f)
