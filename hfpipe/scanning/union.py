"""Bring the compiled models of many signal points to one structure.

Signal points of a patchset differ in structure: their signal samples have their own
names (``C1N2_Wh_hbb_300_150``), some carry their own parameters
(``shape_mcstat_<point>_SR``), and systematics are present at some points only. To fit
them in one vmapped call, every point is expressed in a *union* structure:

* names are made canonical first: a sample that the background-only workspace lacks
  becomes ``<added k>`` of its channel, and a parameter that the background-only
  workspace lacks and not every point shares becomes ``<kind>@<channel>/<sample>`` of
  the first slot it multiplies — so the 64 × 4 per-point MC-stat parameters of 3L-eRJR
  map onto 4;
* the union has every canonical parameter and slot of any point; a point's numbers put
  neutral values where it lacks one: zero yield, normsys factors 1, histosys deltas 0,
  no factor-mask entry;
* a parameter a point lacks entirely is fixed at its initial value there (a padded free
  parameter would be a flat direction), with constraint width 1 and its auxiliary datum
  at that value. Its constraint adds a constant to -2 log L, kept in
  :attr:`UnionBatch.padding_twice_nll` so that each point's own ``twice_nll`` can be
  reported.

Points that cannot share a structure (different channels or binning, a canonical
parameter with different sizes or roles) form groups of their own — never wrong numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hfpipe.model.structure import Numbers, ParameterSet, Structure
from hfpipe.spec.modifiers import MODIFIERS, SCALE_TYPES

__all__ = ["UnionBatch", "unify"]

#: init and bounds of a padded lumi, which has no defaults (the measurement sets it up):
#: fixed at 1 where it is absent, as every padded factor is
_PADDED_LUMI = (1.0, (0.0, 10.0))


@dataclass
class UnionBatch:
    """Points expressed in one structure, their numbers stacked along axis 0."""

    structure: Structure
    numbers: Numbers
    members: list[int]  # indices into the caller's list of points
    padding_twice_nll: np.ndarray  # constant -2 log L of the padded constraints, per point

    def take(self, rows: Sequence[int]) -> UnionBatch:
        """The batch of points ``rows`` only (what a worker process needs of it)."""
        index = np.asarray(rows, dtype=int)
        numbers = Numbers(*(np.asarray(field)[index] for field in self.numbers))
        members = [self.members[i] for i in index]
        return UnionBatch(self.structure, numbers, members, self.padding_twice_nll[index])


@dataclass
class _Point:
    structure: Structure
    numbers: Numbers
    parameters: list[str]  # canonical name per parameter set
    slots: list[tuple[str, str, int]]  # canonical (channel, sample, bin) per slot


def _canonical(
    structure: Structure,
    numbers: Numbers,
    background_samples: Mapping[str, set[str]],
    common: set[str],
) -> _Point:
    sample_names: dict[tuple[str, str], str] = {}
    for channel in structure.channels:
        present = {s for c, s, _ in structure.slot_labels if c == channel}
        for k, sample in enumerate(sorted(present - background_samples.get(channel, set()))):
            sample_names[(channel, sample)] = f"<added {k}>"
    slots = [(c, sample_names.get((c, s), s), b) for c, s, b in structure.slot_labels]
    mask = np.asarray(numbers.factor_mask)
    row_of = {p: r for r, p in enumerate(structure.factor_params)}
    parameters = []
    for ps in structure.parameter_sets:
        name = ps.name
        if name not in common and ps.start in row_of and mask[row_of[ps.start]].any():
            channel, sample, _ = slots[int(np.argmax(mask[row_of[ps.start]]))]
            name = f"{ps.kind}@{channel}/{sample}"
        parameters.append(name)
    return _Point(structure, numbers, parameters, slots)


def _signature(point: _Point) -> dict[str, tuple[str, int, str | None]]:
    return {
        name: (ps.kind, ps.size, ps.constraint)
        for name, ps in zip(point.parameters, point.structure.parameter_sets, strict=True)
    }


def _compatible(first: Structure, known: Mapping, point: _Point, signature: Mapping) -> bool:
    """Whether ``point`` (its :func:`_signature`) joins a group whose first member has
    structure ``first`` and whose members' parameters are ``known`` (the union of their
    signatures, which agree wherever they share a name)."""
    s = point.structure
    if (s.channels, s.channel_bins, s.poi_name) != (
        first.channels,
        first.channel_bins,
        first.poi_name,
    ):
        return False
    if (s.normsys_code, s.histosys_code, s.clip_yields) != (
        first.normsys_code,
        first.histosys_code,
        first.clip_yields,
    ):
        return False
    return all(known.get(k, v) == v for k, v in signature.items())


def unify(
    models: Sequence[tuple[Structure, Numbers]],
    background_samples: Mapping[str, set[str]],
    background_parameters: set[str],
) -> list[UnionBatch]:
    """Group points and express each group in one union structure.

    ``background_samples`` maps channel → sample names of the background-only
    workspace; ``background_parameters`` holds its modifier names.
    """
    in_all = set.intersection(*({ps.name for ps in s.parameter_sets} for s, _ in models))
    common = background_parameters | in_all
    points = [_canonical(s, n, background_samples, common) for s, n in models]
    signatures = [_signature(point) for point in points]
    groups: list[tuple[list[int], dict]] = []  # members, the union of their signatures
    for i, point in enumerate(points):
        for members, known in groups:
            if _compatible(points[members[0]].structure, known, point, signatures[i]):
                members.append(i)
                known.update(signatures[i])
                break
        else:
            groups.append(([i], dict(signatures[i])))
    return [_build([points[j] for j in members], members) for members, _ in groups]


def _build(points: list[_Point], members: list[int]) -> UnionBatch:
    # union parameter sets and slots, in order of first appearance
    sets: dict[str, ParameterSet] = {}
    normsys, histosys = set(), set()
    for p in points:
        local: dict[int, int] = {}  # the point's parameter index -> the union's
        for name, ps in zip(p.parameters, p.structure.parameter_sets, strict=True):
            if name not in sets:
                start = sum(s.size for s in sets.values())
                sets[name] = ParameterSet(name, ps.kind, start, ps.size, ps.constraint)
            local.update((ps.start + k, sets[name].start + k) for k in range(ps.size))
        normsys |= {local[q] for q in p.structure.normsys_params}
        histosys |= {local[q] for q in p.structure.histosys_params}
    slots: dict[tuple[str, str, int], int] = {}
    for p in points:
        for key in p.slots:
            slots.setdefault(key, len(slots))
    first = points[0].structure
    offsets = dict(zip(first.channels, np.cumsum([0, *first.channel_bins]), strict=False))
    factor_params = tuple(
        ps.start + k for ps in sets.values() if ps.kind in SCALE_TYPES for k in range(ps.size)
    )
    constrained = [
        (ps.start + k, ps.constraint)
        for ps in sets.values()
        if ps.constraint
        for k in range(ps.size)
    ]
    normal = [q for q, c in constrained if c == "normal"]
    poisson = [q for q, c in constrained if c == "poisson"]
    aux_position = {q: i for i, (q, _) in enumerate(constrained)}
    structure = Structure(
        parameter_sets=tuple(sets.values()),
        poi_name=first.poi_name,
        channels=first.channels,
        channel_bins=first.channel_bins,
        slot_labels=tuple(slots),
        slot_bin=tuple(int(offsets[c] + b) for c, _, b in slots),
        factor_params=factor_params,
        normsys_params=tuple(sorted(normsys)),
        histosys_params=tuple(sorted(histosys)),
        normal_params=tuple(normal),
        poisson_params=tuple(poisson),
        normal_aux=tuple(aux_position[q] for q in normal),
        poisson_aux=tuple(aux_position[q] for q in poisson),
        normsys_code=first.normsys_code,
        histosys_code=first.histosys_code,
        clip_yields=first.clip_yields,
    )
    numbers, padding = zip(*(_pad(p, structure, sets, slots) for p in points), strict=True)
    stacked = Numbers(*(np.stack(field) for field in zip(*numbers, strict=True)))
    return UnionBatch(structure, stacked, members, np.asarray(padding))


def _pad(point: _Point, union: Structure, sets: dict, slots: dict) -> tuple[Numbers, float]:
    """One point's numbers in the union structure, and its padding's -2 log L."""
    s, n = point.structure, point.numbers
    n_pars, n_slots = union.n_parameters, len(slots)
    to_union = np.empty(s.n_parameters, dtype=int)
    for name, ps in zip(point.parameters, s.parameter_sets, strict=True):
        to_union[ps.start : ps.start + ps.size] = np.arange(ps.size) + sets[name].start
    slot_map = np.array([slots[key] for key in point.slots], dtype=int)
    present = np.zeros(n_pars, dtype=bool)
    present[to_union] = True

    init, lower, upper = np.ones(n_pars), np.zeros(n_pars), np.full(n_pars, 10.0)
    for ps in union.parameter_sets:
        sl = slice(ps.start, ps.start + ps.size)
        facts = MODIFIERS[ps.kind]
        init[sl] = _PADDED_LUMI[0] if facts.init is None else facts.init
        lower[sl], upper[sl] = _PADDED_LUMI[1] if facts.bounds is None else facts.bounds
    init[to_union], lower[to_union], upper[to_union] = n.init, n.lower, n.upper
    fixed = ~present
    fixed[to_union] = n.fixed

    nominal = np.zeros(n_slots)
    nominal[slot_map] = n.nominal

    def rows(union_rows, local_rows, values, neutral):
        values = np.asarray(values)
        out = np.full((len(union_rows), n_slots), neutral, dtype=values.dtype)
        index = {q: r for r, q in enumerate(union_rows)}
        targets = np.array([index[to_union[q]] for q in local_rows], dtype=int)
        out[targets[:, None], slot_map] = values
        return out

    factor_mask = rows(union.factor_params, s.factor_params, np.asarray(n.factor_mask), False)
    normsys_hi = rows(union.normsys_params, s.normsys_params, np.asarray(n.normsys_hi), 1.0)
    normsys_lo = rows(union.normsys_params, s.normsys_params, np.asarray(n.normsys_lo), 1.0)
    histosys_up = rows(union.histosys_params, s.histosys_params, np.asarray(n.histosys_up), 0.0)
    histosys_down = rows(union.histosys_params, s.histosys_params, np.asarray(n.histosys_down), 0.0)

    local_sigma = dict(zip(to_union[list(s.normal_params)], n.normal_sigma, strict=True))
    local_tau = dict(zip(to_union[list(s.poisson_params)], n.poisson_factor, strict=True))
    local_aux = {
        int(to_union[q]): float(n.auxdata[a])
        for q, a in zip(
            s.normal_params + s.poisson_params, s.normal_aux + s.poisson_aux, strict=True
        )
    }
    auxdata = np.zeros(union.n_aux)
    padding = 0.0
    for q, a in zip(union.normal_params, union.normal_aux, strict=True):
        auxdata[a] = local_aux.get(q, init[q])
        if q not in local_aux:
            padding += 2.0 * 0.5 * math.log(2 * math.pi)  # -2 log N(x; x, 1)
    for q, a in zip(union.poisson_params, union.poisson_aux, strict=True):
        auxdata[a] = local_aux.get(q, 1.0)
        if q not in local_aux:
            padding += 2.0  # -2 log Poisson(1; 1) with the continuous normalisation
    numbers = Numbers(
        nominal=nominal,
        factor_mask=factor_mask,
        normsys_hi=normsys_hi,
        normsys_lo=normsys_lo,
        histosys_up=histosys_up,
        histosys_down=histosys_down,
        normal_sigma=np.array([local_sigma.get(q, 1.0) for q in union.normal_params]),
        poisson_factor=np.array([local_tau.get(q, 1.0) for q in union.poisson_params]),
        observed=np.asarray(n.observed),
        auxdata=auxdata,
        init=init,
        lower=lower,
        upper=upper,
        fixed=fixed,
    )
    return numbers, padding
