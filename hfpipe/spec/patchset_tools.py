"""Patchset documents on the command line's terms: one patch out, a new background in.

``extract_patch`` is ``pyhf patchset extract`` on a patchset document (its raw JSON, so
label values keep their spelling: ``300``, not ``300.0``). ``rebase_patchset`` points a
patchset at a modified background (pruned, say): new digests, after checking that every
patch still applies to it and gives a valid workspace.
"""

from __future__ import annotations

from .io import copy_json
from .patches import PatchBase, apply_patches
from .patchset import load_patchset
from .workspace import workspace_digest

__all__ = ["extract_patch", "rebase_patchset"]


def extract_patch(
    patchset: dict, name: str, *, with_metadata: bool = False, file: str = "<patchset>"
) -> list | dict:
    """The JSON Patch of the patchset's point ``name`` (a copy).

    With ``with_metadata``, ``{"metadata": ..., "patch": [...]}`` where the metadata is
    the patchset's with the point's own (``name``, ``values``) on top. (pyhf puts the
    patchset's on top, so a patchset ``name`` there replaces the point's.) An unknown
    name raises :class:`~hfpipe.errors.InvalidPatchset` offering the closest one.
    """
    points = load_patchset(patchset, name=file)
    spec = patchset["patches"][points.names.index(points[name].name)]
    if not with_metadata:
        return copy_json(spec["patch"])
    metadata = {**patchset["metadata"], **spec["metadata"]}
    return copy_json({"metadata": metadata, "patch": spec["patch"]})


def rebase_patchset(
    patchset: dict,
    workspace: dict,
    *,
    file: str = "<patchset>",
    workspace_name: str = "<workspace>",
) -> dict:
    """A copy of the patchset document whose digests are those of ``workspace`` (a
    validated one), after applying every patch to it and validating the result.

    This is what scanning a pruned or renamed background needs: the patches are the
    same, the background they were made for is not. A patch that no longer applies (it
    adds to a removed channel, say) raises the error of the patch, naming the point.
    """
    points = load_patchset(patchset, name=file)
    base = PatchBase.of(workspace, file=workspace_name)
    for point in points:
        apply_patches(base, [point], file=file)
    rebased = copy_json(patchset)
    rebased["metadata"]["digests"] = {
        algorithm: workspace_digest(workspace, algorithm) for algorithm in points.digests
    }
    return rebased
