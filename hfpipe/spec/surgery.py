"""Pruning, renaming and removing parts of a workspace: pure functions on plain dicts.

``prune_workspace`` and ``rename_workspace`` follow ``pyhf.Workspace.prune`` and
``pyhf.Workspace.rename`` (0.7.6) to the letter with ``match="any"``: everything that
matches any filter goes, in every channel. ``match="all"`` (pyhf issues #1279 and #2374)
removes only what matches every filter given, e.g. the normsys modifiers of sample
``ttbar``, and nothing else. ``remove_modifiers`` removes modifiers matching glob patterns
within chosen channels and samples only. Each returns a new, validated workspace and
leaves its input alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Mapping
from fnmatch import fnmatchcase

from hfpipe.errors import InvalidWorkspace, json_path

from .io import copy_json
from .workspace import _validate

__all__ = [
    "modifier_parameters",
    "prune_workspace",
    "remove_modifiers",
    "rename_workspace",
]


def prune_workspace(
    ws: dict,
    *,
    modifiers: Collection[str] = (),
    modifier_types: Collection[str] = (),
    samples: Collection[str] = (),
    channels: Collection[str] = (),
    measurements: Collection[str] = (),
    match: str = "any",
    file: str = "<workspace>",
) -> dict:
    """A copy of a validated workspace without the named parts, validated.

    ``match="any"`` is pyhf's prune: channels (and their observations), samples and
    modifiers (by name or by type) matching any filter go everywhere; settings of the
    pruned modifier names go from the measurements (those of pruned *types* stay, as in
    pyhf). ``match="all"`` removes only what matches all filters given: the modifiers
    matching the name and type filters within the given samples and channels; without
    modifier filters, the given samples within the given channels; settings of parameters
    that no longer exist anywhere go too. ``measurements`` are pruned by name either way.
    Every name must exist, and a ``match="all"`` selection must match something.
    """
    if match not in ("any", "all"):
        raise ValueError(f"match must be 'any' or 'all'; not {match!r}")
    _check_names(ws, file, modifiers, modifier_types, samples, channels, measurements)
    if match == "any":
        doc = _prune_any(ws, set(modifiers), set(modifier_types), set(samples), set(channels))
    elif modifiers or modifier_types:
        keep = _modifier_filter(modifiers, modifier_types, samples, channels)
        what = _filters(modifiers, modifier_types, samples, channels)
        doc = _without_modifiers(ws, keep, file, f"prune (all of: {what})")
    elif samples:
        doc = _without_samples(ws, set(samples), set(channels), file)
    else:
        doc = _prune_any(ws, set(), set(), set(), set(channels))
    doc["measurements"] = [m for m in doc["measurements"] if m["name"] not in set(measurements)]
    _validate(doc, file, strict=False, warn=False)
    return doc


def _filters(modifiers, types, samples, channels) -> str:
    """``modifier_types normsys; samples ttbar``: the filters given, for errors."""
    given = zip(
        ("modifiers", "modifier_types", "samples", "channels"),
        (modifiers, types, samples, channels),
        strict=True,
    )
    return "; ".join(f"{noun} {', '.join(names)}" for noun, names in given if names)


def _check_names(ws: dict, file: str, modifiers, types, samples, channels, measurements) -> None:
    """Every name to prune must be in the workspace (pyhf's rule); the error offers the
    closest known name."""
    known = {
        "modifier type": {m["type"] for _, _, m in _modifiers(ws)},
        "modifier": {m["name"] for _, _, m in _modifiers(ws)},
        "sample": {s["name"] for c in ws["channels"] for s in c["samples"]},
        "channel": {c["name"] for c in ws["channels"]},
        "measurement": {m["name"] for m in ws["measurements"]},
    }
    wanted = zip(known, (types, modifiers, samples, channels, measurements), strict=True)
    for noun, names in wanted:
        for name in names:
            if name not in known[noun]:
                raise InvalidWorkspace(_unknown(noun, name, known[noun]), file=file, path="")


def _unknown(noun: str, name: str, known: Iterable[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
    return f"no {noun} '{name}' in this workspace{hint} (known: {shown})"


def _modifiers(ws: dict) -> Iterable[tuple[dict, dict, dict]]:
    """Every (channel, sample, modifier) of a workspace."""
    for channel in ws["channels"]:
        for sample in channel["samples"]:
            for modifier in sample["modifiers"]:
                yield channel, sample, modifier


def modifier_parameters(ws: dict) -> set[str]:
    """The parameter names of a workspace's model (its modifiers' names)."""
    return {modifier["name"] for _, _, modifier in _modifiers(ws)}


def _prune_any(ws: dict, modifiers: set, types: set, samples: set, channels: set) -> dict:
    """pyhf's prune: whatever matches any filter goes, everywhere."""
    doc = copy_json(ws)
    doc["channels"] = [
        {
            **channel,
            "samples": [
                {
                    **sample,
                    "modifiers": [
                        m
                        for m in sample["modifiers"]
                        if m["name"] not in modifiers and m["type"] not in types
                    ],
                }
                for sample in channel["samples"]
                if sample["name"] not in samples
            ],
        }
        for channel in doc["channels"]
        if channel["name"] not in channels
    ]
    doc["observations"] = [o for o in doc["observations"] if o["name"] not in channels]
    for measurement in doc["measurements"]:
        config = measurement["config"]
        config["parameters"] = [p for p in config["parameters"] if p["name"] not in modifiers]
    return doc


