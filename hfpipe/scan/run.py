"""``scan``: CLs (and optionally upper limits) for every signal point of a patchset.

The work goes: load and verify inputs → patch and compile every point (numpy, fast) →
group points into union structures (:mod:`hfpipe.scan.union`) → run each group in
batches of ``batch_size`` points through one compiled, vmapped hypothesis test → one
row per point. A point that cannot be compiled or whose fits fail is a row with
``status`` ≠ ``ok`` and a message; the scan goes on.

The unit of work is :func:`run_batch` — a pure function of (union structure, numbers)
to rows — so the same batches can later be shipped to Dask workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import jax
import numpy as np
import pandas as pd

from hfpipe import spec
from hfpipe.errors import HfpipeError
from hfpipe.infer import FitOptions, hypotest_batch
from hfpipe.infer.limits import upper_limits_batch
from hfpipe.model import check_yields, compile_workspace
from hfpipe.scan.columns import EXPECTED_COLUMNS, LIMIT_COLUMNS, column_order
from hfpipe.scan.union import UnionBatch, unify

__all__ = ["DEFAULT_BATCH_SIZE", "ScanSettings", "run_batch", "scan"]

#: Points per compiled call. Measured on ATLAS 1Lbb (126 parameters) on 2 cores:
#: 32 points → ~1 GB peak, and larger batches give no further speed-up there.
DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class ScanSettings:
    """Everything that decides a scan's numbers; recorded in the results' provenance."""

    mu: float = 1.0
    test_stat: str = "qtilde"
    upper_limits: bool = False
    cl: float = 0.95
    normsys_code: str = "code4"
    histosys_code: str = "code4p"
    measurement: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    #: opt-in for unphysical models: clip expected bin yields at a small positive floor
    #: instead of rejecting negative ones (:mod:`hfpipe.model.physical`)
    clip_negative_yields: bool = False


def _device() -> str:
    return jax.devices()[0].device_kind if jax.devices() else "cpu"


def _pad_rows(batch: UnionBatch, rows: Sequence[int], size: int):
    """Numbers of ``rows`` of a union batch, padded to ``size`` by repeating the last one
    (every call then has one shape and reuses one compilation)."""
    index = np.array(list(rows) + [rows[-1]] * (size - len(rows)))
    return jax.tree.map(lambda a: np.asarray(a)[index], batch.numbers)


def run_batch(batch: UnionBatch, rows: Sequence[int], settings: ScanSettings) -> list[dict]:
    """Hypothesis tests (and limits) for ``rows`` of a union batch; one dict per row."""
    start = time.perf_counter()
    numbers = _pad_rows(batch, rows, settings.batch_size)
    result = hypotest_batch(
        batch.structure, numbers, settings.mu, test_stat=settings.test_stat, options=FitOptions()
    )
    limits = None
    if settings.upper_limits:
        limits = upper_limits_batch(
            batch.structure, numbers, cl=settings.cl, test_stat=settings.test_stat
        )
    seconds = (time.perf_counter() - start) / len(rows)
    out = []
    for k, row in enumerate(rows):
        record = {
            "mu": settings.mu,
            "cls_obs": float(result.cls_obs[k]),
            **dict(zip(EXPECTED_COLUMNS, map(float, result.cls_exp[k]), strict=True)),
            "mu_hat": float(result.mu_hat[k]),
            "twice_nll": float(result.twice_nll[k] - batch.padding_twice_nll[row]),
            "status": "ok" if result.converged[k] else "failed",
            # converged but suspicious (a parameter at a bound): still ok, with a warning
            "message": str(result.message[k])
            or (f"warning: {result.warning[k]}" if result.warning[k] else ""),
            "seconds": seconds,
        }
        if limits is not None:
            record |= dict(zip(LIMIT_COLUMNS, map(float, limits.values[k]), strict=True))
            if not limits.converged[k]:
                record["status"] = "failed"
                record["message"] = "; ".join(filter(None, [record["message"], limits.message[k]]))
        out.append(record)
    return out


def _load(workspace, patchset):
    ws = spec.load_workspace(workspace)
    ps = patchset if isinstance(patchset, spec.PatchSet) else spec.load_patchset(patchset)
    spec.verify_patchset(ps, ws, file=str(patchset) if not isinstance(patchset, Mapping) else None)
    return ws, ps


def _compile_point(ws, patch, settings: ScanSettings, file: str):
    """Patch (validating the result), compile, and check the expected yields of a point."""
    patched = spec.apply_patches(ws, [patch], file=file, base_valid=True)
    spec.measurement_config(patched, settings.measurement, file=file)
    name = settings.measurement or patched["measurements"][0]["name"]
    measurement = next(m for m in patched["measurements"] if m["name"] == name)
    structure, numbers = compile_workspace(
        patched,
        measurement,
        normsys_code=settings.normsys_code,
        histosys_code=settings.histosys_code,
        clip_yields=settings.clip_negative_yields,
        file=file,
    )
    check_yields(structure, numbers, workspace=patched, file=f"{file} (point {patch.name})")
    return structure, numbers


def scan(
    workspace,
    patchset,
    *,
    points: Sequence[str] | None = None,
    analysis: str | None = None,
    settings: ScanSettings | None = None,
    progress: bool = False,
    **overrides,
) -> pd.DataFrame:
    """Scan the signal points of ``patchset`` on the background-only ``workspace``.

    ``workspace`` and ``patchset`` are paths (``.json`` or ``.json.gz``) or loaded
    objects. ``points`` picks patch names (default: all). Settings come from
    ``settings`` and/or keyword overrides (``mu``, ``test_stat``, ``upper_limits``,
    ``cl``, ``batch_size``, ``normsys_code``, ``histosys_code``, ``measurement``,
    ``clip_negative_yields``).
    Returns one row per point with the columns of DESIGN.md §4.
    """
    settings = ScanSettings(**{**asdict(settings or ScanSettings()), **overrides})
    ws, ps = _load(workspace, patchset)
    names = list(points) if points is not None else list(ps.names)
    patches = [ps[name] for name in names]  # unknown names raise a one-line error
    file = str(patchset) if isinstance(patchset, str | os.PathLike) else "<patchset>"
    if analysis is None:
        analysis = ps.name or ps.analysis_id or "analysis"

    rows: dict[int, dict] = {}
    compiled, compiled_index = [], []
    for i, patch in enumerate(patches):
        try:
            compiled.append(_compile_point(ws, patch, settings, file))
            compiled_index.append(i)
        except HfpipeError as error:
            rows[i] = {"status": "invalid", "message": str(error)}

    if compiled:
        background_samples = {c["name"]: {s["name"] for s in c["samples"]} for c in ws["channels"]}
        background_parameters = {
            m["name"] for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]
        }
        groups = unify(compiled, background_samples, background_parameters)
        chunks = [
            (group, group_rows[k : k + settings.batch_size])
            for group in groups
            for group_rows in [list(range(len(group.members)))]
            for k in range(0, len(group_rows), settings.batch_size)
        ]
        bar = _progress(len(patches), progress)
        for group, chunk in chunks:
            for row, record in zip(chunk, run_batch(group, chunk, settings), strict=True):
                rows[compiled_index[group.members[row]]] = record
            bar.update(len(chunk))
        bar.close()

    device = _device()
    records = []
    for i, patch in enumerate(patches):
        record = {
            "analysis": analysis,
            "point": patch.name,
            **{label: _label_value(v) for label, v in zip(ps.labels, patch.values, strict=True)},
            "mu": settings.mu,
            "calctype": "asymptotics",
            "test_stat": settings.test_stat,
            "ntoys": 0,
            "device": device,
            **rows[i],
        }
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    for column in [*EXPECTED_COLUMNS, "cls_obs", "mu_hat", "twice_nll", "seconds"]:
        if column not in frame:
            frame[column] = np.nan
    frame["message"] = frame["message"].fillna("")
    return frame[column_order(list(ps.labels), frame.columns)]


def _label_value(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="point", file=__import__("sys").stderr)
