"""``scan``: CLs (and optionally upper limits) for every signal point of a patchset.

The work goes: load and verify inputs → patch and compile every point (numpy, fast) →
group points into union structures (:mod:`hfpipe.scan.union`) → run each group in
batches of ``batch_size`` points through one compiled, vmapped hypothesis test → one
row per point. A point that cannot be compiled or whose fits fail is a row with
``status`` ≠ ``ok`` and a message; the scan goes on.

The unit of work is :func:`run_batch` — a pure function of (union structure, numbers)
to rows — so the same batches run in this process (the default) or as Dask tasks on a
client's workers (:mod:`hfpipe.scan.distributed`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import jax
import numpy as np
import pandas as pd

from hfpipe import spec
from hfpipe.errors import HfpipeError
from hfpipe.infer import FitOptions, hypotest_batch
from hfpipe.infer.limits import LIMIT_TEST_STATISTICS, upper_limits_batch
from hfpipe.infer.toys import DEFAULT_TOY_BATCH_SIZE, ToyFitsFailed, toy_distributions
from hfpipe.model import Numbers, SampleCache, Structure, check_yields, compile_workspace
from hfpipe.scan.columns import EXPECTED_COLUMNS, LIMIT_COLUMNS, column_order
from hfpipe.scan.union import UnionBatch, unify

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ERROR_STATUS",
    "ScanSettings",
    "default_batch_size",
    "resolve_settings",
    "run_batch",
    "run_batch_here",
    "scan",
]

#: status of the rows of a batch that raised: an error of the run, not a result (a
#: resumed scan recomputes them)
ERROR_STATUS = "error"

#: Points per compiled call on a CPU. A vmapped fit runs as many iterations as its
#: slowest row, so on a CPU (one XLA thread, see hfpipe._jax) small batches win: the
#: fits of all 125 ATLAS 1Lbb points took 10.3 s warm in batches of 1, 12.6 s of 2,
#: 16.3 s of 4, 23.6 s of 8, 36.5 s of 32, 43.3 s of 64 (one compilation each).
DEFAULT_BATCH_SIZE = 1
#: ... and on an accelerator, where a batch's rows run in parallel.
DEFAULT_ACCELERATOR_BATCH_SIZE = 64


def default_batch_size() -> int:
    """Points per compiled call for the device this process computes on."""
    if jax.default_backend() == "cpu":
        return DEFAULT_BATCH_SIZE
    return DEFAULT_ACCELERATOR_BATCH_SIZE


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
    batch_size: int = field(default_factory=default_batch_size)
    calctype: str = "asymptotics"  # or "toybased"
    ntoys: int = 1000  # toys per hypothesis and point (toybased)
    seed: int = 0  # the toys of every point use this seed (toybased)
    toy_batch_size: int | None = DEFAULT_TOY_BATCH_SIZE  # None: by model size
    max_failed_fraction: float = 0.01  # of toy fits, above which a point fails

    #: opt-in for unphysical models: clip expected bin yields at a small positive floor
    #: instead of rejecting negative ones (:mod:`hfpipe.model.physical`)
    clip_negative_yields: bool = False

    def __post_init__(self):
        if self.calctype not in ("asymptotics", "toybased"):
            raise HfpipeError(f"calctype must be asymptotics or toybased, not {self.calctype!r}")
        if self.calctype == "toybased" and self.upper_limits:
            raise HfpipeError("upper limits are computed with asymptotics only, not toys")
        if self.upper_limits and self.test_stat not in LIMIT_TEST_STATISTICS:
            raise HfpipeError(f"upper limits need test statistic qtilde or q, not {self.test_stat}")


def _device() -> str:
    return jax.devices()[0].device_kind if jax.devices() else "cpu"


def _pad_rows(batch: UnionBatch, rows: Sequence[int], size: int):
    """Numbers of ``rows`` of a union batch, padded to ``size`` by repeating the last one
    (every call then has one shape and reuses one compilation)."""
    index = np.array(list(rows) + [rows[-1]] * (size - len(rows)))
    return jax.tree.map(lambda a: np.asarray(a)[index], batch.numbers)


def run_batch(batch: UnionBatch, rows: Sequence[int], settings: ScanSettings) -> list[dict]:
    """Hypothesis tests (and limits) for ``rows`` of a union batch; one dict per row."""
    if settings.calctype == "toybased":
        return [_run_toys(batch, row, settings) for row in rows]
    start = time.perf_counter()
    numbers = _pad_rows(batch, rows, settings.batch_size)
    result = hypotest_batch(
        batch.structure, numbers, settings.mu, test_stat=settings.test_stat, options=FitOptions()
    )
    limits = None
    if settings.upper_limits:
        limits = upper_limits_batch(
            batch.structure, numbers, cl=settings.cl, test_stat=settings.test_stat, reference=result
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


def _run_toys(batch: UnionBatch, row: int, settings: ScanSettings) -> dict:
    """Toy-based CLs of one point of a union batch (toys are the batch axis here)."""
    start = time.perf_counter()
    numbers = jax.tree.map(lambda a: np.asarray(a)[row], batch.numbers)
    try:
        toys = toy_distributions(
            batch.structure,
            numbers,
            settings.mu,
            ntoys=settings.ntoys,
            seed=settings.seed,
            test_stat=settings.test_stat,
            batch_size=settings.toy_batch_size,
        )
        result = toys.cls(max_failed_fraction=settings.max_failed_fraction)
    except ToyFitsFailed as error:
        return {"status": "failed", "message": str(error), "seconds": time.perf_counter() - start}
    return {
        "mu": settings.mu,
        "cls_obs": result.cls_obs,
        **dict(zip(EXPECTED_COLUMNS, map(float, result.cls_exp), strict=True)),
        "mu_hat": toys.mu_hat,
        "twice_nll": toys.twice_nll - batch.padding_twice_nll[row],
        "status": "ok",
        "message": f"{result.n_failed} toy fits failed" if result.n_failed else "",
        "n_failed": result.n_failed,
        "seconds": time.perf_counter() - start,
    }


def _load(workspace, patchset):
    ws = spec.load_workspace(workspace)
    ps = patchset if isinstance(patchset, spec.PatchSet) else spec.load_patchset(patchset)
    spec.verify_patchset(ps, ws, file=str(patchset) if not isinstance(patchset, Mapping) else None)
    return ws, ps


def _compile_point(
    base: spec.PatchBase, cache: SampleCache, patch: spec.Patch, settings: ScanSettings, file: str
) -> tuple[Structure, Numbers]:
    """Patch (validating the result), compile, and check the expected yields of a point.

    ``base`` and ``cache`` hold what checking and compiling the background found, so a
    point costs about what its own (signal) samples do."""
    patched = spec.apply_patches(base, [patch], file=file)
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
    return structure, numbers


def scan(
    workspace,
    patchset,
    *,
    points: Sequence[str] | None = None,
    analysis: str | None = None,
    settings: ScanSettings | None = None,
    progress: bool = False,
    client=None,
    reuse: Mapping[str, dict] | None = None,
    on_batch: Callable[[list[dict]], None] | None = None,
    **overrides,
) -> pd.DataFrame:
    """Scan the signal points of ``patchset`` on the background-only ``workspace``.

    ``workspace`` and ``patchset`` are paths (``.json`` or ``.json.gz``) or loaded
    objects. ``points`` picks patch names (default: all). Settings come from
    ``settings`` and/or keyword overrides (``mu``, ``test_stat``, ``upper_limits``,
    ``cl``, ``batch_size``, ``normsys_code``, ``histosys_code``, ``measurement``,
    ``clip_negative_yields``).
    Returns one row per point with the columns of DESIGN.md §4.

    ``client``: a ``dask.distributed.Client``; each batch then runs as one Dask task
    (:mod:`hfpipe.scan.distributed`), results streaming back as tasks finish.
    ``reuse``: rows already computed, by point name; those points are returned as given,
    not recomputed. ``on_batch``: called with the rows of every batch as it finishes
    (incremental output, :func:`hfpipe.results.parts.scan_to_parquet`).

    ``calctype="toybased"`` (with ``ntoys``, ``seed``, ``toy_batch_size``,
    ``max_failed_fraction``) computes toy-based CLs point by point, each point's toys
    in batched fits, and adds a column ``n_failed`` (failed toy fits).
    """
    settings = resolve_settings(settings, overrides)
    ws, ps = _load(workspace, patchset)
    names = list(points) if points is not None else list(ps.names)
    patches = [ps[name] for name in names]  # unknown names raise a one-line error
    file = str(patchset) if isinstance(patchset, str | os.PathLike) else "<patchset>"
    if analysis is None:
        analysis = ps.name or ps.analysis_id or "analysis"
    reuse = reuse or {}

    background = spec.PatchBase.of(ws)  # validated by _load
    compiled_background = SampleCache(background.workspace)
    base = [_base_record(analysis, patch, ps.labels, settings) for patch in patches]
    rows: dict[int, dict] = {}
    compiled, compiled_index = [], []
    for i, patch in enumerate(patches):
        if patch.name in reuse:
            continue
        try:
            compiled.append(_compile_point(background, compiled_background, patch, settings, file))
            compiled_index.append(i)
        except HfpipeError as error:
            rows[i] = base[i] | {"status": "invalid", "message": str(error), "device": _device()}

    bar = _progress(len(patches), progress)
    bar.update(len(patches) - len(compiled))
    for members, records in _run_batches(compiled, ws, settings, client):
        members = [compiled_index[m] for m in members]
        records = [base[i] | record for i, record in zip(members, records, strict=True)]
        if on_batch is not None:
            on_batch(records)
        rows.update(zip(members, records, strict=True))
        bar.update(len(members))
    bar.close()

    frame = _frame([reuse.get(p.name) or rows[i] for i, p in enumerate(patches)], ps.labels)
    frame.attrs |= {"computed": len(compiled), "reused": sum(p.name in reuse for p in patches)}
    return frame


def resolve_settings(settings: ScanSettings | None, overrides: Mapping) -> ScanSettings:
    """``settings`` (default: the defaults) with keyword ``overrides`` applied."""
    return ScanSettings(**{**asdict(settings or ScanSettings()), **overrides})


def _run_batches(compiled, ws, settings: ScanSettings, client):
    """Group compiled points into union structures, cut the groups into batches and run
    them — in this process, or as Dask tasks on ``client``; yield ``(indices into
    compiled, records)`` per batch as it finishes. A batch that raised yields rows with
    status ``error`` (a rerun recomputes them), never a lost scan."""
    if not compiled:
        return
    background_samples = {c["name"]: {s["name"] for s in c["samples"]} for c in ws["channels"]}
    background_parameters = {
        m["name"] for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]
    }
    groups = unify(compiled, background_samples, background_parameters)
    tasks = [
        (group, list(range(len(group.members)))[k : k + settings.batch_size])
        for group in groups
        for k in range(0, len(group.members), settings.batch_size)
    ]
    if client is None:
        outcomes = ((k, _attempt(*task, settings)) for k, task in enumerate(tasks))
    else:
        from hfpipe.scan.distributed import run_batches

        outcomes = run_batches(client, run_batch_here, tasks, settings)
    for k, outcome in outcomes:
        group, chunk = tasks[k]
        if isinstance(outcome, BaseException):
            message = f"batch raised {type(outcome).__name__}: {outcome}".replace("\n", " ")
            outcome = [{"status": ERROR_STATUS, "message": message}] * len(chunk)
        yield [group.members[row] for row in chunk], outcome


def run_batch_here(batch: UnionBatch, rows: Sequence[int], settings: ScanSettings) -> list[dict]:
    """:func:`run_batch`, each row labelled with the device that ran it (a Dask worker's
    GPU, say, not the client's)."""
    device = _device()
    return [record | {"device": device} for record in run_batch(batch, rows, settings)]


def _attempt(batch: UnionBatch, rows: Sequence[int], settings: ScanSettings):
    """Run a batch in this process; an exception is returned, to become failed rows."""
    try:
        return run_batch_here(batch, rows, settings)
    except Exception as error:
        return error


def _base_record(analysis: str, patch, labels, settings: ScanSettings) -> dict:
    return {
        "analysis": analysis,
        "point": patch.name,
        **{label: _label_value(v) for label, v in zip(labels, patch.values, strict=True)},
        "mu": settings.mu,
        "calctype": settings.calctype,
        "test_stat": settings.test_stat,
        "ntoys": settings.ntoys if settings.calctype == "toybased" else 0,
    }


def _frame(records: list[dict], labels) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records)
    for column in [*EXPECTED_COLUMNS, "cls_obs", "mu_hat", "twice_nll", "seconds"]:
        if column not in frame:
            frame[column] = np.nan
    frame["message"] = frame["message"].fillna("")
    return frame[column_order(list(labels), frame.columns)]


def _label_value(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="point", file=__import__("sys").stderr)
