"""Split a scan into chunks of points: the jobs of a batch-system or workflow run.

:func:`plan_chunks` checks the inputs once, up front (schemas, the patchset's digest
against the workspace, the chosen point names), so a typo fails before any job is
submitted, and splits the points deterministically (patchset order, ``chunk_size`` a
chunk) — the same inputs always give the same chunks, so a rerun finds its finished
parts again.
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
    patchset: str | os.PathLike,
    *,
    chunk_size: int,
    points: Sequence[str] | None = None,
    analysis: str | None = None,
) -> dict:
    """Validate a scan's inputs and split its points into chunks of ``chunk_size``.

    Returns a JSON-ready plan: ``analysis``, the input paths, ``points`` (all chosen, in patchset order) and ``chunks`` (lists of point names).
    """
    if chunk_size < 1:
        raise HfpipeError(f"chunk size must be at least 1, got {chunk_size}")
    ws = spec.load_workspace(workspace)
    ps = spec.load_patchset(patchset)
    spec.verify_patchset(ps, ws, file=str(patchset))
    if points is None:
        chosen = list(ps.names)
    else:
        for name in points:
            ps[name]  # an unknown name raises a one-line error naming the patchset
        wanted = set(points)
        if len(wanted) != len(points):
            raise HfpipeError(f"{patchset}: a point is chosen more than once")
        chosen = [name for name in ps.names if name in wanted]
    return {
        "analysis": analysis or ps.name or ps.analysis_id or "analysis",
        "workspace": str(workspace),
        "patchset": str(patchset),
        "points": chosen,
        "chunks": [chosen[k : k + chunk_size] for k in range(0, len(chosen), chunk_size)],
    }


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
