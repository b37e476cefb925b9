"""Reducing a workspace before building it: drop what cannot change the result.

Published likelihoods carry thousands of systematics too small to matter (ATLAS 1Lbb:
4,335 of its 5,464 histosys and 713 of its 3,897 normsys move no bin by 0.1 %), and each
costs the fit a parameter or an interpolation. :func:`prune_by_size` removes them
(pyhf #662) and says what it removed; :func:`prune_by_impact` removes the parameters
whose post-fit impact on the POI is negligible (cabinetry #311).

What "effect" means, per modifier type (each modifier of each sample on its own):

- normsys: ``max(|hi - 1|, |lo - 1|)``;
- histosys: the largest ``|variation - nominal| / |nominal|`` over bins and both
  variations (a bin with nominal 0 counts as infinite unless its variation is 0 too);
- staterror, bin by bin: pyhf's relative width ``sqrt(sum δ²) / sum(nominal)`` over the
  samples carrying it in that bin;
- shapesys, bin by bin: ``δ / nominal`` of its sample.

A modifier whose effect is below the threshold goes; a staterror or shapesys bin below
it gets δ = 0 in every sample, which is how pyhf says "no uncertainty here" (it holds the
bin's γ at 1), and the modifier goes once all its bins have. Measurement settings of
parameters that vanish go too. Signal patches are not touched: a signal sample's own
staterror in a pruned bin brings that bin's γ back with the signal's width alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hfpipe.errors import InputError, InvalidWorkspace

from .io import copy_json
from .modifiers import INTERPOLATED_TYPES, UNCONSTRAINED_TYPES
from .surgery import drop_settings, modifier_parameters
from .workspace import _validate

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SIZE_TYPES", "PruneReport", "Removal", "prune_by_impact", "prune_by_size"]

#: the modifier types :func:`prune_by_size` looks at
SIZE_TYPES = ("normsys", "histosys", "staterror", "shapesys")
_COMPONENT = re.compile(r"^(.*)\[(\d+)\]$")


@dataclass(frozen=True)
class Removal:
    """One pruned modifier of one channel, or some of its bins.

    ``samples``: the samples it was removed from (all that carry a staterror in that
    channel); ``bins``: the channel's bins whose uncertainty was zeroed (staterror,
    shapesys), empty when the whole modifier went; ``effect``: the largest effect among
    what was removed (for impact pruning, the parameter's largest post-fit impact).
    """

    channel: str
    samples: tuple[str, ...]
    modifier: str
    type: str
    effect: float
    bins: tuple[int, ...] = ()


@dataclass(frozen=True)
class PruneReport:
    """What a pruning removed: the modifiers and bins, and the parameters now gone."""

    removals: tuple[Removal, ...]
    parameters: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        """Modifiers removed whole, by type, and ``"<type> bins"``: the bins zeroed."""
        counts: dict[str, int] = {}
        for removal in self.removals:
            key = f"{removal.type} bins" if removal.bins else removal.type
            counts[key] = counts.get(key, 0) + (len(removal.bins) or len(removal.samples))
        return dict(sorted(counts.items()))

    def summary(self) -> str:
        """One line: the counts, and how many parameters left the model."""
        counts = ", ".join(f"{count} {key}" for key, count in self.counts().items())
        gone = len(self.parameters)
        return f"removed {counts or 'nothing'}; {gone} parameter{'s' * (gone != 1)} gone"

    def records(self) -> list[dict]:
        """The removals as plain dicts (JSON-ready), one per modifier and channel."""
        return [
            {**removal.__dict__, "samples": list(removal.samples), "bins": list(removal.bins)}
            for removal in self.removals
        ]


def prune_by_size(
    ws: dict,
    threshold: float = 1e-3,
    *,
    stat_threshold: float | None = None,
    types: Collection[str] = SIZE_TYPES,
    file: str = "<workspace>",
) -> tuple[dict, PruneReport]:
    """Remove the modifiers (of ``types``) whose effect is below ``threshold`` everywhere,
    and the staterror/shapesys bins whose relative width is below ``stat_threshold``
    (default: ``threshold``); see the module's docstring for the definitions.

    Returns the pruned copy of the validated workspace ``ws`` (validated) and the report
    of what went. ``ws`` itself is left alone.
    """
    if threshold < 0 or (stat_threshold is not None and stat_threshold < 0):
        raise ValueError("thresholds must be non-negative")
    unknown = set(types) - set(SIZE_TYPES)
    if unknown:
        raise ValueError(f"prune_by_size looks at {', '.join(SIZE_TYPES)}; not {unknown}")
    stat = threshold if stat_threshold is None else stat_threshold
    doc = copy_json(ws)
    removals: list[Removal] = []
    for channel in doc["channels"]:
        for sample in channel["samples"]:
            removals += _prune_sample(channel["name"], sample, threshold, stat, types)
        if "staterror" in types:
            removals += _prune_staterrors(channel, stat)
    if "staterror" in types:
        removals = _drop_empty_staterrors(doc, removals)
    return _finish(ws, doc, removals, file)


def _prune_sample(channel: str, sample: dict, threshold: float, stat: float, types) -> list:
    """Prune one sample's normsys, histosys and shapesys modifiers in place."""
    removals, kept = [], []
    for modifier in sample["modifiers"]:
        kind = modifier["type"]
        whole = (sample["name"],)
        if kind in INTERPOLATED_TYPES and kind in types:
            effect = _effect(modifier, sample["data"])
            if effect < threshold:
                removals.append(Removal(channel, whole, modifier["name"], kind, effect))
                continue
        elif kind == "shapesys" and kind in types:
            widths = [_ratio(d, n) for d, n in zip(modifier["data"], sample["data"], strict=True)]
            small = [b for b, w in enumerate(widths) if 0 < w < stat]
            if small and all(w < stat for w in widths):
                effect = max(widths)
                removals.append(Removal(channel, whole, modifier["name"], kind, effect))
                continue
            if small:
                effect = max(widths[b] for b in small)
                removals.append(
                    Removal(channel, whole, modifier["name"], kind, effect, tuple(small))
                )
                modifier["data"] = [
                    0.0 if b in small else d for b, d in enumerate(modifier["data"])
                ]
        kept.append(modifier)
    sample["modifiers"] = kept
    return removals


def _effect(modifier: dict, nominal: list) -> float:
    """The largest relative change a normsys or histosys makes to any bin."""
    data = modifier["data"]
    if modifier["type"] == "normsys":
        return max(abs(data["hi"] - 1.0), abs(data["lo"] - 1.0))
    return max(
        _ratio(abs(variation - nom), nom)
        for key in ("hi_data", "lo_data")
        for variation, nom in zip(data[key], nominal, strict=True)
    )


def _ratio(change: float, nominal: float) -> float:
    """|change| / |nominal|, with 0 / 0 = 0 and x / 0 = inf."""
    if nominal == 0:
        return 0.0 if change == 0 else math.inf
    return abs(change) / abs(nominal)


def _prune_staterrors(channel: dict, stat: float) -> list:
    """Zero, in place, the staterror bins of a channel whose combined relative width
    (pyhf's sqrt(sum δ²)/sum(nominal)) is below ``stat``."""
    carriers: dict[str, list[tuple[dict, dict]]] = {}
    for sample in channel["samples"]:
        for modifier in sample["modifiers"]:
            if modifier["type"] == "staterror":
                carriers.setdefault(modifier["name"], []).append((sample, modifier))
    removals = []
    for name, pairs in carriers.items():
        widths = [_combined_width(pairs, b) for b in range(len(pairs[0][1]["data"]))]
        small = tuple(b for b, width in enumerate(widths) if 0 < width < stat)
        if not small:
            continue
        for _, modifier in pairs:
            modifier["data"] = [0.0 if b in small else d for b, d in enumerate(modifier["data"])]
        samples = tuple(sample["name"] for sample, _ in pairs)
        effect = max(widths[b] for b in small)
        removals.append(Removal(channel["name"], samples, name, "staterror", effect, small))
    return removals


def _combined_width(pairs: list[tuple[dict, dict]], b: int) -> float:
    """pyhf's relative staterror width of bin ``b``: 0 where the nominal sum is not > 0."""
    nominal = sum(sample["data"][b] for sample, _ in pairs)
    if nominal <= 0:
        return 0.0
    return math.sqrt(sum(modifier["data"][b] ** 2 for _, modifier in pairs)) / nominal


def _drop_empty_staterrors(doc: dict, removals: list[Removal]) -> list[Removal]:
    """Remove, in place, staterrors whose every entry (in every channel) is 0: their
    parameters do nothing. Returns ``removals`` with these reported as removed whole in
    each channel they were in (replacing the report of their zeroed bins there)."""
    entries: dict[str, list[float]] = {}
    for channel in doc["channels"]:
        for sample in channel["samples"]:
            for modifier in sample["modifiers"]:
                if modifier["type"] == "staterror":
                    entries.setdefault(modifier["name"], []).extend(modifier["data"])
    empty = {name for name, values in entries.items() if not any(values)}
    zeroed = {(r.channel, r.modifier): r for r in removals if r.type == "staterror"}
    whole = []
    for channel in doc["channels"]:
        samples: dict[str, list[str]] = {}
        for sample in channel["samples"]:
            for modifier in sample["modifiers"]:
                if modifier["type"] == "staterror" and modifier["name"] in empty:
                    samples.setdefault(modifier["name"], []).append(sample["name"])
            sample["modifiers"] = [
                m
                for m in sample["modifiers"]
                if not (m["type"] == "staterror" and m["name"] in empty)
            ]
        for name, names in samples.items():
            bins = zeroed.pop((channel["name"], name), None)
            effect = 0.0 if bins is None else bins.effect
            whole.append(Removal(channel["name"], tuple(names), name, "staterror", effect))
    return [r for r in removals if r.type != "staterror" or r in zeroed.values()] + whole


def _finish(ws: dict, doc: dict, removals: list[Removal], file: str) -> tuple[dict, PruneReport]:
    """Drop the settings of vanished parameters, validate, and report."""
    gone = modifier_parameters(ws) - modifier_parameters(doc)
    drop_settings(doc, gone)
    try:
        _validate(doc, file, strict=False, warn=False)
    except InvalidWorkspace as error:
        raise InvalidWorkspace(
            f"{error.problem} (after pruning)", file=file, path=error.path
        ) from None
    return doc, PruneReport(tuple(removals), tuple(sorted(gone)))


def prune_by_impact(
    ws: dict,
    ranking: pd.DataFrame,
    poi_uncertainty: float,
    fraction: float,
    *,
    file: str = "<workspace>",
    ranking_name: str = "<ranking>",
) -> tuple[dict, PruneReport]:
    """Remove every modifier of the parameters whose largest post-fit impact on the POI,
    ``max |postfit_up|, |postfit_down|`` (over its components ``name[i]`` for per-bin
    parameters), is below ``fraction × poi_uncertainty``.

    ``ranking`` has a row per parameter (or component) with the columns ``parameter``,
    ``prefit_up``, ``prefit_down``, ``postfit_up``, ``postfit_down``: impacts Δμ̂ (μ̂ with
    the parameter held at its shifted value, minus μ̂). Free parameters (normfactor,
    shapefactor) and the POI are never removed; nor are parameters whose impact is NaN
    (a failed fit) or that the ranking does not list in full (every component of a
    per-bin one). A parameter the workspace lacks is an
    :class:`~hfpipe.errors.InputError` naming the row. Returns the pruned copy
    (validated) and the report; each removal's ``effect`` is the parameter's impact.
    """
    missing = {"parameter", "postfit_up", "postfit_down"} - set(ranking.columns)
    if missing:
        raise InputError(f"missing columns {', '.join(sorted(missing))}", file=ranking_name)
    if not poi_uncertainty > 0 or not fraction >= 0:
        raise ValueError("poi_uncertainty must be positive and fraction non-negative")
    cut = fraction * poi_uncertainty
    parameters = _parameters(ws)
    pois = {m["config"]["poi"] for m in ws["measurements"]}
    impacts: dict[str, dict[int | None, float]] = {}
    for row, (name, up, down) in enumerate(
        zip(ranking["parameter"], ranking["postfit_up"], ranking["postfit_down"], strict=True)
    ):
        base, component = _split_component(str(name), parameters)
        if base not in parameters:
            raise InputError(
                f"parameter '{name}' is not in the workspace",
                file=ranking_name,
                path=f"rows[{row}]",
            )
        impacts.setdefault(base, {})[component] = max(abs(float(up)), abs(float(down)))
    doomed = {
        name: max(values.values())
        for name, values in impacts.items()
        if name not in pois and _negligible(values, parameters[name], cut)
    }
    doc = copy_json(ws)
    removals = []
    for channel in doc["channels"]:
        for sample in channel["samples"]:
            removals += [
                Removal(channel["name"], (sample["name"],), m["name"], m["type"], doomed[m["name"]])
                for m in sample["modifiers"]
                if m["name"] in doomed
            ]
            sample["modifiers"] = [m for m in sample["modifiers"] if m["name"] not in doomed]
    return _finish(ws, doc, removals, file)


@dataclass
class _Parameter:
    """A parameter's modifier types and number of components."""

    types: set[str]
    size: int


def _parameters(ws: dict) -> dict[str, _Parameter]:
    """Every parameter of the model: a staterror has a component per bin of each
    channel it is in, a shapesys or shapefactor one per bin, the others one."""
    parameters: dict[str, _Parameter] = {}
    staterror_bins: dict[str, dict[str, int]] = {}
    for channel in ws["channels"]:
        nbins = len(channel["samples"][0]["data"])
        for sample in channel["samples"]:
            for modifier in sample["modifiers"]:
                kind = modifier["type"]
                size = nbins if kind in ("shapesys", "shapefactor") else 1
                parameters.setdefault(modifier["name"], _Parameter(set(), size)).types.add(kind)
                if kind == "staterror":
                    staterror_bins.setdefault(modifier["name"], {})[channel["name"]] = nbins
    for name, bins in staterror_bins.items():
        parameters[name].size = sum(bins.values())
    return parameters


def _split_component(name: str, parameters: dict[str, _Parameter]) -> tuple[str, int | None]:
    """``("staterror_SR", 2)`` for ``staterror_SR[2]``; ``(name, None)`` for a parameter
    named as a whole."""
    match = _COMPONENT.match(name)
    if match is None or name in parameters:
        return name, None
    return match[1], int(match[2])


def _negligible(impacts: dict[int | None, float], parameter: _Parameter, cut: float) -> bool:
    """Whether a constrained parameter listed in full has every impact below ``cut``."""
    listed = None in impacts or set(impacts) >= set(range(parameter.size))
    values = list(impacts.values())
    return (
        listed
        and not parameter.types & UNCONSTRAINED_TYPES
        and not any(map(math.isnan, values))
        and max(values) < cut
    )
