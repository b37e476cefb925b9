"""Combining two workspaces and sorting one, with pyhf 0.7.6's semantics.

``combine_workspaces`` joins channels, observations and measurements by name, as
``pyhf.Workspace.combine`` does: with join ``none`` no name may be in both workspaces;
``outer`` keeps one copy of what is identical on both sides and refuses anything else
that shares a name, except measurements, whose parameter settings are merged when their
POIs agree; ``left outer`` (``right outer``) keeps the left (right) item whenever a name
is on both sides. ``merge_channels`` merges the samples of same-named channels instead
(the first workspace's sample wins a shared name). Modifiers with the same name become
one parameter, so a name used with incompatible types on the two sides is a clash too.
Every clash is one error line that names both sides and the JSON paths in them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hfpipe.errors import InvalidWorkspace, json_path

from .io import copy_json
from .modifiers import SHAREABLE_TYPES
from .workspace import _validate

__all__ = ["JOINS", "combine_workspaces", "sort_workspace"]

#: pyhf's join operations (``pyhf.Workspace.valid_joins``)
JOINS = ("none", "outer", "left outer", "right outer")


def combine_workspaces(
    left: dict,
    right: dict,
    *,
    join: str = "none",
    merge_channels: bool = False,
    left_name: str = "<left>",
    right_name: str = "<right>",
) -> dict:
    """The combination of two validated workspaces, validated; neither input changes.

    ``join`` is one of :data:`JOINS` (see the module's docstring); ``merge_channels``
    needs an outer join. ``left_name`` and ``right_name`` label the sides in errors
    (:class:`~hfpipe.errors.InvalidWorkspace`, one line naming both sides).
    """
    if join not in JOINS:
        raise ValueError(f"join must be one of {', '.join(JOINS)}; not {join!r}")
    if merge_channels and join == "none":
        raise ValueError("merging channels needs an outer join (outer, left outer, right outer)")
    sides = (_Side(left, left_name), _Side(right, right_name))
    if left["version"] != right["version"]:
        raise InvalidWorkspace(
            f"schema version {left['version']} here but {right['version']} in {right_name}; "
            "workspaces of different versions cannot be combined",
            file=left_name,
            path=["version"],
        )
    channels = _join(join, sides, "channels", merge=merge_channels)
    observations = _join(join, sides, "observations")
    measurements = _join(join, sides, "measurements")
    if join == "outer":
        measurements = _merge_measurements(measurements, sides)
    combined = {
        "channels": [item for _, _, item in channels],
        "measurements": [item for _, _, item in measurements],
        "observations": [item for _, _, item in observations],
        "version": left["version"],
    }
    _check_modifier_names(combined, sides)
    combined = copy_json(combined)
    label = f"{left_name} + {right_name}"
    try:
        _validate(combined, label, strict=False, warn=False)
    except InvalidWorkspace as error:
        note = _origins(f"{error.path} {error.problem}", channels, sides)
        raise InvalidWorkspace(
            f"{error.problem} (in the combined workspace{note})", file=label, path=error.path
        ) from None
    return combined


class _Side:
    """One input workspace, its label in errors, and the index of each named item."""

    def __init__(self, ws: dict, name: str):
        self.ws, self.name = ws, name
        self.index = {
            kind: {item["name"]: i for i, item in enumerate(ws[kind])}
            for kind in ("channels", "observations", "measurements")
        }


#: one item of a joined list: (index of its side, index in that side's list, the item)
_Joined = tuple[int, int, dict]
_NOUN = {"channels": "channel", "observations": "observation", "measurements": "measurement"}


def _join(join: str, sides: tuple[_Side, _Side], kind: str, *, merge: bool = False) -> list:
    """pyhf's join of one named list: the primary side's items (the right's for
    ``right outer``), then the other side's that the join lets in; clashes raise."""
    first = 1 if join == "right outer" else 0
    primary, secondary = sides[first], sides[1 - first]
    joined: list[_Joined] = [(first, i, item) for i, item in enumerate(primary.ws[kind])]
    for j, item in enumerate(secondary.ws[kind]):
        at = primary.index[kind].get(item["name"])
        if at is not None and merge:
            joined[at] = (first, at, _merged_channel(joined[at][2], item))
        elif at is None or (join == "outer" and item != primary.ws[kind][at]):
            if at is not None and kind != "measurements":  # outer: same name, different
                _fail_difference(kind, sides, first, at, j)  # (measurements merge later)
            joined.append((1 - first, j, item))
        elif join == "none":
            _fail_shared(kind, sides, at, j)
    return joined


def _merged_channel(primary: dict, secondary: dict) -> dict:
    """A channel with the primary's samples, then the secondary's of other names."""
    names = {sample["name"] for sample in primary["samples"]}
    extra = [sample for sample in secondary["samples"] if sample["name"] not in names]
    return {**primary, "samples": [*primary["samples"], *extra]}


def _fail_shared(kind: str, sides: tuple[_Side, _Side], at: int, j: int) -> None:
    left, right = sides
    shared = [name for name in left.index[kind] if name in right.index[kind]]
    more = f" (and {len(shared) - 1} more: {', '.join(shared[1:4])})" if len(shared) > 1 else ""
    name = left.ws[kind][at]["name"]
    raise InvalidWorkspace(
        f"{_NOUN[kind]} '{name}' is also in {right.name} ({kind}[{j}]){more}; join 'none' "
        "needs distinct names: rename one side's (hfpipe workspace rename) or use an outer join",
        file=left.name,
        path=[kind, at, "name"],
    )


def _fail_difference(kind: str, sides: tuple[_Side, _Side], first: int, at: int, j: int) -> None:
    """An outer join met two different items of one name: say where they first differ."""
    here, there = sides[first], sides[1 - first]
    path, mine, theirs = _first_difference(here.ws[kind][at], there.ws[kind][j])
    where = f" at {json_path(path)}" if path else ""
    raise InvalidWorkspace(
        f"{_NOUN[kind]} '{here.ws[kind][at]['name']}' differs from the one in {there.name} "
        f"({kind}[{j}]){where}: {_show(mine)} here, {_show(theirs)} there; an outer join "
        "merges only identical ones (try 'left outer' or 'right outer' to keep one side's)",
        file=here.name,
        path=[kind, at, *path],
    )


def _first_difference(a: Any, b: Any, path: tuple = ()) -> tuple[list, Any, Any]:
    """The JSON path of the first place where ``a`` and ``b`` differ, and both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if key not in a or key not in b or a[key] != b[key]:
                if key in a and key in b:
                    return _first_difference(a[key], b[key], (*path, key))
                return [*path, key], a.get(key, "(absent)"), b.get(key, "(absent)")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, (*path, i))
    return list(path), a, b


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _merge_measurements(joined: list[_Joined], sides: tuple[_Side, _Side]) -> list[_Joined]:
    """An outer join's measurements: one per name; two of one name (same POI) become one
    with both sides' parameter settings, which must agree where they name a parameter."""
    by_name: dict[str, list[_Joined]] = {}
    for entry in joined:
        by_name.setdefault(entry[2]["name"], []).append(entry)
    merged = []
    for name, entries in by_name.items():
        if len(entries) == 1:
            merged.append(entries[0])
            continue
        (_, i, mine), (_, j, theirs) = entries
        left, right = sides
        if mine["config"]["poi"] != theirs["config"]["poi"]:
            raise InvalidWorkspace(
                f"measurement '{name}' has POI '{mine['config']['poi']}' here but "
                f"'{theirs['config']['poi']}' in {right.name} (measurements[{j}]); "
                "rename one measurement (hfpipe workspace rename --measurement)",
                file=left.name,
                path=["measurements", i, "config", "poi"],
            )
        settings = _merge_settings(name, mine, theirs, i, j, sides)
        config = {"poi": mine["config"]["poi"], "parameters": settings}
        merged.append((0, i, {"name": name, "config": config}))
    return merged


def _merge_settings(name: str, mine: dict, theirs: dict, i: int, j: int, sides) -> list:
    """Both measurements' parameter settings: identical ones once, a clash raises."""
    left, right = sides
    settings = list(mine["config"]["parameters"])
    at = {setting["name"]: k for k, setting in enumerate(settings)}
    for k, setting in enumerate(theirs["config"]["parameters"]):
        if setting["name"] not in at:
            settings.append(setting)
        elif setting != settings[at[setting["name"]]]:
            path, a, b = _first_difference(settings[at[setting["name"]]], setting)
            raise InvalidWorkspace(
                f"measurement '{name}' sets parameter '{setting['name']}' differently in "
                f"{right.name} (measurements[{j}].config.parameters[{k}]): {_show(a)} here, "
                f"{_show(b)} there",
                file=left.name,
                path=["measurements", i, "config", "parameters", at[setting["name"]], *path],
            )
    return settings


def _check_modifier_names(combined: dict, sides: tuple[_Side, _Side]) -> None:
    """One parameter per modifier name: the two sides' uses must be compatible (same
    type, or normsys with histosys; a shapesys only ever on one sample)."""
    origin = {
        id(sample): (side, ["channels", c, "samples", s])
        for side, one in enumerate(sides)
        for c, channel in enumerate(one.ws["channels"])
        for s, sample in enumerate(channel["samples"])
    }
    seen: dict[str, tuple[str, int, list]] = {}
    for channel in combined["channels"]:
        for sample in channel["samples"]:
            side, where = origin[id(sample)]
            for m, modifier in enumerate(sample["modifiers"]):
                path = [*where, "modifiers", m]
                first = seen.setdefault(modifier["name"], (modifier["type"], side, path))
                if first[1] != side:
                    _check_pair(modifier, first, side, path, sides)


def _check_pair(modifier: dict, first: tuple, owner: int, path: list, sides) -> None:
    kind, other, where = first
    name = modifier["name"]
    here, there = sides[owner], sides[other]
    problem = None
    if kind != modifier["type"] and not {kind, modifier["type"]} <= SHAREABLE_TYPES:
        problem = (
            f"modifier '{name}' is a {modifier['type']} here but a {kind} in {there.name} "
            f"({json_path(where)}); only normsys and histosys may share a name"
        )
    elif kind == modifier["type"] == "shapesys":
        problem = (
            f"shapesys '{name}' is also in {there.name} ({json_path(where)}); a shapesys "
            "cannot act on two samples"
        )
    if problem:
        raise InvalidWorkspace(
            f"{problem}: rename one side's (hfpipe workspace rename -m {name} NEW)",
            file=here.name,
            path=[*path, "name"],
        )


def _origins(text: str, channels: list[_Joined], sides) -> str:
    """``; channels[5] is B.json's channels[2]`` for each combined channel ``text`` names."""
    notes = []
    for c in dict.fromkeys(int(i) for i in re.findall(r"channels\[(\d+)\]", text)):
        if c < len(channels):
            side, index, _ = channels[c]
            notes.append(f"channels[{c}] is {sides[side].name}'s channels[{index}]")
    return "; " + ", ".join(notes) if notes else ""


def sort_workspace(ws: dict, *, file: str = "<workspace>") -> dict:
    """A sorted copy of a validated workspace, as ``pyhf.Workspace.sorted``: channels,
    samples, measurements, parameter settings and observations by name, modifiers by
    (name, type). Sorting changes no physics, so sorted copies compare (and digest)
    equal exactly when two workspaces hold the same model."""
    doc = copy_json(ws)
    _sort(doc["channels"], _by_name)
    for channel in doc["channels"]:
        _sort(channel["samples"], _by_name)
        for sample in channel["samples"]:
            _sort(sample["modifiers"], lambda item: (item["name"], item["type"]))
    _sort(doc["measurements"], _by_name)
    for measurement in doc["measurements"]:
        _sort(measurement["config"]["parameters"], _by_name)
    _sort(doc["observations"], _by_name)
    _validate(doc, file, strict=False, warn=False)
    return doc


def _by_name(item: dict) -> str:
    return item["name"]


def _sort(items: list, key: Callable[[dict], Any]) -> None:
    items.sort(key=key)
