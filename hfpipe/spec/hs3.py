"""Conversion between pyhf JSON workspaces and HS3 v0.2 ``histfactory_dist`` likelihoods.

HS3 (HEP Statistics Serialization Standard) describes a HistFactory channel as one
``histfactory_dist`` distribution: samples with ``data: {contents, errors}`` and
modifiers that name their parameters explicitly. The mapping used here:

=============  ===============================================================
pyhf            HS3
=============  ===============================================================
channel         ``histfactory_dist`` ``model_<channel>``, axis ``obs_x_<channel>``
observation     ``binned`` data ``obsData_<channel>``, listed by the likelihood
normfactor      ``{"type": "normfactor", "parameter": name}``
normsys         ``{"type": "normsys", "parameter", "constraint": "Gauss", "data": {"hi", "lo"}}``
histosys        ``{"type": "histosys", "parameter", "constraint": "Gauss",
                "data": {"hi": {"contents"}, "lo": {"contents"}}}``
shapesys        ``{"type": "shapesys", "parameters": [...], "constraint": "Poisson",
                "data": {"vals"}}`` (absolute uncertainties, as pyhf)
staterror       ``{"type": "staterror", "parameters": [...], "constraint": "Gauss"}``;
                the per-bin uncertainties are the sample's ``data.errors``
shapefactor     ``{"type": "shapefactor", "parameters": [...]}``
lumi            a ``normfactor`` on the lumi parameter plus a ``gaussian_dist``
                (x = the parameter, mean = auxdata, sigma) in the likelihood's
                ``aux_distributions``
measurement     an ``analyses`` entry (POI, ``domains`` with the bounds, ``init``
                naming a ``parameter_points`` set with inits and ``const`` = fixed)
=============  ===============================================================

A pyhf modifier name that spans several bins becomes one HS3 parameter per bin,
``<name>_bin_<i>``; reading groups them back by the modifier's name. Reading also
accepts files written by ROOT (which names the distributions ``model_<channel>``, may
add a constant ``Lumi`` normfactor and writes both an Asimov and an observed analysis).

Not supported (reading fails with one line naming the JSON path): distributions other
than ``histfactory_dist`` (and ``gaussian_dist`` as a lumi constraint), ``functions``,
modifiers with a ``constraint_name`` or another constraint type than pyhf's (Gauss for
normsys/histosys/staterror, Poisson for shapesys), unknown modifier types or keys,
binned data with a different binning than its distribution, and aux distributions other
than a Gaussian on a normfactor parameter. Writing fails on measurement settings HS3 has
no place for here (``auxdata``/``sigmas``/``factors`` of parameters other than lumi).
"""

from __future__ import annotations

from typing import Any, NoReturn

from hfpipe.errors import InputError

from .leniency import kept_workspace
from .modifiers import PER_BIN_TYPES

__all__ = ["HS3_VERSION", "from_hs3", "to_hs3"]

HS3_VERSION = "0.2"
_DIST_PREFIX = "model_"
_DATA_PREFIX = "obsData_"
_MODIFIER_KEYS = {"type", "name", "parameter", "parameters", "constraint", "data"}
_CONSTRAINTS = {
    "normsys": "Gauss",
    "histosys": "Gauss",
    "staterror": "Gauss",
    "shapesys": "Poisson",
}


def _fail(problem: str, file: str | None, path) -> NoReturn:
    raise InputError(problem, file=file, path=path)


def _bin_names(name: str, nbins: int) -> list[str]:
    return [f"{name}_bin_{i}" for i in range(nbins)]


# ---------------------------------------------------------------- pyhf → HS3


def _hs3_modifier(modifier: dict, nbins: int) -> dict:
    kind, name, data = modifier["type"], modifier["name"], modifier.get("data")
    out: dict[str, Any] = {"type": kind, "name": name}
    if kind in ("normfactor", "lumi"):
        return {"type": "normfactor", "name": name, "parameter": name}
    if kind in PER_BIN_TYPES:
        out["parameters"] = _bin_names(name, nbins)
    else:
        out["parameter"] = name
    if kind in _CONSTRAINTS:
        out["constraint"] = _CONSTRAINTS[kind]
    if kind == "normsys":
        out["data"] = {"hi": data["hi"], "lo": data["lo"]}
    elif kind == "histosys":
        out["data"] = {"hi": {"contents": data["hi_data"]}, "lo": {"contents": data["lo_data"]}}
    elif kind == "shapesys":
        out["data"] = {"vals": list(data)}
    return out


