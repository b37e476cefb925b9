"""The work of a scan where it runs: a point prepared, a batch of points tested.

A scan (:mod:`hfpipe.scanning.run`) hands these to its own process, to the processes of
a :class:`~hfpipe.scanning.pool.ProcessPool` or to Dask workers. They need the engine
(JAX), which the process that only orchestrates a scan does not import.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import jax
import numpy as np

from hfpipe import _jax, spec  # noqa: F401  (_jax: hfpipe's JAX settings first)
from hfpipe._platform import device_kind
from hfpipe.errors import HfpipeError, InvalidSettings
from hfpipe.infer.asymptotic import check_poi_values
from hfpipe.infer.calctypes import ToySettings, hypotest_rows
from hfpipe.infer.limits import upper_limits_batch
from hfpipe.infer.significance import discovery_significance
from hfpipe.model.compile import SampleCache, compile_workspace
from hfpipe.model.physical import check_yields
from hfpipe.model.structure import Numbers, Structure
from hfpipe.results.columns import EXPECTED_COLUMNS, LIMIT_COLUMNS, SIGNIFICANCE_COLUMNS
from hfpipe.scanning.pool import freeze_long_lived
from hfpipe.scanning.union import UnionBatch

if TYPE_CHECKING:
    from hfpipe.scanning.run import ScanSettings

__all__ = ["attempt", "prepare_in_worker", "prepare_point", "run_batch", "run_batch_here"]


def _pad_rows(batch: UnionBatch, rows: Sequence[int], size: int):
    """Numbers of ``rows`` of a union batch, padded to ``size`` by repeating the last one
    (every call then has one shape and reuses one compilation)."""
    index = np.array(list(rows) + [rows[-1]] * (size - len(rows)))
    return jax.tree.map(lambda a: np.asarray(a)[index], batch.numbers)


def run_batch(batch: UnionBatch, rows: Sequence[int], settings: ScanSettings) -> list[dict]:
    """Hypothesis tests (and limits) for ``rows`` of a union batch; one dict per row."""
    start = time.perf_counter()
    numbers = _pad_rows(batch, rows, settings.batch_size)
    result = hypotest_rows(
        settings.calctype,
        batch.structure,
        numbers,
        settings.mu,
        rows=len(rows),
        test_stat=settings.test_stat,
        toys=ToySettings(
            settings.ntoys, settings.seed, settings.toy_batch_size, settings.max_failed_fraction
        ),
    )
    limits = None
    if settings.upper_limits:
        limits = upper_limits_batch(
            batch.structure, numbers, cl=settings.cl, test_stat=settings.test_stat, reference=result
        )
    if settings.significance:
        significance = _significance(batch, numbers, len(rows), settings)
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
        if result.n_failed is not None:
            record["n_failed"] = int(result.n_failed[k])
        if limits is not None:
            record |= dict(zip(LIMIT_COLUMNS, map(float, limits.values[k]), strict=True))
            if not limits.converged[k]:
                record["status"] = "failed"
                record["message"] = "; ".join(filter(None, [record["message"], limits.message[k]]))
        if settings.significance:
            record = _significance_record(record, significance, k)
        out.append(record)
    return out


def _significance(batch: UnionBatch, numbers, rows: int, settings: ScanSettings):
    """The q0 test of a batch's points: a Significance, or the InvalidSettings that
    refused it (a POI whose bounds exclude 0), which only this test's columns report."""
    try:
        return discovery_significance(
            settings.calctype,
            batch.structure,
            numbers,
            rows=rows,
            toys=ToySettings(
                settings.ntoys, settings.seed, settings.toy_batch_size, settings.max_failed_fraction
            ),
        )
    except InvalidSettings as error:
        return error


def _significance_record(record: dict, significance, k: int) -> dict:
    """``record`` with the significance columns of row ``k``; failed, its message
    extended, where the q0 test failed or was refused."""
    if isinstance(significance, InvalidSettings):
        values, failure = dict.fromkeys(SIGNIFICANCE_COLUMNS, np.nan), str(significance)
    else:
        median = 2  # of the expected band, −2σ … +2σ
        values = {
            "p0_obs": float(significance.p0_obs[k]),
            "p0_exp": float(significance.p0_exp[k, median]),
            "z_obs": float(significance.z_obs[k]),
            "z_exp": float(significance.z_exp[k, median]),
        }
        result = significance.result
        failure = "" if result.converged[k] else str(result.message[k])
    record = record | values
    if failure:
        record["status"] = "failed"
        record["message"] = "; ".join(filter(None, [record["message"], f"significance: {failure}"]))
    return record


def _compile_point(
    base: spec.PatchBase, cache: SampleCache, patch: spec.Patch, settings: ScanSettings, file: str
) -> tuple[Structure, Numbers]:
    """Patch (validating the result), compile, and check the expected yields of a point.

    ``base`` and ``cache`` hold what checking and compiling the background found, so a
    point costs about what its own (signal) samples do."""
    # lives only while the point is compiled, and only read: it may hold the patch's values
    patched = spec.apply_patches(base, [patch], file=file, share_values=True)
    # validated just now; compile_workspace checks the POI
    measurement = spec.find_measurement(patched, settings.measurement, file=file)
    structure, numbers = compile_workspace(
        patched,
        measurement,
        normsys_code=settings.normsys_code,
        histosys_code=settings.histosys_code,
        clip_yields=settings.clip_negative_yields,
        file=file,
        cache=cache,
    )
    check_yields(structure, numbers, workspace=patched, file=f"{file} (point {patch.name})")
    check_poi_values(structure, numbers, 0.0 if settings.test_stat == "q0" else settings.mu)
    return structure, numbers


def prepare_point(background, cache, patch, settings: ScanSettings, file: str):
    """A point prepared (:func:`_compile_point`): its ``(structure, numbers)``, or the
    HfpipeError that refused it."""
    try:
        return _compile_point(background, cache, patch, settings, file)
    except HfpipeError as error:
        return error


#: a pool worker's background of the scan it prepares points for: (token, base, cache)
_WORKER_BACKGROUND: list = []


def prepare_in_worker(token: str, workspace: str, patches, settings: ScanSettings, file: str):
    """The points of ``patches`` prepared in a pool's worker, and the warnings raised. The
    background (``workspace`` as JSON text, its checks and compiled samples) is made once
    a scan (``token``)."""
    if not _WORKER_BACKGROUND or _WORKER_BACKGROUND[0] != token:
        background = spec.PatchBase.of(json.loads(workspace))
        _WORKER_BACKGROUND[:] = [token, background, SampleCache(background.workspace)]
        freeze_long_lived()  # kept for the scan: out of the collector's way
    _, background, cache = _WORKER_BACKGROUND
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcomes = [prepare_point(background, cache, patch, settings, file) for patch in patches]
    return outcomes, [w.message for w in caught]


def run_batch_here(batch: UnionBatch, rows: Sequence[int], settings: ScanSettings) -> list[dict]:
    """:func:`run_batch`, each row labelled with the device that ran it (a Dask worker's
    GPU, say, not the client's)."""
    device = device_kind()
    return [record | {"device": device} for record in run_batch(batch, rows, settings)]


def attempt(batch: UnionBatch, rows: Sequence[int], settings: ScanSettings):
    """Run a batch in this process; an exception is returned, to become failed rows."""
    try:
        return run_batch_here(batch, rows, settings)
    except Exception as error:
        return error
