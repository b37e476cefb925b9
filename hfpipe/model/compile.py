"""Compile a pyhf workspace (one measurement) into a :class:`Structure` and :class:`Numbers`.

The semantics are pyhf 0.7.6's, modifier by modifier:

* ``normfactor``, ``lumi``: one multiplicative parameter (lumi constrained by a
  Gaussian whose ``auxdata``/``sigmas`` come from the measurement).
* ``shapefactor``: one free multiplicative parameter per bin.
* ``staterror``: one Gaussian-constrained parameter per bin with width
  ``sqrt(Σ δ²) / Σ nominal`` over the samples that carry it; bins of zero width are
  fixed (width 1), as pyhf does.
* ``shapesys``: one parameter per bin with a Poisson constraint of
  ``tau = (nominal / δ)²``; bins with zero nominal or zero δ are fixed.
* ``normsys``, ``histosys``: one Gaussian-constrained parameter, interpolated with the
  chosen codes. A name shared by a normsys and a histosys is one parameter.

Parameters are ordered as pyhf orders them (grouped by modifier type, first seen in a
walk over channels and samples sorted by name) and named as pyhf names them.

Compiling goes in two steps: each sample on its own (its nominal yields and the
variations its modifiers carry, :func:`_compile_sample`), then the model from its
samples (parameter order and settings, and the rows of every array). A scan compiles the
background's samples once (:class:`SampleCache`) and reuses them at every signal point,
whose own samples are then most of the work left.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain, combinations

import numpy as np

from hfpipe.errors import InvalidWorkspace
from hfpipe.model.structure import Numbers, ParameterSet, Structure
from hfpipe.spec.leniency import merged_channels
from hfpipe.spec.modifiers import (
    HISTOSYS_CODES,
    MODIFIER_TYPES,
    MODIFIERS,
    NORMSYS_CODES,
    PER_BIN_TYPES,
    SCALE_TYPES,
    SHAREABLE_TYPES,
)

__all__ = ["SampleCache", "compile_workspace"]

#: per-bin and multiplying types, in pyhf's order (the order the rows are built in)
_PER_BIN = tuple(t for t in MODIFIER_TYPES if t in PER_BIN_TYPES)
_FACTOR_TYPES = tuple(t for t in MODIFIER_TYPES if t in SCALE_TYPES)


@dataclass(frozen=True, eq=False)
class _CompiledSample:
    """One sample dict compiled on its own: all that does not depend on the other samples."""

    source: Mapping  # the sample dict
    nominal: np.ndarray
    modifiers: dict[tuple[str, str], dict]  # (type, name) -> modifier; last one wins
    names: dict[str, tuple[str, ...]]  # modifier type -> names, in the order of ``modifiers``
    #: per modifier of names["normsys"] its factors (hi, lo), arrays (k, 1); per modifier of
    #: names["histosys"] its deltas (hi - nominal, nominal - lo), arrays (k, bins)
    variations: dict[str, tuple[np.ndarray, np.ndarray]]


def _compile_sample(sample: Mapping) -> _CompiledSample:
    """Compile a sample dict; its modifiers are ordered by name, then type (pyhf's walk)."""
    modifiers = {(m["type"], m["name"]): m for m in sample["modifiers"]}
    ordered = dict(sorted(modifiers.items(), key=lambda kv: (kv[0][1], kv[0][0])))
    names = {kind: tuple(n for t, n in ordered if t == kind) for kind in MODIFIER_TYPES}
    nominal = np.asarray(sample["data"], dtype=float)
    normsys = [ordered["normsys", name]["data"] for name in names["normsys"]]
    histosys = [ordered["histosys", name]["data"] for name in names["histosys"]]

    def templates(key: str) -> np.ndarray:
        rows = [data[key] for data in histosys]
        return np.array(rows, dtype=float).reshape(len(rows), len(nominal))

    def factors(key: str) -> np.ndarray:
        return np.array([data[key] for data in normsys], dtype=float).reshape(-1, 1)

    variations = {
        "normsys": (factors("hi"), factors("lo")),
        "histosys": (templates("hi_data") - nominal, nominal - templates("lo_data")),
    }
    return _CompiledSample(sample, nominal, ordered, names, variations)


class SampleCache:
    """The compiled samples of a base workspace, for every workspace patched from it.

    :func:`~hfpipe.spec.apply_patches` copies only what a patch changes, so the samples
    it leaves alone are the base's own dicts in the result, and :meth:`get` finds them
    by identity: a point of a patchset compiles its signal samples only. The cache keeps
    every base sample alive, so that no other object can take its id; the base must not
    change afterwards, which a :class:`~hfpipe.spec.PatchBase`'s workspace never does.
    """

    def __init__(self, workspace: Mapping) -> None:
        samples = [sample for channel in workspace["channels"] for sample in channel["samples"]]
        self._compiled = {id(sample): _compile_sample(sample) for sample in samples}

    def get(self, sample: Mapping) -> _CompiledSample:
        """The base's compiled ``sample`` if it is one of the base's, else a new one."""
        hit = self._compiled.get(id(sample))
        return hit if hit is not None and hit.source is sample else _compile_sample(sample)


@dataclass(frozen=True)
class _Sample:
    """A compiled sample at its place in the model."""

    channel: str
    first_slot: int
    first_bin: int
    compiled: _CompiledSample

    @property
    def name(self) -> str:
        return self.compiled.source["name"]

    @property
    def nominal(self) -> np.ndarray:
        return self.compiled.nominal

    @property
    def modifiers(self) -> dict[tuple[str, str], dict]:
        return self.compiled.modifiers

    @property
    def slots(self) -> slice:
        return slice(self.first_slot, self.first_slot + len(self.nominal))


@dataclass
class _Defaults:
    """pyhf's default settings of one parameter set, before the measurement's overrides."""

    size: int
    inits: list[float]
    bounds: list[tuple[float, float]]
    fixed: list[bool]
    auxdata: list[float] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)
    factors: list[float] = field(default_factory=list)


