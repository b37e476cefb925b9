"""Measurement checks (POI, parameter settings) and the choice of a measurement.

A background-only workspace usually names a POI (and sets it up) that only its signal
patches add to the model, and published workspaces carry settings for parameters that
exist nowhere (ATLAS 3L-eRJR sets ``mu_BG``); pyhf ignores both. So by default a POI
outside the model is accepted and settings of unknown parameters only warn
(:class:`SpecWarning`); ``strict=True`` makes both errors. :func:`measurement_config`,
which picks the measurement a model is built from, always requires the POI.
"""

from __future__ import annotations

import copy
import warnings
from typing import NoReturn

from hfpipe.errors import InvalidWorkspace, json_path

from .rules import PER_BIN_TYPES, ModelInfo, Parameter, check_model

__all__ = ["SpecWarning", "check_measurements", "measurement_config"]

_SETTINGS = ("inits", "bounds", "auxdata", "sigmas", "factors")
#: which settings each modifier type's parameter takes (pyhf rejects the others)
_ALLOWED = {
    "normfactor": {"inits", "bounds"},
    "shapefactor": {"inits", "bounds"},
    "normsys": {"inits", "bounds", "auxdata"},
    "histosys": {"inits", "bounds", "auxdata"},
    "lumi": {"inits", "bounds", "auxdata", "sigmas"},
    "staterror": {"inits", "bounds", "auxdata", "sigmas"},
    "shapesys": {"inits", "bounds", "auxdata", "factors"},
}
#: pyhf's default bounds per modifier type (lumi has none: the measurement must set it up)
_DEFAULT_BOUNDS = {
    "normfactor": (0.0, 10.0),
    "shapefactor": (0.0, 10.0),
    "normsys": (-5.0, 5.0),
    "histosys": (-5.0, 5.0),
    "shapesys": (1e-10, 10.0),
    "staterror": (1e-10, 10.0),
}
#: what pyhf needs the measurement to give for lumi (it fails to build the model otherwise)
_LUMI_NEEDS = ("auxdata", "sigmas", "inits")


class SpecWarning(UserWarning):
    """Something pyhf accepts and hfpipe ignores, but which is probably a mistake."""


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _check_setting(setting: dict, param: Parameter | None, file: str, at: list) -> None:
    """One entry of ``config.parameters``: allowed keys, lengths, bounds, inits, sigmas."""
    name = setting["name"]
    if param is not None:
        kind = sorted(param.types)[0]
        for key in _SETTINGS:
            if key in setting and key not in _ALLOWED[kind]:
                _fail(f"{param.kind} parameter '{name}' takes no {key}", file, [*at, key])
        unit = "bin" if kind in PER_BIN_TYPES else "parameter"
        for key in _SETTINGS:
            if key in setting and len(setting[key]) != param.size:
                _fail(
                    f"needs {_entries(param.size)} (one per {unit} of {param.kind} '{name}'), "
                    f"got {len(setting[key])}",
                    file,
                    [*at, key],
                )
    else:
        inits, bounds = setting.get("inits"), setting.get("bounds")
        if inits and bounds and len(inits) != len(bounds):
            _fail(
                f"{_entries(len(inits))} in inits but {_entries(len(bounds))} in bounds",
                file,
                [*at, "bounds"],
            )
    for b, (low, high) in enumerate(setting.get("bounds", ())):
        if not low < high:
            _fail(f"lower bound {low} is not below upper bound {high}", file, [*at, "bounds", b])
    for s, sigma in enumerate(setting.get("sigmas", ())):
        if sigma <= 0:
            _fail(f"sigma must be positive, got {sigma}", file, [*at, "sigmas", s])
    bounds = setting.get("bounds")
    origin = ""
    if bounds is None and param is not None:
        default = _DEFAULT_BOUNDS.get(sorted(param.types)[0])
        bounds = None if default is None else [default] * param.size
        origin = f" (pyhf's default for {param.kind})"
    for i, init in enumerate(setting.get("inits", ())):
        if bounds is not None and not bounds[i][0] <= init <= bounds[i][1]:
            low, high = bounds[i]
            _fail(
                f"initial value {init} is outside the bounds [{low}, {high}]{origin}",
                file,
                [*at, "inits", i],
            )


def _fail(problem: str, file: str, path: list) -> NoReturn:
    raise InvalidWorkspace(problem, file=file, path=path)


