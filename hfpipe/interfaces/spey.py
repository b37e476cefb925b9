"""hfpipe as a spey backend: ``spey.get_backend("hfpipe.full_statistical_model")``.

It takes what spey-pyhf's full-likelihood backend (``spey.get_backend("pyhf")``) takes —
a background-only workspace (a dict or a path) and a signal patch (a JSON Patch list) —
or, instead of the patch, the signal yields of each channel (``signal_yields``, with
``signal_uncertainties`` and a signal config as for ``hfpipe scan --signals``). spey's
questions (likelihood at a POI value, the best fit, exclusion confidence levels observed
and expected, upper limits on mu, their Asimov and pre-fit variants) are answered with
hfpipe's fits, through the fast paths spey's :class:`~spey.BackendBase` offers
(``negative_loglikelihood``, ``minimize_negative_loglikelihood`` and their Asimov
twins), never spey's own optimiser. The model is the one ``hfpipe cls`` fits: normsys
code4, histosys code4p by default; the POI's bounds are spey-pyhf's (at least zero unless
spey allows a negative signal, at most ``poi_upper_bound``, 10).

Models made on one background-only workspace (the same dict object, or path) are fitted
together where they ask the same question (:mod:`hfpipe.interfaces.spey_batch`), in
batches of ``batch_size`` (default: the scan's, 1 on a CPU, 64 on an accelerator).

Registered under spey's plugin entry point (``spey.backend.plugins`` in
``pyproject.toml``); needs ``pip install 'hfpipe[spey]'``. spey's likelihood methods
return -log L here also when asked for L (``return_nll=False``): spey does not pass that
choice on to a backend's fast paths.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from spey.base import BackendBase, ModelConfig
from spey.utils import ExpectationType

from hfpipe import __version__, _jax, spec  # noqa: F401  (_jax: hfpipe's JAX settings first)
from hfpipe.interfaces.spey_batch import (
    Background,
    DataKey,
    FitKey,
    FitRow,
    background_yields,
    fit_rows,
)
from hfpipe.model import compiled_functions
from hfpipe.scanning.run import default_batch_size

__all__ = ["FullStatisticalModel"]

#: spey-pyhf's bounds on a negative POI: no lower than this
_LOWEST_POI = -10.0


class FullStatisticalModel(BackendBase):
    """A full HistFactory likelihood (background-only workspace + one signal), fitted by
    hfpipe. See the module's documentation."""

    name: str = "hfpipe.full_statistical_model"
    version: str = __version__
    author: str = "hfpipe developers"
    spey_requires: str = ">=0.2.6,<0.3.0"
    doi: ClassVar[list[str]] = []
    arXiv: ClassVar[list[str]] = []

    def __init__(
        self,
        signal_patch: list[dict] | None = None,
        background_only_model: Mapping | str | None = None,
        *,
        signal_yields: Mapping[str, list[float]] | None = None,
        signal_uncertainties: Mapping[str, list[float]] | None = None,
        signals_config: Mapping | str | None = None,
        measurement: str | None = None,
        normsys_code: str = "code4",
        histosys_code: str = "code4p",
        batch_size: int | None = None,
    ):
        if background_only_model is None:
            raise spec.InvalidSignals("no background_only_model given")
        self.background = Background.of(
            background_only_model,
            measurement=measurement,
            normsys_code=normsys_code,
            histosys_code=histosys_code,
            batch_size=batch_size or default_batch_size(),
        )
        if (signal_patch is None) == (signal_yields is None):
            raise spec.InvalidSignals("give a signal_patch or signal_yields (exactly one)")
        if signal_patch is None:
            signal_patch = self._patch_of(signal_yields, signal_uncertainties, signals_config)
        self.structure, self.numbers = self.background.compile(signal_patch)
        self._signal = _signal_yields(signal_patch, self.background.workspace)
        self._minimum_poi = _minimum_poi(self._signal, self.background.workspace)
        self._apriori = background_yields(self.background.workspace, self.structure.channels)
        self.fits: dict[FitKey, FitRow] = {}
        self.background.join(self)

    def _patch_of(self, yields, uncertainties, config) -> spec.Patch:
        """The signal patch of per-channel yields, made as ``hfpipe scan --signals``
        makes it (:mod:`hfpipe.spec.signals`)."""
        rows = []
        for channel, values in yields.items():
            for b, value in enumerate(values):
                row = {"point": "signal", "channel": channel, "bin": b, "yield": value}
                if uncertainties is not None:
                    row["uncertainty"] = uncertainties[channel][b]
                rows.append(row)
        signals = spec.load_signals(pd.DataFrame(rows), config)
        bound = signals.bind(
            self.background.workspace, measurement=self.background.settings.measurement
        )
        return bound["signal"]

    @property
    def is_alive(self) -> bool:
        """Whether some bin has a positive signal yield."""
        return any(np.any(np.asarray(v) > 0) for v in self._signal.values())

    def config(self, allow_negative_signal: bool = True, poi_upper_bound: float = 10.0):
        """Parameters in hfpipe's (= pyhf's) order; the POI bounded as spey-pyhf bounds it."""
        bounds = [tuple(b) for b in np.stack([self.numbers.lower, self.numbers.upper], -1)]
        poi = self.structure.poi_index
        bounds[poi] = self._poi_bounds(allow_negative_signal, poi_upper_bound)
        return ModelConfig(
            poi_index=poi,
            minimum_poi=self._minimum_poi,
            suggested_init=[float(v) for v in self.numbers.init],
            suggested_bounds=[(float(lo), float(hi)) for lo, hi in bounds],
            parameter_names=list(self.structure.parameter_names),
            suggested_fixed=[bool(v) for v in self.numbers.fixed],
        )

    def _poi_bounds(self, negative: bool, upper: float | None = 10.0) -> tuple[float, float]:
        lower = max(self._minimum_poi, _LOWEST_POI) if negative else 0.0
        poi = self.structure.poi_index
        return lower, float(upper if upper else self.numbers.upper[poi])

    # --- what the batched fits ask of a model (hfpipe.interfaces.spey_batch) ---

    def numbers_for(self, key: FitKey, init=None, bounds=None):
        """The numbers of a fit: spey's POI bounds (wide enough for a held POI), or the
        caller's ``bounds`` and ``init``."""
        lower, upper = np.array(self.numbers.lower), np.array(self.numbers.upper)
        if bounds is not None:
            lower, upper = (np.asarray(b, dtype=float) for b in zip(*bounds, strict=True))
        else:
            poi = self.structure.poi_index
            lower[poi], upper[poi] = self._poi_bounds(key.negative)
            if key.mu is not None:
                lower[poi], upper[poi] = min(lower[poi], key.mu), max(upper[poi], key.mu)
        start = self.numbers.init if init is None else np.asarray(init, dtype=float)
        return self.numbers._replace(lower=lower, upper=upper, init=np.array(start))

    def data(self, key: DataKey) -> np.ndarray:
        """Main counts then auxiliary data of ``key``."""
        if key.asimov is None:
            main = self.numbers.observed if key.base == "observed" else self._apriori
            return np.concatenate([main, self.numbers.auxdata])
        test_stat = key.asimov
        generation = FitKey(
            DataKey(key.base), 1.0 if test_stat == "q0" else 0.0, test_stat in ("q", "qmu")
        )
        pars = self.background.fit(self, generation).pars
        return np.asarray(self._functions.expected_data(self.numbers, jnp.asarray(pars)))

    @property
    def _functions(self):
        return compiled_functions(self.structure)

    # --- spey's fast paths: every fit hfpipe's ---

    def _row(self, key: FitKey, data=None, init=None, bounds=None) -> FitRow:
        if data is None and init is None and bounds is None:
            return self.background.fit(self, key)
        values = self.data(key.data) if data is None else self._given(data)
        numbers = self.numbers_for(key, init, bounds)
        return fit_rows(self.structure, [numbers], [values], key.mu, 1)[0]

    def _given(self, data) -> np.ndarray:
        """Data spey passes: main counts, with or without the auxiliary data."""
        data = np.asarray(data, dtype=float)
        if len(data) == self.structure.n_bins:
            data = np.concatenate([data, self.numbers.auxdata])
        return data

    def _pois(self, row: FitRow, poi_indices):
        if poi_indices is None:
            return float(row.pars[self.structure.poi_index])
        names = list(self.structure.parameter_names)
        return {
            k: float(row.pars[names.index(k) if isinstance(k, str) else k]) for k in poi_indices
        }

    def negative_loglikelihood(
        self,
        poi_test: float = 1.0,
        expected: ExpectationType = ExpectationType.observed,
        data=None,
        return_parameters: bool = False,
        init_pars=None,
        par_bounds=None,
        **kwargs,
    ):
        """-log L with the POI held at ``poi_test``, profiled over the rest."""
        key = FitKey(DataKey(_base(expected)), _poi_value(poi_test, self.structure), True)
        row = self._row(key, data, init_pars, par_bounds)
        return (row.nll, row.pars) if return_parameters else row.nll

    def asimov_negative_loglikelihood(
        self,
        poi_test: float = 1.0,
        expected: ExpectationType = ExpectationType.observed,
        test_statistics: str = "qtilde",
        init_pars=None,
        par_bounds=None,
        **kwargs,
    ) -> float:
        """The same on the Asimov data set of ``test_statistics`` (generated at mu = 0,
        or 1 for q0, from a fit to the data of ``expected``)."""
        data = DataKey(_base(expected), test_statistics)
        key = FitKey(data, _poi_value(poi_test, self.structure), True)
        return self._row(key, None, init_pars, par_bounds).nll

    def minimize_negative_loglikelihood(
        self,
        expected: ExpectationType = ExpectationType.observed,
        allow_negative_signal: bool = True,
        data=None,
        init_pars=None,
        par_bounds=None,
        poi_indices=None,
        **kwargs,
    ):
        """``(mu_hat, -log L)`` of the free fit."""
        key = FitKey(DataKey(_base(expected)), None, bool(allow_negative_signal))
        row = self._row(key, data, init_pars, par_bounds)
        return self._pois(row, poi_indices), row.nll

    def minimize_asimov_negative_loglikelihood(
        self,
        expected: ExpectationType = ExpectationType.observed,
        test_statistics: str = "qtilde",
        init_pars=None,
        par_bounds=None,
        poi_indices=None,
        **kwargs,
    ):
        """``(mu_hat, -log L)`` of the free fit to the Asimov data set."""
        key = FitKey(
            DataKey(_base(expected), test_statistics), None, test_statistics in ("q", "qmu")
        )
        row = self._row(key, None, init_pars, par_bounds)
        return self._pois(row, poi_indices), row.nll

    # --- the likelihood itself, for spey's other tools (chi2, sigma_mu from Hessian) ---

    def expected_data(self, pars) -> np.ndarray:
        """Expected main counts then auxiliary data at ``pars``."""
        return np.asarray(self._functions.expected_data(self.numbers, jnp.asarray(pars, float)))

    def _logpdf(self, expected, data) -> Callable:
        values = self.data(DataKey(_base(expected))) if data is None else self._given(data)
        values = jnp.asarray(values)
        numbers = self.numbers
        logpdf = self._functions.logpdf
        return lambda pars: logpdf(numbers, pars, values)

    def get_logpdf_func(self, expected: ExpectationType = ExpectationType.observed, data=None):
        logpdf = self._logpdf(expected, data)
        return lambda pars: float(logpdf(jnp.asarray(pars, float)))

    def get_objective_function(
        self, expected: ExpectationType = ExpectationType.observed, data=None, do_grad=True
    ):
        logpdf = self._logpdf(expected, data)
        if not do_grad:
            return lambda pars: -float(logpdf(jnp.asarray(pars, float)))
        value_and_grad = jax.jit(jax.value_and_grad(lambda p: -logpdf(p)))

        def objective(pars):
            value, grad = value_and_grad(jnp.asarray(pars, float))
            return float(value), np.asarray(grad)

        return objective

    def get_hessian_logpdf_func(
        self, expected: ExpectationType = ExpectationType.observed, data=None
    ):
        hessian = jax.jit(jax.hessian(self._logpdf(expected, data)))
        return lambda pars: np.asarray(hessian(jnp.asarray(pars, float)))