def _hs3_sample(sample: dict, nbins: int, file: str | None, at: list) -> dict:
    data: dict[str, Any] = {"contents": list(sample["data"])}
    errors = [m["data"] for m in sample["modifiers"] if m["type"] == "staterror"]
    if len(errors) > 1:
        _fail("two staterror modifiers on one sample have no HS3 form", file, at)
    if errors:
        data["errors"] = list(errors[0])
    modifiers = [_hs3_modifier(m, nbins) for m in sample["modifiers"]]
    return {"name": sample["name"], "data": data, "modifiers": modifiers}


def _parameter_kinds(ws: dict) -> dict[str, tuple[str, int]]:
    kinds = {}
    for channel in ws["channels"]:
        nbins = len(channel["samples"][0]["data"])
        for sample in channel["samples"]:
            for modifier in sample["modifiers"]:
                kinds[modifier["name"]] = (modifier["type"], nbins)
    return kinds


def _measurement_parts(measurement: dict, kinds: dict, file: str | None, at: list):
    """Domain axes, parameter points and lumi constraints of one measurement."""
    axes, points, lumi = [], [], []
    for k, setting in enumerate(measurement["config"].get("parameters", [])):
        here = [*at, "config", "parameters", k]
        name = setting["name"]
        if name not in kinds:
            continue  # pyhf ignores settings of parameters the model lacks
        kind, nbins = kinds[name]
        names = _bin_names(name, nbins) if kind in PER_BIN_TYPES else [name]
        extra = {"auxdata", "sigmas", "factors"} & set(setting)
        if kind == "lumi":
            lumi.append((name, setting["auxdata"][0], setting["sigmas"][0]))
        elif extra:
            _fail(f"setting {sorted(extra)} of a {kind} parameter has no HS3 form here", file, here)
        for i, parameter in enumerate(names):
            if "bounds" in setting:
                low, high = setting["bounds"][i]
                axes.append({"name": parameter, "min": low, "max": high})
            if "inits" in setting or "fixed" in setting:
                point: dict[str, Any] = {"name": parameter}
                if "inits" in setting:
                    point["value"] = setting["inits"][i]
                if setting.get("fixed"):
                    point["const"] = True
                points.append(point)
    return axes, points, lumi


def to_hs3(ws: dict, *, file: str | None = None) -> dict:
    """An HS3 v0.2 document with the same likelihood as the pyhf workspace ``ws``.

    One likelihood (all channels and their observations) and one analysis per
    measurement. ``ws`` must be a valid pyhf workspace (see ``validate_workspace``); what
    pyhf ignores in it (repeated names, observations of no channel) is left out
    (:func:`~hfpipe.spec.leniency.kept_workspace`).
    """
    from hfpipe import __version__

    ws = kept_workspace(ws)

    distributions, data = [], []
    for c, channel in enumerate(ws["channels"]):
        name, nbins = channel["name"], len(channel["samples"][0]["data"])
        axis = {"name": f"obs_x_{name}", "min": 0.0, "max": float(nbins), "nbins": nbins}
        samples = [
            _hs3_sample(s, nbins, file, ["channels", c, "samples", k])
            for k, s in enumerate(channel["samples"])
        ]
        distributions.append(
            {
                "name": _DIST_PREFIX + name,
                "type": "histfactory_dist",
                "axes": [axis],
                "samples": samples,
            }
        )
    observed = {o["name"]: o["data"] for o in ws["observations"]}
    for channel in ws["channels"]:
        nbins = len(channel["samples"][0]["data"])
        axis = {"name": f"obs_x_{channel['name']}", "min": 0.0, "max": float(nbins), "nbins": nbins}
        data.append(
            {
                "name": _DATA_PREFIX + channel["name"],
                "type": "binned",
                "axes": [axis],
                "contents": list(observed[channel["name"]]),
            }
        )
    kinds = _parameter_kinds(ws)
    likelihood = {
        "name": "likelihood",
        "distributions": [d["name"] for d in distributions],
        "data": [d["name"] for d in data],
    }
    analyses, domains, points, likelihoods = [], [], [], []
    for m, measurement in enumerate(ws["measurements"]):
        axes, values, lumi = _measurement_parts(measurement, kinds, file, ["measurements", m])
        name = measurement["name"]
        own = likelihood
        if lumi:  # a lumi constraint is part of this measurement's likelihood
            constraints = [
                {
                    "name": f"{p}_constraint_{name}",
                    "type": "gaussian_dist",
                    "x": p,
                    "mean": a,
                    "sigma": s,
                }
                for p, a, s in lumi
            ]
            distributions.extend(constraints)
            own = {**likelihood, "name": f"likelihood_{name}"}
            own["aux_distributions"] = [c["name"] for c in constraints]
        if own not in likelihoods:
            likelihoods.append(own)
        domains.append({"name": f"{name}_domain", "type": "product_domain", "axes": axes})
        points.append({"name": f"{name}_init", "parameters": values})
        analyses.append(
            {
                "name": name,
                "likelihood": own["name"],
                "parameters_of_interest": [measurement["config"]["poi"]],
                "domains": [f"{name}_domain"],
                "init": f"{name}_init",
            }
        )
    return {
        "metadata": {
            "hs3_version": HS3_VERSION,
            "packages": [{"name": "hfpipe", "version": __version__}],
        },
        "distributions": distributions,
        "data": data,
        "likelihoods": likelihoods,
        "analyses": analyses,
        "domains": domains,
        "parameter_points": points,
    }


