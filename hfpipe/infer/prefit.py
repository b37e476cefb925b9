"""Pre-fit values and widths of a model's parameters, read off their constraint terms.

A constrained parameter's pre-fit value is the centre of its constraint (its auxiliary
datum: 0 for normsys and histosys, 1 for lumi and staterror; aux/τ = 1 for a shapesys
γ) and its pre-fit width σ the constraint's: the Gaussian σ (1 for normsys and
histosys, the combined relative MC uncertainty of the bin for staterror, the
measurement's for lumi) or 1/sqrt(τ) for a shapesys γ, the standard deviation of aux/τ
under its Poisson constraint (pyhf's ``width()``). These are what a pull is measured
in and what a pre-fit impact and the pre-fit yield uncertainty vary a parameter by.

Parameters without a constraint (normfactor, shapefactor) have no pre-fit width: σ = 0
(cabinetry's ``prefit_uncertainties`` convention) and they keep their initial value.
Fixed parameters have σ = 0 too and keep their initial value, the value every fit holds
them at (cabinetry takes a fixed constrained parameter's constraint centre instead; the
two agree unless a measurement fixes a parameter away from its centre).
"""

from __future__ import annotations

import numpy as np

from hfpipe.model.structure import Numbers, Structure

__all__ = ["FREE_TYPES", "GAMMA_TYPES", "modifier_types", "prefit_uncertainties", "prefit_values"]

#: modifier types of the per-bin γ parameters (centred at 1, one per bin)
GAMMA_TYPES = ("shapesys", "staterror")
#: modifier types of the parameters without a constraint term
FREE_TYPES = ("normfactor", "shapefactor")


def modifier_types(structure: Structure) -> tuple[str, ...]:
    """The modifier type of every parameter, in parameter order: ``normsys``,
    ``histosys``, ``lumi``, ``staterror``, ... A parameter that a normsys and a histosys
    share (the usual way a systematic with a normalisation and a shape part is written)
    is ``histosys+normsys``."""
    normsys, histosys = set(structure.normsys_params), set(structure.histosys_params)
    types = []
    for ps in structure.parameter_sets:
        for p in range(ps.start, ps.start + ps.size):
            if ps.kind in ("histosys", "normsys"):
                roles = (("histosys", p in histosys), ("normsys", p in normsys))
                types.append("+".join(kind for kind, acts in roles if acts))
            else:
                types.append(ps.kind)
    return tuple(types)


def _constraint_widths(structure: Structure, numbers: Numbers) -> tuple[np.ndarray, np.ndarray]:
    """Centre and width of every parameter's constraint (NaN where it has none)."""
    centre = np.full(structure.n_parameters, np.nan)
    width = np.full(structure.n_parameters, np.nan)
    auxdata = np.asarray(numbers.auxdata, dtype=float)
    normal, poisson = list(structure.normal_params), list(structure.poisson_params)
    centre[normal] = auxdata[list(structure.normal_aux)]
    width[normal] = np.asarray(numbers.normal_sigma, dtype=float)
    tau = np.asarray(numbers.poisson_factor, dtype=float)
    centre[poisson] = auxdata[list(structure.poisson_aux)] / tau
    width[poisson] = 1.0 / np.sqrt(tau)
    return centre, width


def prefit_values(structure: Structure, numbers: Numbers) -> np.ndarray:
    """Pre-fit value of every parameter: its constraint centre, or its initial value
    where it has no constraint or is fixed. ``numbers``: one model (no batch axis)."""
    centre, _ = _constraint_widths(structure, numbers)
    init = np.asarray(numbers.init, dtype=float)
    keep_init = np.isnan(centre) | np.asarray(numbers.fixed, dtype=bool)
    return np.where(keep_init, init, centre)


def prefit_uncertainties(structure: Structure, numbers: Numbers) -> np.ndarray:
    """Pre-fit width σ of every parameter: its constraint's, 0 where it has none or is
    fixed. ``numbers``: one model (no batch axis)."""
    _, width = _constraint_widths(structure, numbers)
    free_of_constraint = np.isnan(width) | np.asarray(numbers.fixed, dtype=bool)
    return np.where(free_of_constraint, 0.0, width)
