"""The model-independent signal of a region: a sample of unit yield with a free normalisation.

HistFitter's construction for the model-independent upper limits of a discovery region
(its ``UpperLimitTable``): a signal sample with yield 1 in the region's single bin and
no other modifier than a normfactor, which is the POI. Its normalisation is then the
number of signal events in the region, so an upper limit on the POI is the limit on
the visible signal count S (and S / L the visible cross-section ⟨εσ⟩). The sample is
added to the background-only workspace by a JSON Patch made here, which also makes
the normfactor the POI of every measurement, with bounds ``[0, poi_upper]``.
"""

from __future__ import annotations

import math

from hfpipe.errors import InvalidSettings

__all__ = ["default_poi_upper", "unit_signal_patch"]


def default_poi_upper(observed: float) -> float:
    """An upper bound of the signal count that no 95 % CL limit of a region with
    ``observed`` events reaches: twice ``n + 5√n + 10`` (limits that need more raise
    the bound themselves, see :mod:`hfpipe.infer.limits`)."""
    return 2.0 * (observed + 5.0 * math.sqrt(observed) + 10.0)


def _modifier_names(workspace: dict) -> set[str]:
    return {m["name"] for c in workspace["channels"] for s in c["samples"] for m in s["modifiers"]}


def unit_signal_patch(
    workspace: dict,
    region: str,
    *,
    sample: str = "signal",
    poi: str = "mu_Sig",
    poi_upper: float | None = None,
) -> list[dict]:
    """The JSON Patch adding the unit-yield signal ``sample`` with normfactor ``poi`` to
    the single-bin channel ``region`` of a (validated) workspace, ``poi`` the POI of
    every measurement, bounded by ``[0, poi_upper]`` (default:
    :func:`default_poi_upper` of the region's observed count). The settings of a
    measurement's former POI are dropped where no modifier has its name (a
    background-only workspace whose POI came with the signal patches).

    Raises :class:`~hfpipe.errors.InvalidSettings` for an unknown or multi-bin region,
    or a sample or parameter name that the workspace already uses.
    """
    channels = [c["name"] for c in workspace["channels"]]
    if region not in channels:
        raise InvalidSettings(
            f"no channel {region!r} in the workspace (it has: {', '.join(channels)})"
        )
    index = channels.index(region)
    channel = workspace["channels"][index]
    bins = len(channel["samples"][0]["data"])
    if bins != 1:
        raise InvalidSettings(
            f"region {region!r} has {bins} bins: model-independent limits need a single-bin region"
        )
    if sample in {s["name"] for s in channel["samples"]}:
        raise InvalidSettings(
            f"region {region!r} already has a sample {sample!r}; name the signal otherwise"
        )
    modifiers = _modifier_names(workspace)
    if poi in modifiers:
        raise InvalidSettings(
            f"the workspace already has a parameter {poi!r}; name the POI otherwise"
        )
    if poi_upper is None:
        observed = next(o["data"][0] for o in workspace["observations"] if o["name"] == region)
        poi_upper = default_poi_upper(float(observed))
    signal = {
        "name": sample,
        "data": [1.0],
        "modifiers": [{"name": poi, "type": "normfactor", "data": None}],
    }
    operations = [{"op": "add", "path": f"/channels/{index}/samples/-", "value": signal}]
    setting = {"name": poi, "bounds": [[0.0, float(poi_upper)]], "inits": [1.0]}
    for m, measurement in enumerate(workspace["measurements"]):
        config = measurement["config"]
        kept = [
            p
            for p in config.get("parameters", [])
            if p["name"] != config["poi"] or p["name"] in modifiers
        ]
        at = f"/measurements/{m}/config"
        operations += [
            {"op": "replace", "path": f"{at}/poi", "value": poi},
            {"op": "add", "path": f"{at}/parameters", "value": [*kept, setting]},
        ]
    return operations
