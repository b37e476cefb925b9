"""Measurement checks (POI, parameter settings) and the choice of a measurement.

A background-only workspace usually names a POI (and sets it up) that only its signal
patches add to the model, and published workspaces carry settings for parameters that
exist nowhere (ATLAS 3L-eRJR sets ``mu_BG``); pyhf ignores both. So by default a POI
outside the model is accepted and settings of unknown parameters only warn
(:class:`SpecWarning`); ``strict=True`` makes both errors. :func:`measurement_config`,
which picks the measurement a model is built from, always requires the POI.

pyhf checks only the measurement it builds a model from (by default the first; by name,
the first of that name): a problem in another measurement, a second measurement of a
name, and a setting of an unknown parameter (whose content pyhf never reads) are
accepted with a :class:`SpecWarning`, and a measurement with a problem fails when it is
picked (:func:`find_measurement`). A bound of more than two numbers is read as its first
two, as pyhf's fit reads it (with a warning); equal bounds hold a parameter at that
value, as pyhf's fit does (not the POI's: pyhf cannot fit that). A lumi without sigmas
gets pyhf's width of 1 (with a warning).
"""

from __future__ import annotations

import copy
import warnings
from typing import NoReturn

from hfpipe.errors import InvalidWorkspace, json_path

from .leniency import SpecWarning, warn_input
from .modifiers import MODIFIERS, PER_BIN_TYPES
from .rules import ModelInfo, Parameter, check_model
from .schema import describe

__all__ = ["SpecWarning", "check_measurement", "check_measurements", "measurement_config"]

_SETTINGS = ("inits", "bounds", "auxdata", "sigmas", "factors")
#: what pyhf needs the measurement to give for lumi (it fails to build the model otherwise;
#: without sigmas it gives the constraint a width of 1)
_LUMI_NEEDS = ("auxdata", "inits", "bounds")


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _check_setting(
    setting: dict, param: Parameter, file: str, at: list, *, is_poi: bool, warn: bool
) -> None:
    """One entry of ``config.parameters`` for a parameter of the model: allowed keys,
    lengths, bounds, inits, sigmas."""
    name = setting["name"]
    kind = sorted(param.types)[0]
    for key in _SETTINGS:
        if key in setting and key not in MODIFIERS[kind].settings:
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
    for b, bound in enumerate(setting.get("bounds", ())):
        _check_bound(bound, file, [*at, "bounds", b], is_poi=is_poi, warn=warn)
    for s, sigma in enumerate(setting.get("sigmas", ())):
        if sigma <= 0:
            _fail(f"sigma must be positive, got {sigma}", file, [*at, "sigmas", s])
    bounds = setting.get("bounds")
    origin = ""
    if bounds is None:
        default = MODIFIERS[kind].bounds
        bounds = None if default is None else [default] * param.size
        origin = f" (pyhf's default for {param.kind})"
    for i, init in enumerate(setting.get("inits", ())):
        if bounds is not None and not bounds[i][0] <= init <= bounds[i][1]:
            low, high = bounds[i][:2]
            _fail(
                f"initial value {init} is outside the bounds [{low}, {high}]{origin}",
                file,
                [*at, "inits", i],
            )


def _check_bound(bound: list, file: str, at: list, *, is_poi: bool, warn: bool) -> None:
    """A bound is ``[low, high]`` with low <= high (low < high for the POI, which pyhf
    cannot fit otherwise); numbers after the first two are ignored, as pyhf's fit
    ignores them, with a warning."""
    if len(bound) < 2:
        _fail(f"each bound must be a [low, high] pair of numbers, got {describe(bound)}", file, at)
    if len(bound) > 2 and warn:
        warn_input(
            file,
            at,
            f"a bound of {len(bound)} numbers; pyhf's fit reads the first two as [low, high] "
            "and ignores the rest, and so does hfpipe",
        )
    low, high = bound[:2]
    if low > high or (is_poi and low == high):
        _fail(f"lower bound {low} is not below upper bound {high}", file, at)


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
    """Measurement names, and per measurement a valid POI and valid parameter settings.

    The first measurement must be valid; a problem in another one is an error with
    ``strict`` and otherwise a warning (pyhf checks only the measurement it uses; picking
    that one fails, see :func:`find_measurement`). A second measurement of a name is
    never picked: a warning (an error with ``strict``). Settings: one per parameter
    name; only the keys the parameter's type takes; arrays of the parameter's size (one
    entry per bin for shapesys/staterror/shapefactor); bounds ``[low, high]`` with low <=
    high; inits within the (given or default) bounds; positive sigmas; a lumi modifier
    needs lumi's auxdata, inits and bounds (and warns without sigmas). Settings of
    parameters the model lacks are not checked (pyhf ignores them): they warn, or fail
    with ``strict``.
    """
    seen: dict[str, int] = {}
    for i, measurement in enumerate(ws["measurements"]):
        here = ["measurements", i]
        mname = measurement["name"]
        if warn and mname == "":
            warn_input(file, [*here, "name"], "empty measurement name (pyhf accepts it)")
        if mname in seen:
            message = (
                f"a second measurement named '{mname}' (first: measurements[{seen[mname]}]) "
                "is never used: pyhf and hfpipe pick the first of a name"
            )
            if strict:
                _fail(message, file, [*here, "name"])
            if warn:
                warn_input(file, [*here, "name"], message)
            continue
        seen[mname] = i
        if i == 0 or strict:
            check_measurement(ws, i, model, file, strict=strict, warn=warn)
            continue
        try:
            check_measurement(ws, i, model, file, strict=False, warn=warn)
        except InvalidWorkspace as error:
            if warn:
                warnings.warn(
                    f"{error}; measurement '{mname}' cannot be used (pyhf checks only the "
                    "measurement it builds a model from)",
                    SpecWarning,
                    stacklevel=4,
                )