# ---------------------------------------------------------------- HS3 → pyhf


def _by_name(doc: dict, key: str, file: str | None) -> dict[str, tuple[int, dict]]:
    entries = doc.get(key, [])
    if not isinstance(entries, list):
        _fail(f"{key} must be a list", file, [key])
    return {entry.get("name"): (k, entry) for k, entry in enumerate(entries)}


def _choose_analysis(doc: dict, analysis: str | None, file: str | None) -> tuple[int, dict]:
    analyses = _by_name(doc, "analyses", file)
    if analysis is not None:
        if analysis not in analyses:
            _fail(f"no analysis {analysis!r} (has {sorted(analyses)})", file, ["analyses"])
        return analyses[analysis]
    if len(analyses) == 1:
        return next(iter(analyses.values()))
    # ROOT writes an Asimov and an observed analysis: the observed one is meant
    real = [v for n, v in analyses.items() if "asimov" not in str(n).lower()]
    if len(real) == 1:
        return real[0]
    _fail(f"several analyses {sorted(analyses)}: choose one", file, ["analyses"])


class _Reader:
    """Reads one analysis of an HS3 document into a pyhf workspace."""

    def __init__(self, doc: dict, file: str | None):
        self.doc, self.file = doc, file
        if not isinstance(doc, dict) or "distributions" not in doc:
            _fail("not an HS3 document (no 'distributions')", file, [])
        version = str(doc.get("metadata", {}).get("hs3_version", ""))
        if not version.startswith("0.2"):
            _fail(
                f"HS3 version {version or '(none)'} is not supported (0.2 is)", file, ["metadata"]
            )
        if doc.get("functions"):
            _fail("HS3 'functions' are not supported", file, ["functions"])
        self.distributions = _by_name(doc, "distributions", file)
        self.data = _by_name(doc, "data", file)
        #: pyhf modifier name of each HS3 parameter, the HS3 parameters and the types of
        #: each pyhf modifier name (normsys and histosys may share one; pyhf's rules on
        #: which types mix are checked when the result is validated)
        self.owner: dict[str, str] = {}
        self.modifiers: dict[str, tuple[str, ...]] = {}
        self.types: dict[str, set[str]] = {}
        self.named: dict[tuple[str, ...], str] = {}  # renamed per-bin modifiers

    def _lookup(self, table: dict, name: str, what: str, at: list) -> tuple[int, dict]:
        if name not in table:
            _fail(f"unknown {what} {name!r}", self.file, at)
        return table[name]

    def _register(self, name: str, kind: str, parameters: tuple[str, ...], at: list) -> None:
        if self.modifiers.setdefault(name, parameters) != parameters:
            _fail(f"modifier {name!r} appears with different parameters", self.file, at)
        self.types.setdefault(name, set()).add(kind)
        for parameter in parameters:
            if self.owner.setdefault(parameter, name) != name:
                _fail(f"parameter {parameter!r} is shared by different modifiers", self.file, at)

    def modifier(self, modifier: dict, sample: dict, channel: str, nbins: int, at: list) -> dict:
        unknown = set(modifier) - _MODIFIER_KEYS
        if unknown:
            _fail(f"modifier keys {sorted(unknown)} are not supported", self.file, at)
        kind = modifier.get("type")
        if kind not in {"normfactor", "normsys", "histosys", *PER_BIN_TYPES}:
            _fail(f"modifier type {kind!r} is not supported", self.file, [*at, "type"])
        constraint = modifier.get("constraint", _CONSTRAINTS.get(kind))
        if constraint != _CONSTRAINTS.get(kind):
            _fail(
                f"{kind} with constraint {constraint!r} is not supported "
                f"(pyhf's is {_CONSTRAINTS.get(kind)!r})",
                self.file,
                [*at, "constraint"],
            )
        data = modifier.get("data")
        if kind in PER_BIN_TYPES:
            parameters = tuple(modifier.get("parameters") or ())
            if len(parameters) != nbins:
                _fail(f"{kind} needs {nbins} parameters, one a bin", self.file, [*at, "parameters"])
            name = modifier.get("name") or parameters[0]
            if self.modifiers.get(name, parameters) != parameters:
                # ROOT may reuse one name (e.g. "mcstat") in every channel with other
                # parameters; pyhf needs a name per parameter set
                name = self.named.setdefault(parameters, f"{name}_{channel}")
        else:
            name = modifier.get("parameter") or modifier.get("name")
            parameters = (name,)
        self._register(name, kind, parameters, at)
        out: dict[str, Any] = {"name": name, "type": kind, "data": None}
        try:
            if kind == "normsys":
                out["data"] = {"hi": float(data["hi"]), "lo": float(data["lo"])}
            elif kind == "histosys":
                out["data"] = {
                    "hi_data": [float(v) for v in data["hi"]["contents"]],
                    "lo_data": [float(v) for v in data["lo"]["contents"]],
                }
            elif kind == "shapesys":
                out["data"] = [float(v) for v in data["vals"]]
            elif kind == "staterror":
                out["data"] = [float(v) for v in sample["data"]["errors"]]
        except (KeyError, TypeError, ValueError) as error:
            what = "the sample's data.errors" if kind == "staterror" else "data"
            _fail(f"{kind} needs {what}: {error!r}", self.file, at)
        return out

    def channel(self, name: str, at: list) -> tuple[dict, int]:
        k, dist = self._lookup(self.distributions, name, "distribution", at)
        here = ["distributions", k]
        if dist.get("type") != "histfactory_dist":
            _fail(
                f"distribution type {dist.get('type')!r} is not supported",
                self.file,
                [*here, "type"],
            )
        axes = dist.get("axes", [])
        if len(axes) != 1:
            _fail("only one-dimensional histfactory_dist is supported", self.file, [*here, "axes"])
        nbins = int(axes[0].get("nbins", len(axes[0].get("edges", [0])) - 1))
        channel = name[len(_DIST_PREFIX) :] if name.startswith(_DIST_PREFIX) else name
        samples = []
        for s, sample in enumerate(dist.get("samples", [])):
            at_sample = [*here, "samples", s]
            try:
                contents = [float(v) for v in sample["data"]["contents"]]
            except (KeyError, TypeError, ValueError):
                _fail("a sample needs a name and data.contents (numbers)", self.file, at_sample)
            if len(contents) != nbins:
                _fail(f"{len(contents)} contents for {nbins} bins", self.file, [*at_sample, "data"])
            modifiers = [
                self.modifier(m, sample, channel, nbins, [*at_sample, "modifiers", j])
                for j, m in enumerate(sample.get("modifiers", []))
            ]
            samples.append({"name": sample["name"], "data": contents, "modifiers": modifiers})
        return {"name": channel, "samples": samples}, nbins

    def observation(self, name: str, channel: str, nbins: int, at: list) -> dict:
        k, data = self._lookup(self.data, name, "data", at)
        contents = data.get("contents", [])
        if data.get("type") != "binned" or len(contents) != nbins:
            _fail(f"expected binned data with {nbins} bins", self.file, ["data", k])
        return {"name": channel, "data": [float(v) for v in contents]}

    def lumi(self, name: str, parameter_values: dict, at: list) -> tuple[str, float, float]:
        k, dist = self._lookup(self.distributions, name, "distribution", at)
        here = ["distributions", k]
        if dist.get("type") != "gaussian_dist":
            _fail("only a gaussian_dist on a normfactor is supported here", self.file, here)
        x = dist.get("x")
        if self.types.get(x) != {"normfactor"}:
            _fail(f"the constrained parameter {x!r} is not a normfactor", self.file, [*here, "x"])

        def number(value, key):
            if isinstance(value, str):
                if value not in parameter_values:
                    _fail(f"unknown parameter {value!r}", self.file, [*here, key])
                return float(parameter_values[value]["value"])
            return float(value)

        return x, number(dist.get("mean"), "mean"), number(dist.get("sigma"), "sigma")