def _samples(
    workspace: Mapping, cache: SampleCache | None
) -> tuple[list[str], list[int], list[_Sample]]:
    """Channel names and sizes, and the compiled samples, in pyhf's order (by name).

    The samples are those pyhf keeps (:func:`~hfpipe.spec.leniency.merged_channels`):
    channels of one name are one channel, and a later sample of a name replaces an
    earlier one in it."""
    channels = merged_channels(workspace["channels"])
    names, bins, samples = [], [], []
    slot = first_bin = 0
    for name in sorted(channels):
        nbins = len(channels[name][0]["data"])
        names.append(name)
        bins.append(nbins)
        for sample in sorted(channels[name], key=lambda s: s["name"]):
            compiled = cache.get(sample) if cache is not None else _compile_sample(sample)
            samples.append(_Sample(name, slot, first_bin, compiled))
            slot += nbins
        first_bin += nbins
    return names, bins, samples


def _names_by_type(samples: list[_Sample]) -> dict[str, dict[str, None]]:
    """Per modifier type, the names of its modifiers in the order first met (the keys)."""
    return {
        kind: dict.fromkeys(chain.from_iterable(s.compiled.names[kind] for s in samples))
        for kind in MODIFIER_TYPES
    }


def _default_settings(
    kind: str, name: str, samples: list[_Sample], carriers: list[_Sample] | None, nbins: dict
) -> _Defaults:
    """pyhf's settings of a parameter; ``carriers``: the samples with its modifier, in
    model order (needed by the per-bin types only). Inits and bounds are the type's
    (:data:`~hfpipe.spec.modifiers.MODIFIERS`); the constraint data are computed here."""
    facts = MODIFIERS[kind]
    if kind in SHAREABLE_TYPES:  # normsys, histosys: a unit Gaussian about 0
        return _Defaults(1, [facts.init], [facts.bounds], [False], auxdata=[0.0], sigmas=[1.0])
    if kind == "normfactor":
        return _Defaults(1, [facts.init], [facts.bounds], [False])
    if kind == "lumi":
        # pyhf takes lumi's value, bounds and width from the measurement only; without a
        # width (sigmas) its constraint has width 1.
        return _Defaults(1, [], [], [False], sigmas=[1.0])
    first = carriers[0]
    size = nbins[first.channel]
    inits, bounds = [facts.init] * size, [facts.bounds] * size
    if kind == "shapefactor":
        return _Defaults(size, inits, bounds, [False] * size)
    if kind == "shapesys":
        delta = np.asarray(first.modifiers[(kind, name)]["data"], dtype=float)
        valid = (first.nominal > 0) & (delta > 0)
        tau = np.where(valid, first.nominal**2 / np.where(valid, delta, 1.0) ** 2, 1.0)
        return _Defaults(size, inits, bounds, list(~valid), auxdata=list(tau), factors=list(tau))
    # staterror: combined relative width over the samples carrying it, per bin it covers;
    # the sums run over samples in model order, as bincount adds its weights in order
    total_bins = sum(nbins.values())
    covered = np.zeros(total_bins, dtype=bool)
    covered[_bins(carriers)] = True
    # pyhf sums per sample name, over channels; only the bins covered are read
    carrier_names = {s.name for s in carriers}
    carrier_channels = {s.channel for s in carriers}
    summed = [s for s in samples if s.name in carrier_names and s.channel in carrier_channels]
    nominal = np.concatenate([s.nominal for s in summed])
    nominal_sum = np.bincount(_bins(summed), weights=nominal, minlength=total_bins)
    bins = _bins(carriers)
    delta = np.concatenate([s.modifiers[(kind, name)]["data"] for s in carriers], dtype=float)
    total = nominal_sum[bins]
    relative = np.where(total > 0, (delta / np.where(total > 0, total, 1.0)) ** 2, 0.0)
    sum_sq = np.bincount(bins, weights=relative, minlength=total_bins)
    sigmas = np.sqrt(sum_sq[covered])
    fixed = sigmas == 0
    sigmas[fixed] = 1.0
    size = len(sigmas)
    inits, bounds = [facts.init] * size, [facts.bounds] * size
    return _Defaults(size, inits, bounds, list(fixed), auxdata=[1.0] * size, sigmas=list(sigmas))


