"""The model-independent limit table of discovery regions (HistFitter's UpperLimitTable).

For each single-bin region, the background-only workspace gets a unit-yield signal
sample with a free normalisation in that region only (:mod:`hfpipe.scanning.unit_signal`),
so the POI is the number of signal events S. Then, per region:

* S_obs^95 and S_exp^95 with its ±1σ, ±2σ band: the CLs upper limits on S (q~, CLs =
  1 − CL), asymptotic (:mod:`hfpipe.infer.limits`) or toy-based
  (:mod:`hfpipe.infer.toylimits`, on a grid of S around the asymptotic limits);
* ⟨εσ⟩_obs^95 = S_obs^95 / L, the visible cross-section, where a luminosity is given;
* CL_B at S_obs^95: the background-only confidence level of the observed test
  statistic in the hypothesis test of S = S_obs^95;
* p(s = 0) and Z: the discovery p-value of a q0 test and Z = Φ⁻¹(1 − p), with p capped
  at 0.5 (and so Z at 0), as papers print it: an observed deficit is no evidence.

The regions' models differ only by where the signal sits, so asymptotically they are
brought to one union structure (:mod:`hfpipe.scanning.union`) and computed together:
one batched hypothesis test, one batched limit search, one q0 test for all regions.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
import pandas as pd

from hfpipe import _jax, spec  # noqa: F401  (_jax: hfpipe's JAX settings first)
from hfpipe.errors import InvalidSettings
from hfpipe.infer.asymptotic import hypotest_batch
from hfpipe.infer.calctypes import CALCTYPES, ToySettings
from hfpipe.infer.limits import upper_limits_batch
from hfpipe.infer.significance import discovery_significance, z_value
from hfpipe.infer.toylimits import toy_upper_limit
from hfpipe.infer.toys import toy_hypotest_batch
from hfpipe.model import Model, compile_model
from hfpipe.results.discovery import DISCOVERY_COLUMNS, LUMI_UNITS, xsec_unit
from hfpipe.scanning.union import UnionBatch, unify
from hfpipe.scanning.unit_signal import unit_signal_patch

__all__ = ["TOY_GRID_POINTS", "discovery_models", "discovery_table"]

#: values of S at which toy-based limits compute toy CLs
TOY_GRID_POINTS = 15
#: the largest p(s = 0) a table prints (an observed deficit: Z = 0)
P0_CAP = 0.5


def discovery_models(
    workspace,
    regions: Sequence[str],
    *,
    patches: Sequence = (),
    signal_sample: str = "signal",
    poi: str = "mu_Sig",
    poi_upper: float | None = None,
    **compile_options,
) -> list[Model]:
    """One compiled model a region: ``workspace`` (a path or dict, background only,
    ``patches`` applied first) with the region's unit-yield signal, whose
    normalisation ``poi`` is the POI (see :func:`~hfpipe.scanning.unit_signal.
    unit_signal_patch`)."""
    if not regions or len(set(regions)) != len(regions):
        raise InvalidSettings(f"name one or more distinct regions, not {list(regions)}")
    file = str(workspace) if not isinstance(workspace, dict) else "<workspace>"
    ws = spec.load_workspace(workspace, name=file)
    if patches:
        ws = spec.apply_patches(ws, list(patches), file=file, base_valid=True)
    return [
        compile_model(
            ws,
            patches=[
                unit_signal_patch(ws, region, sample=signal_sample, poi=poi, poi_upper=poi_upper)
            ],
            file=file,
            **compile_options,
        )
        for region in regions
    ]


def _union(models: list[Model], signal_sample: str) -> list[UnionBatch]:
    """The regions' models in union structures (one, unless they cannot share one): the
    background is every sample but the signal, every parameter but the POI."""
    samples: dict[str, set[str]] = {}
    for channel, sample, _ in models[0].structure.slot_labels:
        if sample != signal_sample:
            samples.setdefault(channel, set()).add(sample)
    poi = models[0].poi_name
    parameters = {ps.name for ps in models[0].structure.parameter_sets if ps.name != poi}
    return unify([(m.structure, m.numbers) for m in models], samples, parameters)


def _asymptotic_rows(batch: UnionBatch, cl: float) -> list[dict]:
    """Limits, CL_B at the observed limit and p0 of the regions of one union batch."""
    structure, numbers = batch.structure, batch.numbers
    reference = hypotest_batch(structure, numbers, 1.0, test_stat="qtilde")
    limits = upper_limits_batch(structure, numbers, cl=cl, test_stat="qtilde", reference=reference)
    observed = limits.values[:, 0]
    poi = structure.poi_index
    upper = np.asarray(numbers.upper).copy()
    upper[:, poi] = np.maximum(upper[:, poi], 2.0 * np.nan_to_num(observed, nan=1.0))
    at_limit = hypotest_batch(
        structure,
        numbers._replace(upper=upper),
        np.nan_to_num(observed, nan=1.0),
        test_stat="qtilde",
    )
    discovery = discovery_significance("asymptotics", structure, numbers, rows=len(observed))
    rows = []
    for k in range(len(observed)):
        failures = [
            f"{what}: {message}"
            for what, ok, message in (
                ("upper limit", limits.converged[k], limits.message[k]),
                ("test at the limit", at_limit.converged[k], at_limit.message[k]),
                ("discovery test", discovery.result.converged[k], discovery.result.message[k]),
            )
            if not ok
        ]
        rows.append(
            {
                "limits": limits.values[k],
                "cl_b": float(at_limit.clb_obs[k]) if np.isfinite(observed[k]) else np.nan,
                "p0": float(discovery.p0_obs[k]),
                "failures": failures,
            }
        )
    return rows


def _toy_row(model: Model, asymptotic: dict, cl: float, toys: ToySettings) -> dict:
    """Toy-based limits (on a grid of S spanning the asymptotic limits), CL_B at the
    observed limit and p0 of one region's model."""
    structure, numbers = model.structure, model.numbers
    settings = {
        "ntoys": toys.ntoys,
        "seed": toys.seed,
        "batch_size": toys.batch_size,
        "max_failed_fraction": toys.max_failed_fraction,
    }
    reach = asymptotic["limits"]
    upper = float(np.asarray(numbers.upper)[structure.poi_index])
    grid = np.linspace(0.25 * np.nanmin(reach), min(2.0 * np.nanmax(reach), upper), TOY_GRID_POINTS)
    limit = toy_upper_limit(structure, numbers, grid, cl=cl, **settings)
    failures = [] if limit.converged else [f"toy upper limit: {limit.message}"]
    observed = limit.values[0]
    cl_b = np.nan
    if np.isfinite(observed):
        at_limit = toy_hypotest_batch(
            structure, _one(numbers), observed, test_stat="qtilde", **settings
        )
        cl_b = float(at_limit.clb_obs[0])
        if not at_limit.converged[0]:
            failures.append(f"toy test at the limit: {at_limit.message[0]}")
    discovery = discovery_significance("toybased", structure, _one(numbers), rows=1, toys=toys)
    if not discovery.result.converged[0]:
        failures.append(f"toy discovery test: {discovery.result.message[0]}")
    return {
        "limits": limit.values,
        "cl_b": cl_b,
        "p0": float(discovery.p0_obs[0]),
        "failures": failures,
    }


