"""The two halves of a compiled model: a hashable structure and a pytree of numbers.

``Structure`` says *what* the model is (parameters, their roles, which parameter acts
on which slot, interpolation codes); it is static, hashable, and keys the cache of
compiled functions. ``Numbers`` holds *how much* (templates, variations, constraint
widths, observed data, starting values and bounds) as arrays, so models of one
structure (signal points of a patchset, toys) stack along a leading batch axis and go
through ``jax.vmap`` together without recompiling.

A *slot* is one (channel, sample, bin) yield. Expected counts of bin ``b`` are the sum
over the slots whose ``slot_bin`` is ``b`` of

    (nominal + Σ histosys deltas) × Π normsys factors × Π free/constrained factors

where the last product runs over normfactor, lumi, shapefactor, staterror and shapesys
parameters, selected per slot by ``factor_mask``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

import numpy as np
from jaxtyping import Bool, Float

from hfpipe.spec.modifiers import MODIFIERS

if TYPE_CHECKING:  # a structure and its numbers are made and stacked without JAX
    import jax

__all__ = ["Array", "Layout", "Numbers", "ParameterSet", "Structure"]


@dataclass(frozen=True)
class ParameterSet:
    """A named group of parameters: one for scalar modifiers, one per bin otherwise."""

    name: str
    kind: str  # a modifier type; for normsys+histosys sharing a name, the first seen
    start: int
    size: int
    constraint: str | None  # "normal", "poisson" or None (free)

    @property
    def is_scalar(self) -> bool:
        return not MODIFIERS[self.kind].per_bin

    @property
    def component_names(self) -> tuple[str, ...]:
        """pyhf's names: ``mu_SIG`` for scalars, ``staterror_CR[0]`` per component."""
        if self.is_scalar:
            return (self.name,)
        return tuple(f"{self.name}[{i}]" for i in range(self.size))


@dataclass(frozen=True)
class Structure:
    """Static description of a model; equal structures share compiled functions."""

    parameter_sets: tuple[ParameterSet, ...]
    poi_name: str
    channels: tuple[str, ...]  # sorted by name, as pyhf orders its data
    channel_bins: tuple[int, ...]
    slot_labels: tuple[tuple[str, str, int], ...]  # (channel, sample, bin) of each slot
    slot_bin: tuple[int, ...]  # global bin of each slot
    factor_params: tuple[int, ...]  # parameters that multiply slots (rows of factor_mask)
    normsys_params: tuple[int, ...]
    histosys_params: tuple[int, ...]
    normal_params: tuple[int, ...]  # Gaussian-constrained, in auxdata order
    poisson_params: tuple[int, ...]
    normal_aux: tuple[int, ...]  # position of each normal constraint in the auxdata
    poisson_aux: tuple[int, ...]
    normsys_code: str = "code4"
    histosys_code: str = "code4p"
    clip_yields: bool = False  # opt-in: expected bin yields clipped at a small floor

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(n for ps in self.parameter_sets for n in ps.component_names)

    @property
    def n_parameters(self) -> int:
        return sum(ps.size for ps in self.parameter_sets)

    @property
    def n_bins(self) -> int:
        return sum(self.channel_bins)

    @property
    def n_aux(self) -> int:
        return len(self.normal_params) + len(self.poisson_params)

    @property
    def poi_index(self) -> int:
        return self.parameter_set(self.poi_name).start

    @property
    def layout(self) -> Layout:
        """The part of the structure that compiled code depends on (no names)."""
        return Layout(
            n_parameters=self.n_parameters,
            n_bins=self.n_bins,
            slot_bin=self.slot_bin,
            factor_params=self.factor_params,
            normsys_params=self.normsys_params,
            histosys_params=self.histosys_params,
            normal_params=self.normal_params,
            poisson_params=self.poisson_params,
            normal_aux=self.normal_aux,
            poisson_aux=self.poisson_aux,
            normsys_code=self.normsys_code,
            histosys_code=self.histosys_code,
            clip_yields=self.clip_yields,
        )

    def parameter_set(self, name: str) -> ParameterSet:
        for ps in self.parameter_sets:
            if ps.name == name:
                return ps
        raise KeyError(name)

    def parameter_index(self, name: str) -> int:
        """Index of a parameter component by its pyhf name (``gamma[2]`` or ``mu``)."""
        return self.parameter_names.index(name)


@dataclass(frozen=True)
class Layout:
    """Index arrays and sizes of a structure, without names.

    Compiled functions are cached per layout: signal points whose parameters differ
    only by name (``shape_mcstat_<point>_SR``) share one compilation.
    """

    n_parameters: int
    n_bins: int
    slot_bin: tuple[int, ...]
    factor_params: tuple[int, ...]
    normsys_params: tuple[int, ...]
    histosys_params: tuple[int, ...]
    normal_params: tuple[int, ...]
    poisson_params: tuple[int, ...]
    normal_aux: tuple[int, ...]
    poisson_aux: tuple[int, ...]
    normsys_code: str
    histosys_code: str
    clip_yields: bool = False

    @property
    def n_aux(self) -> int:
        return len(self.normal_params) + len(self.poisson_params)


#: a JAX or a NumPy array (shapes are written with jaxtyping: ``Float[Array, "slots"]``)
Array: TypeAlias = "jax.Array | np.ndarray"


class Numbers(NamedTuple):
    """Arrays of a model; every field may carry a leading batch axis.

    Dimensions: ``slots`` (channel, sample, bin) yields, ``bins``, ``parameters``, the
    rows of each effect (``factors``: parameters that multiply slots, ``normsys``,
    ``histosys``), the constraint terms (``normal``, ``poisson``) and their auxiliary
    data (``aux`` = normal + poisson)."""

    nominal: Float[Array, "*batch slots"]  # nominal yield per slot
    factor_mask: Bool[Array, "*batch factors slots"]  # factor parameter f acts on slot n
    normsys_hi: Float[Array, "*batch normsys slots"]  # +1σ factor (1: no effect)
    normsys_lo: Float[Array, "*batch normsys slots"]  # -1σ factor (1: no effect)
    histosys_up: Float[Array, "*batch histosys slots"]  # hi - nominal (0: no effect)
    histosys_down: Float[Array, "*batch histosys slots"]  # nominal - lo (0: no effect)
    normal_sigma: Float[Array, "*batch normal"]  # widths of the Gaussian constraints
    poisson_factor: Float[Array, "*batch poisson"]  # tau of the Poisson constraints
    observed: Float[Array, "*batch bins"]  # observed main counts
    auxdata: Float[Array, "*batch aux"]  # observed auxiliary data
    init: Float[Array, "*batch parameters"]  # starting values
    lower: Float[Array, "*batch parameters"]  # lower bounds
    upper: Float[Array, "*batch parameters"]  # upper bounds
    fixed: Bool[Array, "*batch parameters"]  # held constant in fits