def _base(expected) -> str:
    return "apriori" if expected == ExpectationType.apriori else "observed"


def _poi_value(poi_test, structure) -> float:
    """The POI value of spey's ``poi_test`` (a number, or a dict naming the POI only)."""
    if isinstance(poi_test, Mapping):
        if len(poi_test) != 1:
            raise NotImplementedError("hfpipe's spey backend holds one POI, not several")
        ((key, value),) = poi_test.items()
        if key not in (structure.poi_index, structure.poi_name):
            raise NotImplementedError(f"{key!r} is not the POI '{structure.poi_name}'")
        return float(value)
    return float(poi_test)


def _signal_yields(patch, workspace: Mapping) -> dict[str, list[float]]:
    """The yields the patch adds, per channel it adds them to."""
    names = [c["name"] for c in workspace["channels"]]
    operations = patch.operations if isinstance(patch, spec.Patch) else patch
    found = {}
    for op in operations:
        parts = op.get("path", "").split("/")
        if op.get("op") == "add" and len(parts) == 5 and parts[3] == "samples":
            found.setdefault(names[int(parts[2])], op["value"]["data"])
    return found


def _minimum_poi(signal: Mapping, workspace: Mapping) -> float:
    """spey-pyhf's lowest POI value that keeps every bin's expectation non-negative:
    -min(background / signal) over the bins with signal."""
    by_name = {c["name"]: c for c in workspace["channels"]}
    ratios = []
    for channel, yields in signal.items():
        yields = np.asarray(yields, dtype=float)
        background = np.sum([s["data"] for s in by_name[channel]["samples"]], axis=0)
        if np.any(yields != 0):
            ratios.append(np.min(background[yields != 0] / yields[yields != 0]))
    return -float(np.min(ratios)) if ratios else -np.inf
