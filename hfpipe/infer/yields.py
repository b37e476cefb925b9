"""Pre- and post-fit expected yields per channel, sample and bin, with uncertainties.

Yields are the model's expected counts of every (channel, sample, bin) slot at a
parameter point, their sums over samples (``total``) and over the bins of a channel.
Uncertainties come from the standard linear propagation, as cabinetry's
``model_utils.yield_stdev``: with v_i the change of a yield when parameter i moves by
its uncertainty σ_i and ρ the parameters' correlation matrix, the variance is
Σ_ij v_i ρ_ij v_j — for every row, sums included (so a sum's uncertainty carries the
correlations between its parts). Post-fit: the best fit, its Hesse uncertainties and
correlations; pre-fit: the pre-fit values and widths of :mod:`~hfpipe.infer.prefit`
with no correlations (free parameters then contribute nothing).

``propagation="difference"`` (default, cabinetry's) takes v_i = (ν(θ + σ_i) −
ν(θ − σ_i))/2, the symmetrised change over ±1σ, which follows the interpolation's
curvature; ``"jacobian"`` takes v_i = σ_i ∂ν/∂θ_i (``jax.jacfwd``), the infinitesimal
version. Both need only the yield function, compiled once per structure.

Slot yields come from :func:`hfpipe.model.likelihood.expected_main` on the model's
layout with every slot made a bin of its own, so they are the likelihood's yields by
construction (without the opt-in clipping, which acts on bin totals).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from hfpipe import _jax  # noqa: F401  (hfpipe's JAX settings first)
from hfpipe.errors import InvalidSettings
from hfpipe.infer.bestfit import BestFit, best_fit
from hfpipe.infer.fit import DEFAULT_OPTIONS, FitOptions
from hfpipe.infer.prefit import prefit_uncertainties, prefit_values
from hfpipe.model.layout_cache import per_layout
from hfpipe.model.likelihood import expected_main, prepare
from hfpipe.model.model import Model
from hfpipe.model.structure import Layout, Structure

__all__ = [
    "PROPAGATIONS",
    "TOTAL",
    "postfit_yields",
    "prefit_yields",
    "propagated_yields",
    "slot_yields",
]

PROPAGATIONS = ("difference", "jacobian")
#: the ``sample`` of the rows that sum over a channel's samples
TOTAL = "total"


@per_layout
def _slot_functions(layout: Layout):
    """Jitted slot yields at a batch of parameter points, and their Jacobian at one."""
    n_slots = len(layout.slot_bin)
    slots = dataclasses.replace(
        layout, n_bins=n_slots, slot_bin=tuple(range(n_slots)), clip_yields=False
    )

    def one(numbers, pars):
        return expected_main(slots, prepare(slots, numbers), pars)

    return jax.jit(jax.vmap(one, in_axes=(None, 0))), jax.jit(jax.jacfwd(one, argnums=1))


def slot_yields(model: Model, pars) -> np.ndarray:
    """Expected yield of every (channel, sample, bin) slot (``structure.slot_labels``) at
    parameter point(s) ``pars`` ((P,) or (n, P))."""
    batch, _ = _slot_functions(model.structure.layout)
    pars = jnp.asarray(pars, dtype=float)
    found = np.asarray(batch(model.numbers, jnp.atleast_2d(pars)))
    return found[0] if pars.ndim == 1 else found


def _rows(structure: Structure) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The table's rows (channel, sample, bin; bin NA for a channel's sum over bins),
    the 0/1 matrix (rows, slots) summing slots into them, and each row's global bins
    (for the data of the ``total`` rows)."""
    labels = structure.slot_labels
    slot_bin = np.asarray(structure.slot_bin)
    keys, members, bins = [], [], []
    first_bin = np.concatenate([[0], np.cumsum(structure.channel_bins)[:-1]])
    for c, channel in enumerate(structure.channels):
        in_channel = [n for n, label in enumerate(labels) if label[0] == channel]
        samples = list(dict.fromkeys(labels[n][1] for n in in_channel))
        for sample in [*samples, TOTAL]:
            slots = [n for n in in_channel if sample in (TOTAL, labels[n][1])]
            for b in range(structure.channel_bins[c]):
                keys.append((channel, sample, b))
                members.append([n for n in slots if labels[n][2] == b])
                bins.append([first_bin[c] + b])
            keys.append((channel, sample, pd.NA))
            members.append(slots)
            bins.append(sorted(set(slot_bin[slots])))
    matrix = np.zeros((len(keys), len(labels)))
    for row, slots in enumerate(members):
        matrix[row, slots] = 1.0
    frame = pd.DataFrame(keys, columns=["channel", "sample", "bin"])
    frame["bin"] = frame["bin"].astype("Int64")
    return frame, matrix, bins