def _poi_problem(poi: str, model: ModelInfo) -> str | None:
    """Why ``poi`` cannot be the parameter of interest, or None when it can."""
    param = model.parameters.get(poi)
    if param is None:
        free = [p.name for p in model.parameters.values() if p.types & {"normfactor"}]
        hint = f" (normfactors: {', '.join(free[:8])})" if free else ""
        return f"POI '{poi}' is not a parameter of the model{hint}"
    if param.size != 1:
        return (
            f"POI '{poi}' is a {param.kind} with {param.size} components; "
            "the POI must be a single parameter"
        )
    return None


def check_measurements(
    ws: dict, model: ModelInfo, file: str, *, strict: bool = False, warn: bool = True
) -> None:
    """Unique measurement names; per measurement a valid POI and valid parameter settings.

    Settings: one per parameter name; only the keys the parameter's type takes; arrays of
    the parameter's size (one entry per bin for shapesys/staterror/shapefactor); bounds
    ``[low, high]`` with low < high; inits within the (given or default) bounds; positive
    sigmas; a lumi modifier needs lumi's auxdata, sigmas and inits.
    """
    seen: dict[str, int] = {}
    for i, measurement in enumerate(ws["measurements"]):
        here = ["measurements", i]
        mname, config = measurement["name"], measurement["config"]
        if mname in seen:
            _fail(
                f"duplicate measurement name '{mname}' (first: measurements[{seen[mname]}])",
                file,
                [*here, "name"],
            )
        seen[mname] = i
        poi = config["poi"]
        problem = _poi_problem(poi, model)
        if problem and (strict or poi in model.parameters):
            _fail(problem, file, [*here, "config", "poi"])
        names: dict[str, int] = {}
        for j, setting in enumerate(config["parameters"]):
            at = [*here, "config", "parameters", j]
            name = setting["name"]
            if name in names:
                _fail(
                    f"second setting for parameter '{name}' (first: parameters[{names[name]}])",
                    file,
                    [*at, "name"],
                )
            names[name] = j
            param = model.parameters.get(name)
            if param is None and name != poi:
                message = f"no modifier named '{name}' in the model"
                if strict:
                    _fail(message, file, [*at, "name"])
                if warn:
                    # in a background-only workspace the signal patch may add it
                    fate = "unless a patch adds it" if problem else "setting ignored"
                    warnings.warn(
                        f"{file}: {json_path([*at, 'name'])}: {message}; {fate}",
                        SpecWarning,
                        stacklevel=4,
                    )
            _check_setting(setting, param, file, at)
        lumi = model.parameters.get("lumi")
        if lumi is not None and "lumi" in lumi.types:
            where = names.get("lumi")
            given = {} if where is None else config["parameters"][where]
            missing = [key for key in _LUMI_NEEDS if key not in given]
            if missing:
                _fail(
                    f"the model has a lumi modifier, so measurement '{mname}' must set lumi's "
                    f"{', '.join(_LUMI_NEEDS)} (missing: {', '.join(missing)})",
                    file,
                    [*here, "config", "parameters"] + ([] if where is None else [where]),
                )


def find_measurement(ws: dict, name: str | None = None, *, file: str = "<workspace>") -> dict:
    """The named measurement object (``{"name", "config"}``), or the first one (pyhf's
    default too); a one-line error names the known ones. Checks nothing else."""
    measurements = ws.get("measurements") or []
    if not measurements:
        _fail("the workspace defines no measurement", file, ["measurements"])
    known = [m["name"] for m in measurements]
    if name is not None and name not in known:
        _fail(f"no measurement named '{name}'; known: {', '.join(known)}", file, ["measurements"])
    return measurements[0 if name is None else known.index(name)]


def measurement_config(ws: dict, name: str | None = None, *, file: str = "<workspace>") -> dict:
    """The config (``poi``, ``parameters``) of the named measurement, or of the first one.

    The first is pyhf's default too. ``ws`` must be a validated workspace. The POI must be
    a single-component parameter of the model: a background-only workspace fails here
    until its signal patch is applied. Returns a copy.
    """
    measurement = find_measurement(ws, name, file=file)
    index = ws["measurements"].index(measurement)
    config = measurement["config"]
    model = check_model(ws, file)
    problem = _poi_problem(config["poi"], model)
    if problem:
        if config["poi"] not in model.parameters:
            problem += "; is this a background-only workspace? apply a signal patch first"
        _fail(problem, file, ["measurements", index, "config", "poi"])
    return copy.deepcopy(config)
