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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from hfpipe.errors import InvalidWorkspace
from hfpipe.model.interpolation import HISTOSYS_CODES, NORMSYS_CODES
from hfpipe.model.structure import MODIFIER_TYPES, Numbers, ParameterSet, Structure

__all__ = ["compile_workspace"]

_CONSTRAINT = {
    "histosys": "normal",
    "normsys": "normal",
    "lumi": "normal",
    "staterror": "normal",
    "shapesys": "poisson",
    "normfactor": None,
    "shapefactor": None,
}
_PER_BIN = ("shapefactor", "shapesys", "staterror")


@dataclass
class _Sample:
    channel: str
    name: str
    nominal: np.ndarray
    modifiers: dict[tuple[str, str], dict]  # (type, name) -> modifier; last one wins
    first_slot: int
    first_bin: int


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


def _samples(workspace: Mapping) -> tuple[list[str], list[int], list[_Sample]]:
    channels = sorted(workspace["channels"], key=lambda c: c["name"])
    names, bins, samples = [], [], []
    slot = first_bin = 0
    for channel in channels:
        nbins = len(channel["samples"][0]["data"])
        names.append(channel["name"])
        bins.append(nbins)
        for sample in sorted(channel["samples"], key=lambda s: s["name"]):
            modifiers = {(m["type"], m["name"]): m for m in sample["modifiers"]}
            ordered = dict(sorted(modifiers.items(), key=lambda kv: (kv[0][1], kv[0][0])))
            samples.append(
                _Sample(
                    channel["name"],
                    sample["name"],
                    np.asarray(sample["data"], dtype=float),
                    ordered,
                    slot,
                    first_bin,
                )
            )
            slot += nbins
        first_bin += nbins
    return names, bins, samples


def _default_settings(kind: str, name: str, samples: list[_Sample], nbins: dict) -> _Defaults:
    carriers = [s for s in samples if (kind, name) in s.modifiers]
    first = carriers[0]
    if kind in ("histosys", "normsys"):
        return _Defaults(1, [0.0], [(-5.0, 5.0)], [False], auxdata=[0.0], sigmas=[1.0])
    if kind == "normfactor":
        return _Defaults(1, [1.0], [(0.0, 10.0)], [False])
    if kind == "lumi":
        # pyhf takes lumi's value, bounds and width from the measurement only.
        return _Defaults(1, [], [], [False])
    size = nbins[first.channel]
    if kind == "shapefactor":
        return _Defaults(size, [1.0] * size, [(0.0, 10.0)] * size, [False] * size)
    if kind == "shapesys":
        delta = np.asarray(first.modifiers[(kind, name)]["data"], dtype=float)
        valid = (first.nominal > 0) & (delta > 0)
        tau = np.where(valid, first.nominal**2 / np.where(valid, delta, 1.0) ** 2, 1.0)
        return _Defaults(
            size,
            [1.0] * size,
            [(1e-10, 10.0)] * size,
            list(~valid),
            auxdata=list(tau),
            factors=list(tau),
        )
    # staterror: combined relative width over the samples carrying it, per bin it covers
    total_bins = sum(nbins.values())
    covered = np.zeros(total_bins, dtype=bool)
    nominal_sum = np.zeros(total_bins)
    for s in carriers:
        covered[s.first_bin : s.first_bin + len(s.nominal)] = True
    carrier_names = {s.name for s in carriers}  # pyhf sums per sample name, over channels
    for s in samples:
        if s.name in carrier_names:
            nominal_sum[s.first_bin : s.first_bin + len(s.nominal)] += s.nominal
    sum_sq = np.zeros(total_bins)
    for s in carriers:
        sl = slice(s.first_bin, s.first_bin + len(s.nominal))
        delta = np.asarray(s.modifiers[(kind, name)]["data"], dtype=float)
        total = nominal_sum[sl]
        sum_sq[sl] += np.where(total > 0, (delta / np.where(total > 0, total, 1.0)) ** 2, 0.0)
    sigmas = np.sqrt(sum_sq[covered])
    fixed = sigmas == 0
    sigmas[fixed] = 1.0
    size = len(sigmas)
    return _Defaults(
        size,
        [1.0] * size,
        [(1e-10, 10.0)] * size,
        list(fixed),
        auxdata=[1.0] * size,
        sigmas=list(sigmas),
    )


def _parameter_order(samples: list[_Sample]) -> list[tuple[str, str]]:
    """(kind, name) of each parameter set, in pyhf's order."""
    order: list[tuple[str, str]] = []
    seen: set[str] = set()
    for kind in MODIFIER_TYPES:
        if kind == "staterror":
            names = sorted({n for s in samples for (t, n) in s.modifiers if t == kind})
        else:
            names = [n for s in samples for (t, n) in s.modifiers if t == kind]
        for name in names:
            if name not in seen:
                seen.add(name)
                order.append((kind, name))
    return order


def _check_name_reuse(samples: list[_Sample], file: str) -> None:
    kinds: dict[str, set[str]] = {}
    for s in samples:
        for kind, name in s.modifiers:
            kinds.setdefault(name, set()).add(kind)
    for name, found in kinds.items():
        if len(found) > 1 and found != {"normsys", "histosys"}:
            raise InvalidWorkspace(
                f"modifier name '{name}' is used with types {sorted(found)}; only a normsys "
                "and a histosys may share a name",
                file=file,
                path="channels",
            )


