"""``Model``: a compiled workspace with pyhf-like methods, and ``compile_model``.

The jitted functions live in a cache keyed by :class:`Structure`, so every model of a
structure (other signal points, toys) reuses the same compiled code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hfpipe import _jax  # noqa: F401  (double precision)
from hfpipe.model import likelihood
from hfpipe.model.compile import compile_workspace
from hfpipe.model.layout_cache import per_layout
from hfpipe.model.physical import check_yields
from hfpipe.model.structure import Numbers, Structure

__all__ = ["Model", "compile_model", "compiled_functions"]


@per_layout
def compiled_functions(structure):
    """Jitted ``logpdf``, ``expected_data`` and ``expected_main`` for one structure."""

    def bind(fn):
        def with_prepared(numbers, *args):
            return fn(structure, likelihood.prepare(structure, numbers), *args)

        return jax.jit(with_prepared)

    return _Functions(
        logpdf=bind(likelihood.logpdf),
        expected_data=bind(likelihood.expected_data),
        expected_main=bind(likelihood.expected_main),
    )


@dataclass(frozen=True)
class _Functions:
    logpdf: Any
    expected_data: Any
    expected_main: Any


@dataclass(frozen=True)
class Model:
    """A compiled HistFactory model: static ``structure`` plus array ``numbers``."""

    structure: Structure
    numbers: Numbers

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return self.structure.parameter_names

    @property
    def poi_index(self) -> int:
        return self.structure.poi_index

    @property
    def poi_name(self) -> str:
        return self.structure.poi_name

    def init(self) -> np.ndarray:
        return np.asarray(self.numbers.init)

    def bounds(self) -> np.ndarray:
        return np.stack([self.numbers.lower, self.numbers.upper], axis=-1)

    def fixed(self) -> np.ndarray:
        return np.asarray(self.numbers.fixed)

    def observed_data(self) -> np.ndarray:
        """Observed main counts followed by the auxiliary data (pyhf's ``data``)."""
        return np.concatenate([self.numbers.observed, self.numbers.auxdata])

    def logpdf(self, pars, data) -> jax.Array:
        fns = compiled_functions(self.structure)
        return fns.logpdf(self.numbers, jnp.asarray(pars, float), jnp.asarray(data, float))

    def expected_data(self, pars, *, include_auxdata: bool = True) -> jax.Array:
        fns = compiled_functions(self.structure)
        pars = jnp.asarray(pars, float)
        if include_auxdata:
            return fns.expected_data(self.numbers, pars)
        return fns.expected_main(self.numbers, pars)


def compile_model(
    workspace: Mapping | str | PathLike,
    *,
    patches: Sequence = (),
    measurement: str | None = None,
    normsys_code: str = "code4",
    histosys_code: str = "code4p",
    clip_negative_yields: bool = False,
    file: str | None = None,
) -> Model:
    """Compile a workspace (a path or a loaded dict), optionally patched, into a Model.

    ``patches`` are JSON Patch lists or patchset ``Patch`` objects applied in order.
    ``measurement`` picks a measurement by name (default: the first, as pyhf).
    Interpolation codes default to normsys ``code4`` and histosys ``code4p``, what ROOT
    HistFactory and ``pyhf.Model`` use and what published likelihoods were made with.
    ``file`` names the workspace in error messages.

    Before returning, the expected yields are checked (:func:`~hfpipe.model.physical.
    check_yields`): a negative yield, or a zero one in a bin with observed events, raises
    :class:`~hfpipe.errors.UnphysicalModel` naming the channel, sample, bin and modifier.
    ``clip_negative_yields=True`` clips expected bin yields at a small positive floor in
    the likelihood instead (off by default; non-positive normsys factors still raise).
    """
    from hfpipe import spec

    if file is None:
        file = str(workspace) if not isinstance(workspace, Mapping) else "<workspace>"
    ws = spec.load_workspace(workspace, name=file)
    if patches:
        ws = spec.apply_patches(ws, list(patches), file=file, base_valid=True)
    spec.measurement_config(ws, measurement, file=file)  # validates the choice
    name = measurement or ws["measurements"][0]["name"]
    chosen = next(m for m in ws["measurements"] if m["name"] == name)
    structure, numbers = compile_workspace(
        ws,
        chosen,
        normsys_code=normsys_code,
        histosys_code=histosys_code,
        clip_yields=clip_negative_yields,
        file=file,
    )
    check_yields(structure, numbers, workspace=ws, file=file)
    return Model(structure, numbers)
