"""The fits behind hfpipe's spey backend, batched over the hypotheses spey holds at once.

spey asks one statistical model at a time for a fit (free, or with the POI held) of
some data (observed, pre-fit expected, or an Asimov data set). Reinterpretation code
builds many models of one analysis — one per signal hypothesis — and asks each the same
questions (``exclusion_confidence_level()`` at mu = 1, say). So every model made from
the same background-only workspace belongs to one :class:`Background`; the first time
any of them needs a fit, every model of the same structure that lacks that fit gets it
in the same vmapped call (:func:`hfpipe.infer.fit_batch`), in batches of
``batch_size`` rows, and keeps its row. The others then find their answers waiting.

Fits are cached per model by what they fit (:class:`FitKey`); fits with the caller's
own starting point, bounds or data are made alone and not cached.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hfpipe import spec
from hfpipe.infer import FitOptions, fit_batch
from hfpipe.model import Numbers, SampleCache, check_yields, compile_workspace

__all__ = ["Background", "DataKey", "FitKey", "FitRow"]


@dataclass(frozen=True)
class DataKey:
    """What a fit fits: the observed data or the pre-fit background expectation
    (``base``: observed or apriori), or the Asimov data set generated from it for a test
    statistic (``asimov``: qtilde, q or q0)."""

    base: str
    asimov: str | None = None


@dataclass(frozen=True)
class FitKey:
    data: DataKey
    mu: float | None  # the POI held at mu; None: a free fit
    negative: bool  # the POI may go below zero (spey's allow_negative_signal)


@dataclass(frozen=True)
class FitRow:
    pars: np.ndarray
    nll: float  # -log L (pyhf's normalisation, as spey-pyhf reports it)
    converged: bool
    message: str


@dataclass(frozen=True)
class _Settings:
    measurement: str | None
    normsys_code: str
    histosys_code: str
    batch_size: int


class Background:
    """A background-only workspace, loaded and checked once, and the models made on it."""

    #: open backgrounds by (source, settings), alive while one of their models is
    _open: ClassVar[weakref.WeakValueDictionary] = weakref.WeakValueDictionary()

    def __init__(self, source, settings: _Settings) -> None:
        self.source = source
        self.settings = settings
        file = os.fspath(source) if isinstance(source, str | os.PathLike) else "<workspace>"
        self.file = file
        self.workspace = spec.load_workspace(source, name=file)
        self.base = spec.PatchBase.of(self.workspace, file=file)
        self.cache = SampleCache(self.base.workspace)
        self.members: list[weakref.ref] = []

    @classmethod
    def of(cls, source, **settings) -> Background:
        """The open background of ``source`` (the same dict object, or path) and
        settings, or a new one."""
        config = _Settings(**settings)
        by_path = isinstance(source, str | os.PathLike)
        key = (os.path.realpath(source) if by_path else id(source), config)
        found = cls._open.get(key)
        if found is None or not (by_path or found.source is source):
            found = cls._open[key] = cls(source, config)
        return found

    def compile(self, patch: spec.Patch | list):
        """The signal hypothesis's model: (structure, numbers)."""
        patched = spec.apply_patches(self.base, [patch], file=self.file)
        measurement = spec.find_measurement(patched, self.settings.measurement, file=self.file)
        structure, numbers = compile_workspace(
            patched,
            measurement,
            normsys_code=self.settings.normsys_code,
            histosys_code=self.settings.histosys_code,
            file=self.file,
            cache=self.cache,
        )
        check_yields(structure, numbers, workspace=patched, file=self.file)
        return structure, numbers

    def join(self, member) -> None:
        self.members = [m for m in self.members if m() is not None] + [weakref.ref(member)]

    def fit(self, member, key: FitKey) -> FitRow:
        """``member``'s fit ``key``, made together with that of every other model of its
        structure that lacks it."""
        if key not in member.fits:
            peers = [m for ref in self.members if (m := ref()) is not None and m is not member]
            peers = [m for m in peers if m.structure == member.structure and key not in m.fits]
            waiting = [member, *peers]
            size = self.settings.batch_size
            for start in range(0, len(waiting), size):
                rows = waiting[start : start + size]
                for m, row in zip(rows, _fit_rows(rows, key, size), strict=True):
                    m.fits[key] = row
        return member.fits[key]


def _stack(numbers: list[Numbers], size: int) -> Numbers:
    """Numbers of the rows, padded to ``size`` by repeating the last (one compiled shape
    for every batch)."""
    numbers = numbers + [numbers[-1]] * (size - len(numbers))
    return Numbers(*(np.stack(field) for field in zip(*numbers, strict=True)))


def _fit_rows(members: list, key: FitKey, size: int) -> list[FitRow]:
    """One batched fit of ``key`` for every member (all of one structure)."""
    numbers = [m.numbers_for(key) for m in members]
    data = [m.data(key.data) for m in members]
    return fit_rows(members[0].structure, numbers, data, key.mu, size)


def fit_rows(structure, numbers: list[Numbers], data: list, mu, size: int) -> list[FitRow]:
    """Fits of models of one structure to their data (rows padded to ``size``), the POI
    held at ``mu`` unless that is None; unconverged fits come back with a warning."""
    n = len(numbers)
    stacked = _stack(numbers, size)
    data = np.stack(data + [data[-1]] * (size - n))
    init, fixed = np.array(stacked.init), np.array(stacked.fixed)
    if mu is not None:
        poi = structure.poi_index
        init[:, poi], fixed[:, poi] = mu, True
    result = fit_batch(structure, stacked, data, init=init, fixed=fixed, options=FitOptions())
    rows = []
    for k in range(n):
        converged, message = bool(result.converged[k]), str(result.message[k])
        if not converged:
            warnings.warn(f"hfpipe fit not converged: {message}", RuntimeWarning, stacklevel=4)
        nll = float(result.twice_nll[k]) / 2.0
        rows.append(FitRow(np.asarray(result.pars[k]), nll, converged, message))
    return rows


def background_yields(workspace: Mapping, channels) -> np.ndarray:
    """The bin-wise sum of the background samples' yields, channel by channel in the
    model's order: spey-pyhf's pre-fit ("apriori") data."""
    by_name = {c["name"]: c for c in workspace["channels"]}
    return np.concatenate(
        [np.sum([s["data"] for s in by_name[c]["samples"]], axis=0) for c in channels]
    )