#: decides, given (channel, sample, modifier), whether a modifier stays
_Keep = Callable[[dict, dict, dict], bool]


def _modifier_filter(modifiers, types, samples, channels) -> _Keep:
    """Keep a modifier unless it matches every filter given (an empty filter matches all)."""

    def keep(channel: dict, sample: dict, modifier: dict) -> bool:
        return not (
            (not channels or channel["name"] in channels)
            and (not samples or sample["name"] in samples)
            and (not modifiers or modifier["name"] in modifiers)
            and (not types or modifier["type"] in types)
        )

    return keep


def _without_modifiers(ws: dict, keep: _Keep, file: str, what: str) -> dict:
    """A copy without the modifiers ``keep`` refuses (it sees the input's own dicts),
    and without the measurement settings of parameters that thereby vanished; raises
    if nothing was removed."""
    doc = {
        **ws,
        "channels": [
            {
                **channel,
                "samples": [
                    {
                        **sample,
                        "modifiers": [m for m in sample["modifiers"] if keep(channel, sample, m)],
                    }
                    for sample in channel["samples"]
                ],
            }
            for channel in ws["channels"]
        ],
    }
    if sum(1 for _ in _modifiers(doc)) == sum(1 for _ in _modifiers(ws)):
        raise InvalidWorkspace(f"{what}: no modifier matches", file=file, path="")
    doc = copy_json(doc)
    drop_settings(doc, modifier_parameters(ws) - modifier_parameters(doc))
    return doc


def drop_settings(doc: dict, parameters: Collection[str]) -> None:
    """Remove, in place, the measurement settings of ``parameters`` (which are gone)."""
    for measurement in doc["measurements"]:
        config = measurement["config"]
        config["parameters"] = [p for p in config["parameters"] if p["name"] not in parameters]


def _without_samples(ws: dict, samples: set, channels: set, file: str) -> dict:
    """A copy without the named samples in the named channels (all channels if none)."""
    doc = copy_json(ws)
    removed = 0
    for channel in doc["channels"]:
        if channels and channel["name"] not in channels:
            continue
        kept = [s for s in channel["samples"] if s["name"] not in samples]
        removed += len(channel["samples"]) - len(kept)
        channel["samples"] = kept
    if not removed:
        raise InvalidWorkspace(
            f"prune: none of samples {', '.join(sorted(samples))} is in channels "
            f"{', '.join(sorted(channels))}",
            file=file,
            path="",
        )
    drop_settings(doc, modifier_parameters(ws) - modifier_parameters(doc))
    return doc