def _yields_and_variations(model: Model, pars, widths, propagation: str):
    """Slot yields at ``pars`` and (slots, P) the change of each per parameter, by
    ``propagation``; the difference's ±σ points go in one call with the central one."""
    if propagation == "jacobian":
        _, jacobian = _slot_functions(model.structure.layout)
        change = np.asarray(jacobian(model.numbers, jnp.asarray(pars, float))) * widths
        return slot_yields(model, pars), change
    moved = np.flatnonzero(widths > 0)
    shifts = np.zeros((len(moved), len(pars)))
    shifts[np.arange(len(moved)), moved] = widths[moved]
    found = slot_yields(model, np.concatenate([pars[None], pars + shifts, pars - shifts]))
    change = np.zeros((found.shape[1], len(pars)))
    change[:, moved] = ((found[1 : len(moved) + 1] - found[len(moved) + 1 :]) / 2).T
    return found[0], change


def propagated_yields(
    model: Model,
    pars,
    uncertainties,
    correlation,
    *,
    propagation: str = "difference",
) -> pd.DataFrame:
    """Yields at ``pars`` with uncertainties propagated from ``uncertainties`` and
    ``correlation`` (per parameter, model order): one row per (channel, sample, bin),
    per channel's ``total`` and per sum over a channel's bins (``bin`` NA). Columns
    ``channel``, ``sample``, ``bin``, ``yield``, ``uncertainty`` and ``data`` (the
    observed counts, on ``total`` rows; NaN on others)."""
    if propagation not in PROPAGATIONS:
        raise InvalidSettings(f"propagation must be one of {PROPAGATIONS}, not {propagation!r}")
    pars = np.asarray(pars, dtype=float)
    widths = np.asarray(uncertainties, dtype=float)
    frame, matrix, bins = _rows(model.structure)
    central, change = _yields_and_variations(model, pars, widths, propagation)
    per_row = matrix @ change
    variance = np.einsum("qi,ij,qj->q", per_row, np.asarray(correlation, float), per_row)
    observed = np.asarray(model.numbers.observed, dtype=float)
    frame["yield"] = matrix @ central
    frame["uncertainty"] = np.sqrt(np.clip(variance, 0.0, None))
    frame["data"] = [
        observed[b].sum() if sample == TOTAL else np.nan
        for sample, b in zip(frame["sample"], bins, strict=True)
    ]
    return frame


def prefit_yields(model: Model, *, propagation: str = "difference") -> pd.DataFrame:
    """Pre-fit yields: every parameter at its pre-fit value, uncertainties from the
    constraint widths without correlations (see :func:`propagated_yields`)."""
    structure, numbers = model.structure, model.numbers
    frame = propagated_yields(
        model,
        prefit_values(structure, numbers),
        prefit_uncertainties(structure, numbers),
        np.eye(structure.n_parameters),
        propagation=propagation,
    )
    frame.attrs["stage"] = "prefit"
    return frame


def postfit_yields(
    model: Model,
    *,
    fit: BestFit | None = None,
    propagation: str = "difference",
    options: FitOptions = DEFAULT_OPTIONS,
) -> pd.DataFrame:
    """Post-fit yields: the best fit (computed if not given), uncertainties from its
    Hesse covariance (see :func:`propagated_yields`)."""
    fit = best_fit(model, options=options) if fit is None else fit
    frame = propagated_yields(
        model, fit.pars, fit.uncertainties, fit.correlation(), propagation=propagation
    )
    frame.attrs["stage"] = "postfit"
    return frame
