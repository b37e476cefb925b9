"""The seven HistFactory modifier types and their facts, written once (pyhf 0.7.6's).

Everything that depends on a modifier's type — validation of measurement settings,
compilation, the padding of union structures, pruning, HS3 conversion, the post-fit
report — reads it from :data:`MODIFIERS`, so adding a type or changing a default
touches this table only.

For each type:

* ``constraint``: ``"normal"`` (Gaussian auxiliary measurement), ``"poisson"`` (shapesys:
  ``Poisson(τ·γ)``) or None (free);
* ``per_bin``: one parameter component a bin (``name[0]``, ``name[1]``, …) or one scalar;
* ``effect``: how the parameter acts on a sample's yields: ``"scale"`` (its value
  multiplies them), ``"normsys"`` (an interpolated factor) or ``"histosys"`` (an
  interpolated shift);
* ``init`` and ``bounds``: pyhf's defaults (None for lumi, which the measurement must set
  up); ``init`` is also the neutral value of a padded parameter (no effect);
* ``settings``: the keys a measurement's ``parameters`` entry may set for it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "GAMMA_TYPES",
    "HISTOSYS_CODES",
    "INTERPOLATED_TYPES",
    "MODIFIERS",
    "MODIFIER_TYPES",
    "NORMSYS_CODES",
    "PER_BIN_TYPES",
    "SCALE_TYPES",
    "SHAREABLE_TYPES",
    "UNCONSTRAINED_TYPES",
    "ModifierType",
]


@dataclass(frozen=True)
class ModifierType:
    """The facts of one modifier type (see the module docstring)."""

    name: str
    constraint: str | None
    per_bin: bool
    effect: str
    init: float | None
    bounds: tuple[float, float] | None
    settings: frozenset[str]


def _type(name, constraint, per_bin, effect, init, bounds, *settings) -> ModifierType:
    return ModifierType(name, constraint, per_bin, effect, init, bounds, frozenset(settings))


_NUISANCE = (-5.0, 5.0)
_GAMMA = (1e-10, 10.0)
_FREE = (0.0, 10.0)

#: Every type, in the order pyhf registers their parameters (pyhf's parameter order groups
#: parameters by it, so results compare vector to vector).
MODIFIERS: dict[str, ModifierType] = {
    t.name: t
    for t in (
        _type(
            "histosys", "normal", False, "histosys", 0.0, _NUISANCE, "inits", "bounds", "auxdata"
        ),
        _type("lumi", "normal", False, "scale", None, None, "inits", "bounds", "auxdata", "sigmas"),
        _type("normfactor", None, False, "scale", 1.0, _FREE, "inits", "bounds"),
        _type("normsys", "normal", False, "normsys", 0.0, _NUISANCE, "inits", "bounds", "auxdata"),
        _type("shapefactor", None, True, "scale", 1.0, _FREE, "inits", "bounds"),
        _type(
            "shapesys",
            "poisson",
            True,
            "scale",
            1.0,
            _GAMMA,
            "inits",
            "bounds",
            "auxdata",
            "factors",
        ),
        _type(
            "staterror",
            "normal",
            True,
            "scale",
            1.0,
            _GAMMA,
            "inits",
            "bounds",
            "auxdata",
            "sigmas",
        ),
    )
}
MODIFIER_TYPES = tuple(MODIFIERS)
#: types with one parameter component a bin
PER_BIN_TYPES = frozenset(t.name for t in MODIFIERS.values() if t.per_bin)
#: types whose parameter's value multiplies the yields (rows of the factor mask)
SCALE_TYPES = frozenset(t.name for t in MODIFIERS.values() if t.effect == "scale")
#: types whose effect is interpolated between ±1σ templates
INTERPOLATED_TYPES = frozenset(t.name for t in MODIFIERS.values() if t.effect != "scale")
#: types without a constraint term (free parameters)
UNCONSTRAINED_TYPES = frozenset(t.name for t in MODIFIERS.values() if t.constraint is None)
#: per-bin constrained types: the γ's of MC statistics, centred at 1
GAMMA_TYPES = frozenset(t.name for t in MODIFIERS.values() if t.per_bin and t.constraint)
#: the only types that may share one parameter name (they describe one nuisance)
SHAREABLE_TYPES = INTERPOLATED_TYPES

#: the interpolation codes of normsys and histosys (pyhf's names; the formulas are in
#: :mod:`hfpipe.model.interpolation`)
NORMSYS_CODES = ("code1", "code4")
HISTOSYS_CODES = ("code0", "code2", "code4p")
