"""Pre-fit check that a model's expected yields are physical: positive where it matters.

A Poisson mean must be positive in a bin with observed events (and must never be
negative). pyhf lets a negative yield through to the optimiser, which answers with
"Inequality constraints incompatible" or a NaN; hfpipe checks before fitting and names
the channel, sample, bin and modifier responsible.

Checked, per bin, with every other parameter at its nominal value (normsys and histosys
at 0, multiplicative factors at 1): the nominal yield, and the yield at the -1σ and +1σ
variation of each normsys/histosys parameter (all samples that share the parameter vary
together, as in the fit). At ±1σ every interpolation code gives exactly the ``lo``/``hi``
template, so the check is plain numpy and independent of the codes. Beyond ±1σ the
extrapolated yield of a histosys may cross zero at large pulls; the fit's line search
steps back from there, so that is not an input error. A normsys factor ``hi`` or ``lo``
that is not positive is always an error: the exponential interpolation of codes 1 and 4
is undefined for it; so is a yield or observed count above :data:`MAX_YIELD`.

With ``clip_negative_yields`` (off by default, recorded in a scan's provenance) a model
with such yields is fitted anyway, with expected bin yields clipped at
:data:`hfpipe.model.likelihood.YIELD_FLOOR` in the likelihood.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hfpipe.errors import UnphysicalModel
from hfpipe.model.structure import Numbers, Structure

__all__ = ["MAX_YIELD", "check_yields"]

_OPTIONS = "fix the input, or pass --clip-negative-yields (clip_negative_yields=True) to clip"

#: no bin of a counting experiment expects more events than this; larger yields (a typo,
#: 1e308) overflow the likelihood's derivatives and leave the fit churning for minutes
MAX_YIELD = 1e15


def _variations(structure: Structure, numbers: Numbers):
    """(parameter index, sign, slot yields) of the nominal and each ±1σ variation."""
    nominal = np.asarray(numbers.nominal, dtype=float)
    yield_ = [(None, 0, nominal)]
    normsys_row = {p: r for r, p in enumerate(structure.normsys_params)}
    histosys_row = {p: r for r, p in enumerate(structure.histosys_params)}
    hi, lo = np.asarray(numbers.normsys_hi), np.asarray(numbers.normsys_lo)
    up, down = np.asarray(numbers.histosys_up), np.asarray(numbers.histosys_down)
    for p in sorted(set(normsys_row) | set(histosys_row)):
        for sign in (-1, 1):
            additive = nominal.copy()
            factor = np.ones_like(nominal)
            if p in histosys_row:
                h = histosys_row[p]
                additive = nominal + (up[h] if sign > 0 else -down[h])
            if p in normsys_row:
                s = normsys_row[p]
                factor = hi[s] if sign > 0 else lo[s]
            yield_.append((p, sign, additive * factor))
    return yield_


def _json_path(ws: Mapping | None, channel: str, sample: str, parameter: str | None, kind: str):
    """JSON path of the responsible entry in the workspace, where it can be found."""
    if ws is None:
        return ""
    for c, ch in enumerate(ws.get("channels", [])):
        if ch.get("name") != channel:
            continue
        for s, sa in enumerate(ch.get("samples", [])):
            if sa.get("name") != sample:
                continue
            if parameter is None:
                return ["channels", c, "samples", s, "data"]
            for m, mod in enumerate(sa.get("modifiers", [])):
                if mod.get("name") == parameter and mod.get("type") == kind:
                    return ["channels", c, "samples", s, "modifiers", m, "data"]
            return ["channels", c, "samples", s]
    return ""


def check_yields(
    structure: Structure,
    numbers: Numbers,
    *,
    workspace: Mapping | None = None,
    file: str | None = None,
) -> None:
    """Raise :class:`~hfpipe.errors.UnphysicalModel` for the first unphysical yield.

    Where the structure clips yields (the user opted in), only the normsys factors are
    checked: clipping cannot repair an undefined interpolation.
    ``numbers`` is one model (no batch axis). ``workspace`` (the patched workspace the
    model was compiled from) lets the error carry the JSON path of the responsible
    sample data or modifier; ``file`` labels it.
    """
    labels = structure.slot_labels
    names = structure.parameter_names
    observed = np.asarray(numbers.observed, dtype=float)
    slot_bin = np.asarray(structure.slot_bin, dtype=int)
    hi, lo = np.asarray(numbers.normsys_hi), np.asarray(numbers.normsys_lo)
    bad = np.argwhere((hi <= 0) | (lo <= 0))
    if len(bad):
        row, slot = bad[0]
        channel, sample, b = labels[slot]
        name = names[structure.normsys_params[row]]
        value, which = (hi[row, slot], "hi") if hi[row, slot] <= 0 else (lo[row, slot], "lo")
        raise UnphysicalModel(
            f"normsys '{name}' of sample '{sample}' in channel '{channel}' has {which} = "
            f"{value:g} in bin {b}; normsys factors must be positive (the interpolation "
            "takes their logarithm): fix the input",
            file=file,
            path=_json_path(workspace, channel, sample, name, "normsys"),
        )
    big = np.flatnonzero(np.abs(observed) > MAX_YIELD)
    if len(big):
        raise UnphysicalModel(
            f"observed count {observed[big[0]]:g} is not a plausible number of events "
            f"(above {MAX_YIELD:g}): fix the input",
            file=file,
            path="observations",
        )
    for parameter, sign, slots in _variations(structure, numbers):
        huge = np.flatnonzero(np.abs(slots) > MAX_YIELD)
        if len(huge):
            channel, sample, local_bin = labels[huge[0]]
            name = None if parameter is None else names[parameter]
            kind = "histosys" if parameter in structure.histosys_params else "normsys"
            where = "nominal" if name is None else f"{'+' if sign > 0 else '-'}1σ {kind} '{name}'"
            raise UnphysicalModel(
                f"expected yield {slots[huge[0]]:g} of sample '{sample}' in bin {local_bin} "
                f"of channel '{channel}' ({where}) is not a plausible number of events "
                f"(above {MAX_YIELD:g}): fix the input",
                file=file,
                path=_json_path(workspace, channel, sample, name, kind if name else None),
            )
    if structure.clip_yields:
        return
    for parameter, sign, slots in _variations(structure, numbers):
        totals = np.bincount(slot_bin, weights=slots, minlength=structure.n_bins)
        wrong = (totals < 0) | ((totals <= 0) & (observed > 0))
        if not wrong.any():
            continue
        b = int(np.flatnonzero(wrong)[0])
        in_bin = np.flatnonzero(slot_bin == b)
        culprit = in_bin[np.argmin(slots[in_bin])]
        channel, sample, local_bin = labels[culprit]
        if parameter is None:
            where, kind, name = "from the nominal templates (no modifier involved)", None, None
        else:
            name = names[parameter]
            kind = "histosys" if parameter in structure.histosys_params else "normsys"
            where = f"at the {'+' if sign > 0 else '-'}1σ variation of {kind} '{name}'"
        raise UnphysicalModel(
            f"expected yield {totals[b]:g} in bin {local_bin} of channel '{channel}' "
            f"{where}, with {observed[b]:g} observed events; sample '{sample}' contributes "
            f"{slots[culprit]:g} there: {_OPTIONS}",
            file=file,
            path=_json_path(workspace, channel, sample, name, kind),
        )