def check_measurement(
    ws: dict, index: int, model: ModelInfo, file: str, *, strict: bool, warn: bool
) -> None:
    """One measurement (``ws["measurements"][index]``): see :func:`check_measurements`."""
    here = ["measurements", index]
    measurement = ws["measurements"][index]
    mname, config = measurement["name"], measurement["config"]
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
        if param is None:
            _unknown_setting(name, poi, problem, file, at, strict=strict, warn=warn)
            continue
        _check_setting(setting, param, file, at, is_poi=name == poi, warn=warn)
    lumi = model.parameters.get("lumi")
    if lumi is not None and "lumi" in lumi.types:
        _check_lumi(config["parameters"], names.get("lumi"), mname, file, here, warn=warn)


def _check_lumi(
    settings: list, where: int | None, mname: str, file: str, here: list, *, warn: bool
) -> None:
    """A lumi modifier needs lumi's auxdata, inits and bounds from the measurement; without
    sigmas pyhf gives its constraint a width of 1 (a warning: probably a mistake)."""
    given = {} if where is None else settings[where]
    at = [*here, "config", "parameters"] + ([] if where is None else [where])
    missing = [key for key in _LUMI_NEEDS if key not in given]
    if missing:
        _fail(
            f"the model has a lumi modifier, so measurement '{mname}' must set lumi's "
            f"{', '.join(_LUMI_NEEDS)} (missing: {', '.join(missing)})",
            file,
            at,
        )
    if "sigmas" not in given and warn:
        warn_input(
            file,
            at,
            "lumi has no sigmas: pyhf gives its constraint a width of 1 (a 100% "
            "uncertainty), and so does hfpipe",
        )


def _unknown_setting(
    name: str, poi: str, problem: str | None, file: str, at: list, *, strict: bool, warn: bool
) -> None:
    """A setting of a parameter the model lacks: pyhf ignores it (a signal patch may add
    the parameter to a background-only workspace, whose POI is missing too)."""
    if name == poi:
        return
    message = (
        f"no modifier named '{name}' in the model"
        if name
        else "a setting with an empty name, which no modifier has"
    )
    if strict:
        _fail(message, file, [*at, "name"])
    if warn:
        fate = "unless a patch adds it" if problem else "setting ignored"
        warnings.warn(
            f"{file}: {json_path([*at, 'name'])}: {message}; {fate}", SpecWarning, stacklevel=5
        )


def find_measurement(ws: dict, name: str | None = None, *, file: str = "<workspace>") -> dict:
    """The named measurement object (``{"name", "config"}``; the first of that name), or
    the first one (pyhf's default too); a one-line error names the known ones. A
    measurement other than the first is checked here (:func:`check_measurement`): a
    validated workspace may carry a broken one that is never used."""
    measurements = ws.get("measurements") or []
    if not measurements:
        _fail("the workspace defines no measurement", file, ["measurements"])
    known = [m["name"] for m in measurements]
    if name is not None and name not in known:
        _fail(f"no measurement named '{name}'; known: {', '.join(known)}", file, ["measurements"])
    index = 0 if name is None else known.index(name)
    if index:  # load_workspace only warned about problems in the other measurements
        check_measurement(
            ws, index, check_model(ws, file, warn=False), file, strict=False, warn=False
        )
    return measurements[index]


def measurement_config(ws: dict, name: str | None = None, *, file: str = "<workspace>") -> dict:
    """The config (``poi``, ``parameters``) of the named measurement, or of the first one.

    The first is pyhf's default too. ``ws`` must be a validated workspace. The POI must be
    a single-component parameter of the model: a background-only workspace fails here
    until its signal patch is applied. Returns a copy.
    """
    measurement = find_measurement(ws, name, file=file)
    index = ws["measurements"].index(measurement)
    config = measurement["config"]
    model = check_model(ws, file, warn=False)
    problem = _poi_problem(config["poi"], model)
    if problem:
        if config["poi"] not in model.parameters:
            problem += "; is this a background-only workspace? apply a signal patch first"
        _fail(problem, file, ["measurements", index, "config", "poi"])
    return copy.deepcopy(config)