def _per_bin_carriers(samples: list[_Sample]) -> dict[tuple[str, str], list[_Sample]]:
    """For each per-bin modifier (type, name), the samples carrying it, in model order."""
    carriers: dict[tuple[str, str], list[_Sample]] = {}
    for s in samples:
        for kind in _PER_BIN:
            for name in s.compiled.names[kind]:
                carriers.setdefault((kind, name), []).append(s)
    return carriers


def _bins(samples: list[_Sample]) -> np.ndarray:
    """The global bins of the samples' slots, one after the other."""
    return np.concatenate([np.arange(s.first_bin, s.first_bin + len(s.nominal)) for s in samples])


def _parameter_order(names: Mapping[str, Mapping[str, None]]) -> list[tuple[str, str]]:
    """(kind, name) of each parameter set, in pyhf's order, from :func:`_names_by_type`."""
    order: list[tuple[str, str]] = []
    seen: set[str] = set()
    for kind in MODIFIER_TYPES:
        for name in sorted(names[kind]) if kind == "staterror" else names[kind]:
            if name not in seen:
                seen.add(name)
                order.append((kind, name))
    return order


def _check_name_reuse(
    samples: list[_Sample], names: Mapping[str, Mapping[str, None]], file: str
) -> None:
    """Only a normsys and a histosys may share a name (set operations on the names of
    :func:`_names_by_type`; the walk over every modifier runs only to word an error)."""
    pairs = combinations(MODIFIER_TYPES, 2)
    shared = (names[a].keys() & names[b].keys() for a, b in pairs if not {a, b} <= SHAREABLE_TYPES)
    if not any(shared):
        return
    kinds: dict[str, set[str]] = {}
    for s in samples:
        for kind, name in s.modifiers:
            kinds.setdefault(name, set()).add(kind)
    for name, found in kinds.items():
        if len(found) > 1 and not found <= SHAREABLE_TYPES:
            raise InvalidWorkspace(
                f"modifier name '{name}' is used with types {sorted(found)}; only a normsys "
                "and a histosys may share a name",
                file=file,
                path="channels",
            )


def _apply_measurement(
    name: str, kind: str, defaults: _Defaults, user: Mapping, file: str
) -> _Defaults:
    """Measurement ``parameters`` override pyhf's defaults key by key.

    A bound is read as its first two numbers, and equal bounds hold the parameter (as
    pyhf's fit reads and treats them)."""
    settings = _Defaults(
        defaults.size,
        list(user.get("inits", defaults.inits)),
        [tuple(b[:2]) for b in user.get("bounds", defaults.bounds)],
        defaults.fixed,
        list(user.get("auxdata", defaults.auxdata)),
        list(user.get("sigmas", defaults.sigmas)),
        list(user.get("factors", defaults.factors)),
    )
    if "fixed" in user:
        settings.fixed = [bool(user["fixed"])] * defaults.size
    where = "measurements.config.parameters"
    required = {"inits": settings.inits, "bounds": settings.bounds}
    if kind == "lumi":
        required |= {"auxdata": settings.auxdata, "sigmas": settings.sigmas}
    for key, values in required.items():
        if len(values) != defaults.size:
            raise InvalidWorkspace(
                f"parameter '{name}' needs {defaults.size} value(s) for '{key}', got {len(values)}",
                file=file,
                path=where,
            )
    bounds = zip(settings.fixed, settings.bounds, strict=True)
    settings.fixed = [fixed or low == high for fixed, (low, high) in bounds]
    return settings


