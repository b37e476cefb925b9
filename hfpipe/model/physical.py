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


def _variations(structure: Structure, numbers: Numbers) -> tuple[list[tuple], np.ndarray]:
    """The slot yields of the nominal model (row 0) and of the -1σ and +1σ variation of
    each normsys/histosys parameter in turn (rows 1, 2, ...), all at once; and for each
    row its (parameter index, sign), (None, 0) for the nominal."""
    nominal = np.asarray(numbers.nominal, dtype=float)
    params = sorted(set(structure.normsys_params) | set(structure.histosys_params))
    additive = np.tile(nominal, (2, len(params), 1))  # [sign -, sign +][parameter][slot]
    factor = np.ones_like(additive)
    position = {p: k for k, p in enumerate(params)}
    if structure.histosys_params:
        at = [position[p] for p in structure.histosys_params]
        additive[0, at] = nominal - np.asarray(numbers.histosys_down)
        additive[1, at] = nominal + np.asarray(numbers.histosys_up)
    if structure.normsys_params:
        at = [position[p] for p in structure.normsys_params]
        factor[0, at] = np.asarray(numbers.normsys_lo)
        factor[1, at] = np.asarray(numbers.normsys_hi)
    varied = (additive * factor).transpose(1, 0, 2).reshape(2 * len(params), len(nominal))
    labels = [(None, 0)] + [(p, sign) for p in params for sign in (-1, 1)]
    return labels, np.concatenate([nominal[None], varied])


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
    labels_of_rows, yields = _variations(structure, numbers)
    huge = np.abs(yields) > MAX_YIELD
    if huge.any():
        row = int(np.flatnonzero(huge.any(axis=1))[0])
        (parameter, sign), slots = labels_of_rows[row], yields[row]
        first = int(np.flatnonzero(huge[row])[0])
        channel, sample, local_bin = labels[first]
        name = None if parameter is None else names[parameter]
        kind = "histosys" if parameter in structure.histosys_params else "normsys"
        where = "nominal" if name is None else f"{'+' if sign > 0 else '-'}1σ {kind} '{name}'"
        raise UnphysicalModel(
            f"expected yield {slots[first]:g} of sample '{sample}' in bin {local_bin} "
            f"of channel '{channel}' ({where}) is not a plausible number of events "
            f"(above {MAX_YIELD:g}): fix the input",
            file=file,
            path=_json_path(workspace, channel, sample, name, kind if name else None),
        )
    if structure.clip_yields:
        return
    totals = _bin_totals(yields, slot_bin, structure.n_bins)
    wrong = (totals < 0) | ((totals <= 0) & (observed > 0))
    if not wrong.any():
        return
    row = int(np.flatnonzero(wrong.any(axis=1))[0])
    (parameter, sign), slots = labels_of_rows[row], yields[row]
    b = int(np.flatnonzero(wrong[row])[0])
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
        f"expected yield {totals[row, b]:g} in bin {local_bin} of channel '{channel}' "
        f"{where}, with {observed[b]:g} observed events; sample '{sample}' contributes "
        f"{slots[culprit]:g} there: {_OPTIONS}",
        file=file,
        path=_json_path(workspace, channel, sample, name, kind),
    )


def _bin_totals(yields: np.ndarray, slot_bin: np.ndarray, n_bins: int) -> np.ndarray:
    """Per row of slot yields, the total of each bin (summed in slot order, as a
    ``np.bincount`` of each row would)."""
    rows = len(yields)
    where = (np.arange(rows)[:, None] * n_bins + slot_bin[None, :]).ravel()
    totals = np.bincount(where, weights=yields.ravel(), minlength=rows * n_bins)
    return totals.reshape(rows, n_bins)