def _settings(reader: _Reader, analysis: dict, at: list) -> tuple[list[dict], dict]:
    """Measurement parameter settings from the analysis' domains and parameter points."""
    domains = _by_name(reader.doc, "domains", reader.file)
    bounds: dict[str, tuple[float, float]] = {}
    for name in analysis.get("domains", []):
        k, domain = reader._lookup(domains, name, "domain", [*at, "domains"])
        if domain.get("type") != "product_domain":
            _fail("only product_domain domains are supported", reader.file, ["domains", k])
        for axis in domain.get("axes", []):
            bounds[axis["name"]] = (float(axis["min"]), float(axis["max"]))
    points = _by_name(reader.doc, "parameter_points", reader.file)
    chosen = analysis.get("init") or ("default_values" if "default_values" in points else None)
    values: dict[str, dict] = {}
    if chosen is not None:
        _, point_set = reader._lookup(points, chosen, "parameter_points", [*at, "init"])
        values = {p["name"]: p for p in point_set.get("parameters", [])}
    settings = []
    for name, parameters in reader.modifiers.items():
        setting: dict[str, Any] = {"name": name}
        given = [p for p in parameters if p in bounds]
        if given:
            if len(given) != len(parameters):
                _fail(
                    f"domain bounds for only some bins of {name!r}", reader.file, [*at, "domains"]
                )
            setting["bounds"] = [list(bounds[p]) for p in parameters]
        given = [p for p in parameters if "value" in values.get(p, {})]
        if given:
            if len(given) != len(parameters):
                _fail(f"initial values for only some bins of {name!r}", reader.file, [*at, "init"])
            setting["inits"] = [float(values[p]["value"]) for p in parameters]
        const = {bool(values.get(p, {}).get("const", False)) for p in parameters}
        if const == {True}:
            setting["fixed"] = True
        elif len(const) > 1:
            _fail(f"only some bins of {name!r} are const", reader.file, [*at, "init"])
        if len(setting) > 1:
            settings.append(setting)
    return settings, values


