"""Grouped impacts: how much of the POI's uncertainty a group of parameters carries.

The impact of a group is sqrt(σ_μ² − σ_μ,g²), with σ_μ the POI's Hesse uncertainty in
the best fit and σ_μ,g the one in a fit with the group's parameters held at their best-
fit values (one batched :func:`~hfpipe.infer.fit.fit_batch` call for all groups, each
fit then its own Hesse matrix). For a group of one parameter this is |C_μθ|/σ_θ, the
parameter's covariance-based post-fit impact (:func:`~hfpipe.infer.ranking.ranking`
with ``method="covariance"``): the Schur complement of the covariance matrix.

Groups are parameter names or patterns (``fnmatch``: ``JES_*``), matched against the
pyhf names of parameters (``staterror_SR[2]``) and against the names of per-bin
parameter sets (``staterror_SR`` takes all its bins); :func:`groups_by_type` groups by
modifier type, :func:`load_groups` reads a YAML mapping of group names to such lists.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping

import jax.numpy as jnp
import numpy as np
import pandas as pd

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.errors import InputError, InvalidSettings
from hfpipe.infer.bestfit import BestFit, best_fit
from hfpipe.infer.fit import DEFAULT_OPTIONS, FitOptions, fit_batch, hesse_uncertainties
from hfpipe.infer.prefit import modifier_types
from hfpipe.model.model import Model

__all__ = ["grouped_impacts", "groups_by_type", "load_groups", "match_groups"]

#: the first row of a grouped-impact table: the POI's total uncertainty
TOTAL = "total"


def _set_names(model: Model) -> list[str]:
    """The parameter set name of every parameter (``staterror_SR`` for its bins)."""
    return [ps.name for ps in model.structure.parameter_sets for _ in range(ps.size)]


def match_groups(model: Model, patterns: Mapping[str, Iterable[str] | str]) -> dict[str, list[str]]:
    """Groups of parameter names from ``{group: [name or pattern, ...]}``.

    A pattern equal to a parameter's name selects it; otherwise it is an ``fnmatch``
    pattern matched against parameter names and per-bin parameter set names. The POI is
    never part of a group. A pattern that selects nothing is an error (a typo would
    otherwise give an empty group of impact 0)."""
    names = list(model.parameter_names)
    sets = _set_names(model)
    groups = {}
    for group, listed in patterns.items():
        listed = [listed] if isinstance(listed, str) else list(listed)
        if not listed:
            raise InvalidSettings(f"group {group!r} lists no parameters")
        chosen: list[int] = []
        for pattern in listed:
            found = [
                p
                for p, (name, set_name) in enumerate(zip(names, sets, strict=True))
                if pattern in (name, set_name)
                or fnmatch.fnmatchcase(name, pattern)
                or fnmatch.fnmatchcase(set_name, pattern)
            ]
            found = [p for p in found if p != model.poi_index]
            if not found:
                raise InvalidSettings(f"group {group!r}: {pattern!r} matches no parameter")
            chosen += [p for p in found if p not in chosen]
        groups[str(group)] = [names[p] for p in sorted(chosen)]
    return groups


def groups_by_type(model: Model) -> dict[str, list[str]]:
    """One group per modifier type (``normsys``, ``histosys+normsys``, ``staterror``,
    ...; see :func:`~hfpipe.infer.prefit.modifier_types`), the POI and fixed
    parameters left out."""
    groups: dict[str, list[str]] = {}
    fixed = np.asarray(model.numbers.fixed, dtype=bool)
    for p, (name, kind) in enumerate(
        zip(model.parameter_names, modifier_types(model.structure), strict=True)
    ):
        if p != model.poi_index and not fixed[p]:
            groups.setdefault(kind, []).append(name)
    return groups


def load_groups(path: str | os.PathLike, model: Model) -> dict[str, list[str]]:
    """Groups from a YAML file mapping each group name to a list of parameter names or
    patterns (see :func:`match_groups`)."""
    import yaml

    try:
        with open(path) as f:
            loaded = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as error:
        raise InputError(f"cannot read groups: {error}", file=str(path)) from None
    if not isinstance(loaded, dict) or not all(
        isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
        for v in loaded.values()
    ):
        raise InputError(
            "groups must be a mapping of group names to lists of parameter names or patterns",
            file=str(path),
        )
    return match_groups(model, loaded)


def grouped_impacts(
    model: Model,
    groups: Mapping[str, Iterable[str]],
    *,
    fit: BestFit | None = None,
    options: FitOptions = DEFAULT_OPTIONS,
) -> pd.DataFrame:
    """The impact of each group on the POI: one row per group after a first row
    ``total`` (the POI's uncertainty). Columns ``group``, ``parameters`` (how many),
    ``uncertainty`` (σ_μ with the group held; σ_μ for ``total``), ``impact``
    (sqrt(σ_μ² − σ_μ,g²); σ_μ for ``total``), ``status`` and ``message``.

    ``groups`` maps names to parameter names (as :func:`match_groups` returns them).
    """
    fit = best_fit(model, options=options) if fit is None else fit
    index = {name: p for p, name in enumerate(model.parameter_names)}
    masks = []
    for group, members in groups.items():
        if group == TOTAL:
            raise InvalidSettings(f"{TOTAL!r} names the total uncertainty: rename that group")
        unknown = [name for name in members if name not in index]
        if unknown:
            raise InvalidSettings(f"group {group!r}: no parameter named {unknown[0]!r}")
        mask = fit.fixed.copy()
        mask[[index[name] for name in members]] = True
        if mask[model.poi_index]:
            raise InvalidSettings(f"group {group!r} holds the POI")
        masks.append(mask)
    poi = model.poi_index
    total = float(fit.uncertainties[poi])
    rows = [
        {
            "group": TOTAL,
            "parameters": int((~fit.fixed).sum()) - 1,
            "uncertainty": total,
            "impact": total,
            "status": "ok",
            "message": "",
        }
    ]
    if masks:
        rows += _group_rows(model, fit, list(groups), np.array(masks), options)
    return pd.DataFrame(rows)


def _group_rows(model, fit: BestFit, names, masks, options) -> list[dict]:
    """One batched fit per group (its parameters held at the best fit), then the POI's
    Hesse uncertainty of each."""
    n = len(masks)
    data = jnp.broadcast_to(jnp.asarray(fit.data), (n, len(fit.data)))
    found = fit_batch(
        model.structure,
        model.numbers,
        data,
        init=np.tile(fit.pars, (n, 1)),
        fixed=masks,
        options=options,
    )
    poi = model.poi_index
    total = fit.uncertainties[poi]
    rows = []
    for k, (group, mask) in enumerate(zip(names, masks, strict=True)):
        _, errors = hesse_uncertainties(
            model.structure, model.numbers, found.pars[k], fit.data, mask
        )
        held = float(errors[poi])
        ok = bool(found.converged[k])
        rows.append(
            {
                "group": group,
                "parameters": int((mask & ~fit.fixed).sum()),
                "uncertainty": held if ok else np.nan,
                "impact": float(np.sqrt(max(total**2 - held**2, 0.0))) if ok else np.nan,
                "status": "ok" if ok else "failed",
                "message": "" if ok else str(found.message[k]),
            }
        )
    return rows
