"""What pyhf 0.7.6 keeps of a workspace, and the warning for what it silently drops.

pyhf builds its model from a workspace by names, and where a name repeats the later item
overwrites the earlier one without a word: a second sample of the same name in a channel
replaces the first; channels of the same name become one channel (their samples joined,
a later sample again replacing an earlier one of its name); of a sample's modifiers of
the same name and type the last one counts (pyhf refuses a repeated shapesys); of the
observations of a channel the last one counts, and an observation of a channel the model
lacks is ignored (the published ATLAS sbottom patches remove a validation channel and
leave its observation). hfpipe computes what pyhf computes on such a workspace, and says
what it ignores with a :class:`SpecWarning` naming the file and the JSON path; the CLI's
``--strict`` turns these warnings into errors.

This module holds the one definition of "what pyhf keeps", for the checks
(:mod:`hfpipe.spec.rules`) and for compilation (:mod:`hfpipe.model.compile`) alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

from hfpipe.errors import json_path

__all__ = [
    "SpecWarning",
    "kept_modifiers",
    "kept_samples",
    "kept_workspace",
    "merged_channels",
    "warn_input",
]


class SpecWarning(UserWarning):
    """Something pyhf accepts and hfpipe ignores, but which is probably a mistake."""


def warn_input(file: str, path: Sequence, message: str) -> None:
    """Warn ``file: json.path: message`` (a :class:`SpecWarning`)."""
    warnings.warn(f"{file}: {json_path(path)}: {message}", SpecWarning, stacklevel=3)


def kept_samples(channels: Sequence[Mapping]) -> dict[str, dict[str, tuple[int, int]]]:
    """Per channel name (in order of first appearance), the samples pyhf keeps: sample
    name -> (channel index, sample index) of the last sample of that name among all
    channels of that name. Every other sample is ignored by pyhf."""
    kept: dict[str, dict[str, tuple[int, int]]] = {}
    for c, channel in enumerate(channels):
        group = kept.setdefault(channel["name"], {})
        for s, sample in enumerate(channel["samples"]):
            group.pop(sample["name"], None)  # re-inserted: file order of the kept ones
            group[sample["name"]] = (c, s)
    return kept


def merged_channels(channels: Sequence[Mapping]) -> dict[str, list[Mapping]]:
    """Per channel name, the sample dicts pyhf keeps (see :func:`kept_samples`)."""
    return {
        name: [channels[c]["samples"][s] for c, s in group.values()]
        for name, group in kept_samples(channels).items()
    }


def kept_modifiers(modifiers: Sequence[Mapping]) -> dict[tuple[str, str], int]:
    """(type, name) -> index of the modifier pyhf uses: the last of that type and name."""
    return {(m["type"], m["name"]): i for i, m in enumerate(modifiers)}


def kept_workspace(ws: Mapping) -> dict:
    """The workspace as pyhf reads it: one channel per name with the samples pyhf keeps,
    each with the modifiers it keeps; per channel the observation pyhf uses; the first
    measurement of each name. For what must describe pyhf's model item by item (an HS3
    export). Shares the parts it keeps with ``ws``."""
    channels = [
        {"name": name, "samples": [_with_kept_modifiers(sample) for sample in samples]}
        for name, samples in merged_channels(ws["channels"]).items()
    ]
    names = {channel["name"] for channel in channels}
    observations: dict[str, Mapping] = {}
    for observation in ws["observations"]:
        if observation["name"] in names:
            observations[observation["name"]] = observation  # the last one counts
    measurements: dict[str, Mapping] = {}
    for measurement in ws["measurements"]:
        measurements.setdefault(measurement["name"], measurement)
    return {
        **ws,
        "channels": channels,
        "observations": list(observations.values()),
        "measurements": list(measurements.values()),
    }


def _with_kept_modifiers(sample: Mapping) -> Mapping:
    """``sample``, or a copy of it with only the modifiers pyhf keeps."""
    modifiers = sample["modifiers"]
    kept = sorted(kept_modifiers(modifiers).values())
    if len(kept) == len(modifiers):
        return sample
    return {**sample, "modifiers": [modifiers[i] for i in kept]}