def from_hs3(doc: dict, *, analysis: str | None = None, file: str | None = None) -> dict:
    """The pyhf workspace of one analysis of an HS3 v0.2 document.

    ``analysis`` picks the analysis by name; by default the only one, or the only one
    whose name does not say "asimov" (ROOT writes an Asimov and an observed analysis).
    """
    reader = _Reader(doc, file)
    a, chosen = _choose_analysis(doc, analysis, file)
    at = ["analyses", a]
    likelihoods = _by_name(doc, "likelihoods", file)
    l_index, likelihood = reader._lookup(likelihoods, chosen.get("likelihood"), "likelihood", at)
    l_at = ["likelihoods", l_index]
    names, data = likelihood.get("distributions", []), likelihood.get("data", [])
    if len(names) != len(data):
        _fail("a likelihood needs one data entry per distribution", file, l_at)
    channels, observations = [], []
    for k, (dist_name, data_name) in enumerate(zip(names, data, strict=True)):
        channel, nbins = reader.channel(dist_name, [*l_at, "distributions", k])
        channels.append(channel)
        observations.append(
            reader.observation(data_name, channel["name"], nbins, [*l_at, "data", k])
        )
    settings, values = _settings(reader, chosen, at)
    for k, name in enumerate(likelihood.get("aux_distributions", [])):
        parameter, auxdata, sigma = reader.lumi(name, values, [*l_at, "aux_distributions", k])
        for channel in channels:
            for sample in channel["samples"]:
                for modifier in sample["modifiers"]:
                    if modifier["name"] == parameter:
                        modifier["type"] = "lumi"
        setting = next((s for s in settings if s["name"] == parameter), None)
        if setting is None:
            setting = {"name": parameter}
            settings.append(setting)
        setting.update(auxdata=[auxdata], sigmas=[sigma])
        setting.setdefault("inits", [auxdata])
    pois = chosen.get("parameters_of_interest") or []
    if len(pois) != 1:
        _fail("pyhf needs exactly one parameter of interest", file, [*at, "parameters_of_interest"])
    measurement = {"name": chosen["name"], "config": {"poi": pois[0], "parameters": settings}}
    return {
        "channels": channels,
        "observations": observations,
        "measurements": [measurement],
        "version": "1.0.0",
    }
