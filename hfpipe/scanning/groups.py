"""Which points a scan fits together: one stack where they share a layout, else union
structures (:mod:`hfpipe.scanning.union`).

Signal hypotheses from a table usually differ only in their numbers and names (the
signal sample is named after its point): the same parameters act on the same slots, the
structures' :attr:`~hfpipe.model.structure.Structure.layout` (what compiled code depends
on) is one. Their numbers then stack as they are; unifying them would rename and pad
every point to arrive at the same numbers, at about a third of a point's preparation on
ATLAS 1Lbb.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hfpipe.model.structure import Numbers, Structure
from hfpipe.scanning.union import UnionBatch, unify

__all__ = ["group_points"]


def group_points(
    models: Sequence[tuple[Structure, Numbers]],
    background_samples: Mapping[str, set[str]],
    background_parameters: set[str],
) -> list[UnionBatch]:
    """Points of one layout (and channels, and POI) as one batch, in the first point's
    structure; otherwise :func:`~hfpipe.scanning.union.unify` (same arguments)."""
    structure = models[0][0]
    if any(not _same_layout(s, structure) for s, _ in models[1:]):
        return unify(models, background_samples, background_parameters)
    numbers = Numbers(*(np.stack(field) for field in zip(*(n for _, n in models), strict=True)))
    return [UnionBatch(structure, numbers, list(range(len(models))), np.zeros(len(models)))]


def _same_layout(structure: Structure, first: Structure) -> bool:
    return (
        structure.layout == first.layout
        and structure.poi_index == first.poi_index
        and (structure.channels, structure.channel_bins) == (first.channels, first.channel_bins)
    )