def compile_workspace(
    workspace: Mapping,
    measurement: Mapping,
    *,
    normsys_code: str = "code4",
    histosys_code: str = "code4p",
    clip_yields: bool = False,
    file: str = "<workspace>",
    cache: SampleCache | None = None,
) -> tuple[Structure, Numbers]:
    """Compile a validated workspace and one of its measurements.

    ``measurement`` is the measurement's object (``{"name": ..., "config": {...}}``).
    ``clip_yields`` clips expected bin yields at a small positive floor in the likelihood
    (an opt-in for unphysical models, see :mod:`hfpipe.model.physical`).
    ``cache``: the compiled samples of the workspace this one was patched from, reused
    where the patches left them alone (the result is the same, bit for bit).
    Returns the structure and the numbers (observed data included).
    """
    if normsys_code not in NORMSYS_CODES:
        raise ValueError(f"normsys code must be one of {NORMSYS_CODES}, got {normsys_code!r}")
    if histosys_code not in HISTOSYS_CODES:
        raise ValueError(f"histosys code must be one of {HISTOSYS_CODES}, got {histosys_code!r}")
    channels, channel_bins, samples = _samples(workspace, cache)
    names = _names_by_type(samples)
    _check_name_reuse(samples, names, file)
    carriers = _per_bin_carriers(samples)
    nbins = dict(zip(channels, channel_bins, strict=True))
    user = {p["name"]: p for p in measurement["config"].get("parameters", [])}

    parameter_sets, settings = [], []
    start = 0
    for kind, name in _parameter_order(names):
        defaults = _default_settings(kind, name, samples, carriers.get((kind, name)), nbins)
        setting = _apply_measurement(name, kind, defaults, user.get(name, {}), file)
        constraint = MODIFIERS[kind].constraint
        parameter_sets.append(ParameterSet(name, kind, start, defaults.size, constraint))
        settings.append(setting)
        start += defaults.size
    index = {ps.name: ps for ps in parameter_sets}
    poi = measurement["config"]["poi"]
    if poi not in index:
        raise InvalidWorkspace(
            f"POI '{poi}' is not a parameter of the model",
            file=file,
            path=f"measurements[{measurement['name']}].config.poi",
        )
    if not index[poi].is_scalar:
        raise InvalidWorkspace(
            f"POI '{poi}' has several components; it must be a scalar parameter",
            file=file,
            path=f"measurements[{measurement['name']}].config.poi",
        )

    n_slots = sum(len(s.nominal) for s in samples)
    slot_labels = tuple((s.channel, s.name, b) for s in samples for b in range(len(s.nominal)))
    slot_bin = tuple(s.first_bin + b for s in samples for b in range(len(s.nominal)))
    nominal = np.concatenate([s.nominal for s in samples]) if samples else np.zeros(0)
    factor_params, factor_mask = _factor_mask(samples, index, n_slots)
    normsys_params, normsys_hi, normsys_lo = _variation_rows(
        samples, "normsys", names["normsys"], index, n_slots
    )
    histosys_params, histosys_up, histosys_down = _variation_rows(
        samples, "histosys", names["histosys"], index, n_slots
    )

    normal_params, poisson_params, normal_aux, poisson_aux = [], [], [], []
    auxdata, sigmas, factors = [], [], []
    for ps, setting in zip(parameter_sets, settings, strict=True):
        if ps.constraint is None:
            continue
        for k in range(ps.size):
            position = len(auxdata)
            auxdata.append(setting.auxdata[k])
            if ps.constraint == "normal":
                normal_params.append(ps.start + k)
                normal_aux.append(position)
                sigmas.append(setting.sigmas[k])
            else:
                poisson_params.append(ps.start + k)
                poisson_aux.append(position)
                factors.append(setting.factors[k])

    structure = Structure(
        parameter_sets=tuple(parameter_sets),
        poi_name=poi,
        channels=tuple(channels),
        channel_bins=tuple(channel_bins),
        slot_labels=slot_labels,
        slot_bin=slot_bin,
        factor_params=factor_params,
        normsys_params=normsys_params,
        histosys_params=histosys_params,
        normal_params=tuple(normal_params),
        poisson_params=tuple(poisson_params),
        normal_aux=tuple(normal_aux),
        poisson_aux=tuple(poisson_aux),
        normsys_code=normsys_code,
        histosys_code=histosys_code,
        clip_yields=clip_yields,
    )
    observations = {o["name"]: o["data"] for o in workspace["observations"]}
    bounds = np.array([b for setting in settings for b in setting.bounds], dtype=float)
    numbers = Numbers(
        nominal=nominal,
        factor_mask=factor_mask,
        normsys_hi=normsys_hi,
        normsys_lo=normsys_lo,
        histosys_up=histosys_up,
        histosys_down=histosys_down,
        normal_sigma=np.asarray(sigmas, dtype=float),
        poisson_factor=np.asarray(factors, dtype=float),
        observed=np.concatenate([np.asarray(observations[c], dtype=float) for c in channels]),
        auxdata=np.asarray(auxdata, dtype=float),
        init=np.array([v for setting in settings for v in setting.inits], dtype=float),
        lower=bounds[:, 0],
        upper=bounds[:, 1],
        fixed=np.array([v for setting in settings for v in setting.fixed], dtype=bool),
    )
    return structure, numbers