def _one(numbers):
    """One model's numbers with a batch axis of one."""
    return jax.tree.map(lambda a: np.asarray(a)[None], numbers)


def discovery_table(
    workspace,
    regions: Sequence[str],
    *,
    patches: Sequence = (),
    cl: float = 0.95,
    lumi: float | None = None,
    lumi_unit: str = "fb-1",
    calctype: str = "asymptotics",
    toys: ToySettings | None = None,
    signal_sample: str = "signal",
    poi: str = "mu_Sig",
    poi_upper: float | None = None,
    **compile_options,
) -> pd.DataFrame:
    """The model-independent limit table of ``regions`` (single-bin channels of the
    background-only ``workspace``); see the module docstring.

    One row a region: ``region``, ``s_obs``, ``s_exp``, ``s_exp_m2``, ``s_exp_m1``,
    ``s_exp_p1``, ``s_exp_p2`` (signal events), ``xsec_obs`` (⟨εσ⟩_obs^95 in the inverse
    of ``lumi_unit``; NaN without ``lumi``), ``cl_b``, ``p0`` (capped at 0.5), ``z``,
    ``status`` (``ok`` or ``failed``), ``message``. ``attrs`` hold the settings.
    ``calctype="toybased"`` with ``toys`` (:class:`~hfpipe.infer.calctypes.ToySettings`:
    ntoys, seed, …) computes limits, CL_B and p0 from toys, reproducibly for a seed.
    """
    if calctype not in CALCTYPES:
        raise InvalidSettings(f"calctype must be one of {', '.join(CALCTYPES)}, not {calctype!r}")
    if lumi_unit not in LUMI_UNITS:
        raise InvalidSettings(
            f"lumi unit must be one of {', '.join(LUMI_UNITS)}, not {lumi_unit!r}"
        )
    if lumi is not None and not lumi > 0:
        raise InvalidSettings(f"the luminosity must be positive, not {lumi}")
    toys = toys or ToySettings()
    models = discovery_models(
        workspace,
        regions,
        patches=patches,
        signal_sample=signal_sample,
        poi=poi,
        poi_upper=poi_upper,
        **compile_options,
    )
    found: dict[int, dict] = {}
    for batch in _union(models, signal_sample):
        for member, row in zip(batch.members, _asymptotic_rows(batch, cl), strict=True):
            found[member] = row
    if calctype == "toybased":
        found = {k: _toy_row(models[k], found[k], cl, toys) for k in found}
    records = [_record(region, found[k], lumi) for k, region in enumerate(regions)]
    frame = pd.DataFrame(records, columns=DISCOVERY_COLUMNS)
    frame.attrs.update(
        cl=cl,
        lumi=lumi,
        lumi_unit=lumi_unit,
        xsec_unit=xsec_unit(lumi_unit),
        calctype=calctype,
        ntoys=toys.ntoys if calctype == "toybased" else 0,
        seed=toys.seed if calctype == "toybased" else None,
        signal_sample=signal_sample,
        poi=poi,
    )
    return frame


def _record(region: str, row: dict, lumi: float | None) -> dict:
    observed, m2, m1, median, p1, p2 = (float(v) for v in row["limits"])
    p0 = min(row["p0"], P0_CAP)
    return {
        "region": region,
        "s_obs": observed,
        "s_exp": median,
        "s_exp_m2": m2,
        "s_exp_m1": m1,
        "s_exp_p1": p1,
        "s_exp_p2": p2,
        "xsec_obs": observed / lumi if lumi else np.nan,
        "cl_b": row["cl_b"],
        "p0": p0,
        "z": float(z_value(p0)),
        "status": "failed" if row["failures"] else "ok",
        "message": "; ".join(row["failures"]),
    }