def rename_workspace(
    ws: dict,
    *,
    modifiers: Mapping[str, str] | None = None,
    samples: Mapping[str, str] | None = None,
    channels: Mapping[str, str] | None = None,
    measurements: Mapping[str, str] | None = None,
    file: str = "<workspace>",
) -> dict:
    """A copy of a validated workspace with parts renamed (old name → new name), as
    ``pyhf.Workspace.rename``: channels with their observations, samples in every
    channel, modifiers with their measurement settings and the POI, measurements.

    Every old name must exist. Renaming a modifier onto another's name makes them one
    parameter (a way to correlate two workspaces' systematics); where that is not
    allowed (a normfactor onto a shapesys's name), validation says so.
    """
    modifiers, samples = dict(modifiers or {}), dict(samples or {})
    channels, measurements = dict(channels or {}), dict(measurements or {})
    _check_names(ws, file, modifiers, (), samples, channels, measurements)
    doc = copy_json(ws)
    for channel in doc["channels"]:
        channel["name"] = channels.get(channel["name"], channel["name"])
        for sample in channel["samples"]:
            sample["name"] = samples.get(sample["name"], sample["name"])
            for modifier in sample["modifiers"]:
                modifier["name"] = modifiers.get(modifier["name"], modifier["name"])
    for observation in doc["observations"]:
        observation["name"] = channels.get(observation["name"], observation["name"])
    for measurement in doc["measurements"]:
        measurement["name"] = measurements.get(measurement["name"], measurement["name"])
        config = measurement["config"]
        config["poi"] = modifiers.get(config["poi"], config["poi"])
        for setting in config["parameters"]:
            setting["name"] = modifiers.get(setting["name"], setting["name"])
    _refuse_repeats("channel", ws["channels"], doc["channels"], ["channels"], file)
    for c, channel in enumerate(doc["channels"]):
        where = ["channels", c, "samples"]
        _refuse_repeats("sample", ws["channels"][c]["samples"], channel["samples"], where, file)
    _refuse_repeats("measurement", ws["measurements"], doc["measurements"], ["measurements"], file)
    try:
        _validate(doc, file, strict=False, warn=False)
    except InvalidWorkspace as error:
        raise InvalidWorkspace(
            f"{error.problem} (after renaming)", file=file, path=error.path
        ) from None
    return doc


def _refuse_repeats(noun: str, old: list[dict], new: list[dict], where: list, file: str) -> None:
    """A rename must not give two channels (samples of a channel, measurements) one name:
    pyhf would silently keep one of them. The error names both."""
    seen: dict[str, int] = {}
    for i, item in enumerate(new):
        j = seen.setdefault(item["name"], i)
        if j != i:
            renamed = i if old[i]["name"] != item["name"] else j
            raise InvalidWorkspace(
                f"after renaming, {noun}s '{old[j]['name']}' ({json_path([*where, j])}) and "
                f"'{old[i]['name']}' ({json_path([*where, i])}) would both be "
                f"'{item['name']}'",
                file=file,
                path=[*where, renamed, "name"],
            )


def remove_modifiers(
    ws: dict,
    patterns: Collection[str],
    *,
    channels: Collection[str] | None = None,
    samples: Collection[str] | None = None,
    types: Collection[str] | None = None,
    file: str = "<workspace>",
) -> dict:
    """A copy of a validated workspace without the modifiers whose name matches one of
    the glob ``patterns`` (``*``, ``?``, ``[...]``, case-sensitive), in the channels and
    samples matching ``channels`` and ``samples`` (glob patterns too; None: all), and of
    ``types`` only (None: all). Everything else stays as it was, bit for bit, except
    the measurement settings of parameters removed from every channel.

    This is how a signal-only modifier that a conversion applied to backgrounds too
    (pyhf #2374) comes off them. Each pattern must match a modifier in the selection.
    """
    patterns = list(patterns)
    if not patterns:
        raise ValueError("give at least one modifier name pattern")
    chosen = [
        (channel, sample, modifier)
        for channel, sample, modifier in _modifiers(ws)
        if _matches(channel["name"], channels)
        and _matches(sample["name"], samples)
        and (types is None or modifier["type"] in types)
    ]
    for pattern in patterns:
        if not any(fnmatchcase(modifier["name"], pattern) for _, _, modifier in chosen):
            names = sorted({modifier["name"] for _, _, modifier in chosen})
            shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
            raise InvalidWorkspace(
                f"no modifier matching '{pattern}'{_selection(channels, samples, types)} "
                f"(there: {shown or 'none'})",
                file=file,
                path="",
            )
    targets = {id(modifier) for _, _, modifier in chosen if _matches(modifier["name"], patterns)}
    doc = _without_modifiers(ws, lambda c, s, m: id(m) not in targets, file, "remove")
    _validate(doc, file, strict=False, warn=False)
    return doc


def _matches(name: str, patterns: Collection[str] | None) -> bool:
    return patterns is None or any(fnmatchcase(name, pattern) for pattern in patterns)


def _selection(channels, samples, types) -> str:
    parts = [
        f"{noun} {', '.join(values)}"
        for noun, values in (("channels", channels), ("samples", samples), ("types", types))
        if values is not None
    ]
    return f" among {'; '.join(parts)}" if parts else ""