def _apply_measurement(
    name: str, kind: str, defaults: _Defaults, user: Mapping, file: str
) -> _Defaults:
    """Measurement ``parameters`` override pyhf's defaults key by key."""
    settings = _Defaults(
        defaults.size,
        list(user.get("inits", defaults.inits)),
        [tuple(b) for b in user.get("bounds", defaults.bounds)],
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
    return settings


def compile_workspace(
    workspace: Mapping,
    measurement: Mapping,
    *,
    normsys_code: str = "code4",
    histosys_code: str = "code4p",
    clip_yields: bool = False,
    file: str = "<workspace>",
) -> tuple[Structure, Numbers]:
    """Compile a validated workspace and one of its measurements.

    ``measurement`` is the measurement's object (``{"name": ..., "config": {...}}``).
    ``clip_yields`` clips expected bin yields at a small positive floor in the likelihood
    (an opt-in for unphysical models, see :mod:`hfpipe.model.physical`).
    Returns the structure and the numbers (observed data included).
    """
    if normsys_code not in NORMSYS_CODES:
        raise ValueError(f"normsys code must be one of {NORMSYS_CODES}, got {normsys_code!r}")
    if histosys_code not in HISTOSYS_CODES:
        raise ValueError(f"histosys code must be one of {HISTOSYS_CODES}, got {histosys_code!r}")
    channels, channel_bins, samples = _samples(workspace)
    _check_name_reuse(samples, file)
    nbins = dict(zip(channels, channel_bins, strict=True))
    user = {p["name"]: p for p in measurement["config"].get("parameters", [])}

    parameter_sets, settings = [], []
    start = 0
    for kind, name in _parameter_order(samples):
        defaults = _default_settings(kind, name, samples, nbins)
        setting = _apply_measurement(name, kind, defaults, user.get(name, {}), file)
        parameter_sets.append(ParameterSet(name, kind, start, defaults.size, _CONSTRAINT[kind]))
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

    factor_rows: dict[int, np.ndarray] = {}
    normsys_rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    histosys_rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def row(rows: dict, key: int, make):
        if key not in rows:  # (dict.setdefault would build the default every time)
            rows[key] = make()
        return rows[key]

    for s in samples:
        slots = slice(s.first_slot, s.first_slot + len(s.nominal))
        for (kind, name), modifier in s.modifiers.items():
            ps = index[name]
            if kind in ("normfactor", "lumi"):
                row(factor_rows, ps.start, lambda: np.zeros(n_slots, bool))[slots] = True
            elif kind in _PER_BIN:
                components = _components(ps, kind, s, samples)
                for b, component in enumerate(components):
                    row(factor_rows, component, lambda: np.zeros(n_slots, bool))[
                        s.first_slot + b
                    ] = True
            elif kind == "normsys":
                hi, lo = row(normsys_rows, ps.start, lambda: (np.ones(n_slots), np.ones(n_slots)))
                hi[slots], lo[slots] = modifier["data"]["hi"], modifier["data"]["lo"]
            elif kind == "histosys":
                up, down = row(
                    histosys_rows, ps.start, lambda: (np.zeros(n_slots), np.zeros(n_slots))
                )
                up[slots] = np.asarray(modifier["data"]["hi_data"], float) - s.nominal
                down[slots] = s.nominal - np.asarray(modifier["data"]["lo_data"], float)

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

    factor_params = tuple(sorted(factor_rows))
    normsys_params = tuple(sorted(normsys_rows))
    histosys_params = tuple(sorted(histosys_rows))
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
        factor_mask=_stack([factor_rows[p] for p in factor_params], (0, n_slots), bool),
        normsys_hi=_stack([normsys_rows[p][0] for p in normsys_params], (0, n_slots)),
        normsys_lo=_stack([normsys_rows[p][1] for p in normsys_params], (0, n_slots)),
        histosys_up=_stack([histosys_rows[p][0] for p in histosys_params], (0, n_slots)),
        histosys_down=_stack([histosys_rows[p][1] for p in histosys_params], (0, n_slots)),
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


def _components(ps: ParameterSet, kind: str, sample: _Sample, samples: list[_Sample]) -> list[int]:
    """Parameter index acting on each bin of ``sample`` for a per-bin modifier.

    shapefactor and shapesys map component i to bin i of every channel they act in;
    staterror components run over the bins it covers, in global bin order (pyhf).
    """
    nb = len(sample.nominal)
    if kind != "staterror":
        return [ps.start + b for b in range(nb)]
    covered = sorted(
        {
            s.first_bin + b
            for s in samples
            if (kind, ps.name) in s.modifiers
            for b in range(len(s.nominal))
        }
    )
    position = {g: i for i, g in enumerate(covered)}
    return [ps.start + position[sample.first_bin + b] for b in range(nb)]


def _stack(rows: list[np.ndarray], empty_shape: tuple[int, int], dtype=float) -> np.ndarray:
    return np.stack(rows).astype(dtype) if rows else np.zeros(empty_shape, dtype=dtype)