def _factor_mask(
    samples: list[_Sample], index: Mapping[str, ParameterSet], n_slots: int
) -> tuple[tuple[int, ...], np.ndarray]:
    """The multiplicative parameters and, per parameter, the slots it multiplies.

    normfactor and lumi act on every slot of a sample carrying them; a per-bin modifier's
    component i on bin i (shapefactor, shapesys) or, for staterror, the components run
    over the bins it covers, in global bin order (pyhf).
    """
    staterror_components = _staterror_components(samples)
    rows: dict[int, np.ndarray] = {}
    for s in samples:
        bins = range(len(s.nominal))
        for kind in _FACTOR_TYPES:
            for name in s.compiled.names[kind]:
                start = index[name].start
                if kind in ("normfactor", "lumi"):
                    targets = [(start, s.slots)]
                elif kind == "staterror":
                    component = staterror_components[name]
                    targets = [(start + component[s.first_bin + b], s.first_slot + b) for b in bins]
                else:
                    targets = [(start + b, s.first_slot + b) for b in bins]
                for parameter, slots in targets:
                    if parameter not in rows:
                        rows[parameter] = np.zeros(n_slots, bool)
                    rows[parameter][slots] = True
    params = tuple(sorted(rows))
    mask = np.stack([rows[p] for p in params]) if rows else np.zeros((0, n_slots), bool)
    return params, mask


def _staterror_components(samples: list[_Sample]) -> dict[str, dict[int, int]]:
    """Per staterror name, the component of each global bin it covers."""
    covered: dict[str, set[int]] = {}
    for s in samples:
        for name in s.compiled.names["staterror"]:
            bins = range(s.first_bin, s.first_bin + len(s.nominal))
            covered.setdefault(name, set()).update(bins)
    return {name: {g: i for i, g in enumerate(sorted(bins))} for name, bins in covered.items()}


def _variation_rows(
    samples: list[_Sample],
    kind: str,
    names: Iterable[str],
    index: Mapping[str, ParameterSet],
    n_slots: int,
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """The parameters of the normsys or histosys modifiers (``names``) and their two rows
    of slots: the factors (hi, lo), or the deltas (hi - nominal, nominal - lo); slots a
    parameter does not act on hold no effect (factor 1, delta 0)."""
    start = {name: index[name].start for name in names}
    params = tuple(sorted(set(start.values())))
    row_of_start = {parameter: r for r, parameter in enumerate(params)}
    row = {name: row_of_start[first] for name, first in start.items()}
    no_effect = 1.0 if kind == "normsys" else 0.0
    first = np.full((len(params), n_slots), no_effect)
    second = np.full((len(params), n_slots), no_effect)
    for s in samples:
        carried = s.compiled.names[kind]
        if carried:
            rows = np.fromiter(map(row.__getitem__, carried), np.intp, len(carried))
            first[rows, s.slots], second[rows, s.slots] = s.compiled.variations[kind]
    return params, first, second
