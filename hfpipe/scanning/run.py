"""``scan``: CLs (and optionally upper limits) for every signal point of a patchset.

The work goes: load and verify inputs → patch and compile every point (numpy, fast) →
group points into union structures (:mod:`hfpipe.scanning.union`) → run each group in
batches of ``batch_size`` points through one compiled, vmapped hypothesis test → one
row per point. A point that cannot be compiled or whose fits fail is a row with
``status`` ≠ ``ok`` and a message; the scan goes on.

The unit of work is :func:`~hfpipe.scanning.batches.run_batch` — a pure function of
(union structure, numbers) to rows — so the same batches run in this process (the
default), on a process pool or as Dask tasks on a client's workers
(:mod:`hfpipe.scanning.distributed`). This module only orchestrates: it loads no JAX
itself (see :mod:`hfpipe._platform`), so a scan whose work goes to a process pool starts
the pool without first spending a second importing the engine.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from hfpipe import spec
from hfpipe._platform import backend, device_kind
from hfpipe.errors import HfpipeError
from hfpipe.infer.calctypes import CALCTYPES, DEFAULT_TOY_BATCH_SIZE
from hfpipe.infer.teststats import LIMIT_TEST_STATISTICS
from hfpipe.model.compile import SampleCache
from hfpipe.results.columns import (
    ERROR_STATUS,
    EXPECTED_COLUMNS,
    column_order,
    label_column_names,
)
from hfpipe.scanning.groups import group_points
from hfpipe.scanning.pool import (
    EngineFunction,
    ProcessPool,
    inputs_out_of_collector,
    may_use_processes,
    processes_for,
    start_process_server,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "ScanSettings",
    "default_batch_size",
    "local_pool",
    "resolve_settings",
    "scan",
]

#: Points per compiled call on a CPU. A vmapped fit runs as many iterations as its
#: slowest row, so on a CPU (one XLA thread, see hfpipe._jax) the smallest batch wins
#: (docs/performance.md).
DEFAULT_BATCH_SIZE = 1
#: ... and on an accelerator, where a batch's rows run in parallel.
DEFAULT_ACCELERATOR_BATCH_SIZE = 64
#: Points prepared (patched, compiled, unified) and run at a time: a scan's memory is
#: that of a chunk's compiled numbers (~0.5 MB a point on ATLAS 1Lbb, twice over while
#: they are stacked into a union), however many points it has.
DEFAULT_CHUNK_SIZE = 256


def default_batch_size() -> int:
    """Points per compiled call for the device this process computes on."""
    if backend() == "cpu":
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
    #: also the discovery p0 and Z (a q0 test of every point, same calctype)
    significance: bool = False

    #: opt-in for unphysical models: clip expected bin yields at a small positive floor
    #: instead of rejecting negative ones (:mod:`hfpipe.model.physical`)
    clip_negative_yields: bool = False

    def __post_init__(self):
        if self.calctype not in CALCTYPES:
            raise HfpipeError(f"calctype must be asymptotics or toybased, not {self.calctype!r}")
        if self.calctype == "toybased" and self.upper_limits:
            raise HfpipeError("upper limits are computed with asymptotics only, not toys")
        if self.upper_limits and self.test_stat not in LIMIT_TEST_STATISTICS:
            raise HfpipeError(f"upper limits need test statistic qtilde or q, not {self.test_stat}")


def _load(workspace, patchset, measurement: str | None):
    """The workspace and the points: a patchset (verified against the workspace's
    digest) or a signal table bound to the workspace (:mod:`hfpipe.spec.signals`)."""
    ws = (
        workspace.workspace
        if isinstance(workspace, spec.PatchBase)
        else spec.load_workspace(workspace)
    )
    if spec.is_signals(patchset, "SignalPatches"):
        return ws, patchset
    if spec.is_signals(patchset, "SignalSet"):
        return ws, patchset.bind(ws, measurement=measurement)
    ps = patchset if isinstance(patchset, spec.PatchSet) else spec.load_patchset(patchset)
    spec.verify_patchset(
        ps, ws, file=os.fspath(patchset) if isinstance(patchset, str | os.PathLike) else None
    )
    return ws, ps


def scan(
    workspace,
    patchset,
    *,
    points: Sequence[str] | None = None,
    analysis: str | None = None,
    settings: ScanSettings | None = None,
    progress: bool = False,
    client=None,
    workers: int | None = 1,
    pool: ProcessPool | None = None,
    reuse: Mapping[str, dict] | None = None,
    on_batch: Callable[[list[dict]], None] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    **overrides,
) -> pd.DataFrame:
    """Scan the signal points of ``patchset`` on the background-only ``workspace``.

    ``workspace`` and ``patchset`` are paths (``.json`` or ``.json.gz``) or loaded
    objects (the workspace also as a :class:`~hfpipe.spec.PatchBase`, checked already);
    ``patchset`` may also be signal hypotheses from a table
    (:func:`hfpipe.spec.load_signals`). ``points`` picks patch names (default: all).
    Settings come from ``settings`` and/or keyword overrides (``mu``, ``test_stat``,
    ``upper_limits``, ``cl``, ``batch_size``, ``normsys_code``, ``histosys_code``,
    ``measurement``, ``clip_negative_yields``).
    Returns one row per point with the columns of :mod:`hfpipe.results.columns`.

    The points are prepared (patched, compiled, brought to a union structure) and run
    ``chunk_size`` at a time, so memory is bounded by a chunk (two on a process pool,
    which prepares the next while it runs one), not by the scan; a
    patchset of at most ``chunk_size`` points is one chunk, all its points one union.

    ``client``: a ``dask.distributed.Client``; each batch then runs as one Dask task
    (:mod:`hfpipe.scanning.distributed`), results streaming back as tasks finish.
    Without one, ``workers`` processes of this machine run the batches
    (:class:`~hfpipe.scanning.pool.ProcessPool`; ``None``: every core, as many as the
    batches keep busy; 1, the default: this process only). The rows are the same, bit
    for bit, wherever they ran. ``pool``: a started :class:`ProcessPool` to run on
    instead (the caller's, made with :func:`local_pool` before it read its inputs; not
    closed here).
    ``reuse``: rows already computed, by point name; those points are returned as given,
    not recomputed. ``on_batch``: called with the rows of every batch as it finishes
    (incremental output, :func:`hfpipe.scanning.scan_to_parquet`).

    ``calctype="toybased"`` (with ``ntoys``, ``seed``, ``toy_batch_size``,
    ``max_failed_fraction``) computes toy-based CLs point by point, each point's toys
    in batched fits, and adds a column ``n_failed`` (failed toy fits).
    """
    settings = resolve_settings(settings, overrides)
    if pool is None and client is None and may_use_processes(workers):
        start_process_server()  # its processes' imports overlap reading the inputs
    with inputs_out_of_collector() as inputs_read:
        ws, ps = _load(workspace, patchset, settings.measurement)
        names = list(points) if points is not None else list(ps.names)
        known = set(ps.names)
        for name in names:
            if name not in known:
                ps[name]  # raises a one-line error naming the patchset
        file = str(patchset) if isinstance(patchset, str | os.PathLike) else ps.source
        if analysis is None:
            analysis = ps.name or ps.analysis_id or "analysis"
        reuse = reuse or {}

        # validated by _load (or earlier: a PatchBase)
        background = workspace if isinstance(workspace, spec.PatchBase) else spec.PatchBase.of(ws)
        inputs_read()
        labels = _label_columns(ps.labels, file)
        rows: dict[int, dict] = {}
        todo = [i for i, name in enumerate(names) if name not in reuse]
        bar = _progress(len(names), progress)
        bar.update(len(names) - len(todo))
        own_pool = pool is None
        if own_pool:
            pool = local_pool(client, workers, points=len(todo), batch_size=settings.batch_size)
        # the background's compiled samples, for points prepared here (a pool's workers
        # make their own)
        compiled_background = SampleCache(background.workspace) if pool is None else None
        with pool if own_pool and pool is not None else contextlib.nullcontext():
            computed = 0
            chunks = [todo[k : k + chunk_size] for k in range(0, len(todo), chunk_size)]
            preparation = functools.partial(
                _start_preparing, pool, background, compiled_background, settings, file
            )
            steps = _prepared_chunks(chunks, ps, names, preparation, ahead=pool is not None)
            for chunk, patches, prepared in steps:
                base, compiled, compiled_index = {}, [], []
                for i, patch, outcome in zip(chunk, patches, prepared, strict=True):
                    base[i] = _base_record(analysis, patch, labels, settings)
                    if isinstance(outcome, HfpipeError):
                        rows[i] = base[i] | {
                            "status": "invalid",
                            "message": str(outcome),
                            "device": device_kind(),
                        }
                        bar.update(1)
                    else:
                        compiled.append(outcome)
                        compiled_index.append(i)
                prepared.clear()  # only compiled holds the points now, until they are grouped
                computed += len(compiled)
                for members, records in _run_batches(compiled, ws, settings, client, pool):
                    members = [compiled_index[m] for m in members]
                    records = [base[i] | record for i, record in zip(members, records, strict=True)]
                    if on_batch is not None:
                        on_batch(records)
                    rows.update(zip(members, records, strict=True))
                    bar.update(len(members))
        bar.close()

        frame = _frame([reuse.get(name) or rows[i] for i, name in enumerate(names)], labels)
        frame.attrs |= {"computed": computed, "reused": len(names) - len(todo)}
        return frame


def _label_columns(labels, file: str) -> list[str]:
    """The columns of the patchset's labels, with a warning for each renamed one."""
    names = label_column_names(labels)
    for i, (label, name) in enumerate(zip(labels, names, strict=True)):
        if name != label:
            warnings.warn(
                f"{file}: metadata.labels[{i}]: label '{label}' is also a column of the "
                f"results table; its values are in column '{name}'",
                spec.SpecWarning,
                stacklevel=3,
            )
    return names


#: Points a preparation task on a process pool takes (tasks go to whichever process is
#: free, so several a process even out their differences)
PREPARE_TASK_POINTS = 8


def _prepared_chunks(chunks: list[list[int]], ps, names: list[str], preparation, ahead: bool):
    """Each chunk (point indices) with its patches and prepared points (a list the
    caller may empty; see :func:`_start_preparing`, which ``preparation`` is, given the
    patches). With
    ``ahead`` (a process pool), the next chunk's preparation starts before a chunk is
    handed out, so that the pool prepares it while the caller runs this one's batches
    and no worker waits at a chunk's end: two chunks are in memory instead of one."""

    def start(chunk: list[int]):
        patches = [ps[names[i]] for i in chunk]
        return chunk, patches, preparation(patches)

    upcoming = start(chunks[0]) if chunks and ahead else None
    for k, chunk in enumerate(chunks):
        chunk, patches, collect = upcoming if ahead else start(chunk)
        prepared = collect()
        if ahead and k + 1 < len(chunks):
            upcoming = start(chunks[k + 1])
        yield chunk, patches, prepared


def _start_preparing(pool, background, cache, settings: ScanSettings, file: str, patches):
    """A function returning every patch's point prepared
    (:func:`~hfpipe.scanning.batches.prepare_point`): its ``(structure, numbers)``, or
    the HfpipeError that refused it. Without a ``pool`` it does the work when called; on
    a pool the work starts now, in tasks of :data:`PREPARE_TASK_POINTS` points, and the
    function waits for it and raises the tasks' warnings again here."""
    if pool is None:
        from hfpipe.scanning.batches import prepare_point

        return lambda: [
            prepare_point(background, cache, patch, settings, file) for patch in patches
        ]
    token = f"{id(background)}-{os.getpid()}"
    # as JSON text, written once here and read once a worker (1.2 MB, 0.05 s for 1Lbb)
    workspace = json.dumps(background.workspace)
    futures = pool.submit_all(
        EngineFunction("hfpipe.scanning.batches", "prepare_in_worker"),
        [
            (token, workspace, patches[k : k + PREPARE_TASK_POINTS], settings, file)
            for k in range(0, len(patches), PREPARE_TASK_POINTS)
        ],
    )

    def collect() -> list:
        prepared = []
        for future in futures:
            outcomes, caught = future.result()
            prepared += outcomes
            for warning in caught:
                warnings.warn(warning, stacklevel=4)
        futures.clear()  # the futures hold the points too: only the caller's list may
        return prepared

    return collect


def local_pool(client, workers: int | None, points: int, batch_size: int) -> ProcessPool | None:
    """The process pool for a scan of ``points`` points in batches of ``batch_size``
    without a Dask ``client``, or None where this process runs them (one process is
    best, or asked for). Started now, so that its processes import the engine while
    the caller reads and prepares the points."""
    if client is not None:
        return None
    processes = processes_for(-(-points // batch_size), workers)
    return ProcessPool(processes) if processes > 1 else None


def resolve_settings(settings: ScanSettings | None, overrides: Mapping) -> ScanSettings:
    """``settings`` (default: the defaults) with keyword ``overrides`` applied."""
    return ScanSettings(**{**asdict(settings or ScanSettings()), **overrides})


def _run_batches(compiled: list, ws, settings: ScanSettings, client, pool: ProcessPool | None):
    """Group compiled points (one stack where they share a layout, else union structures:
    :func:`~hfpipe.scanning.groups.group_points`), cut the groups into batches and run
    them — in this process, on a local ``pool`` or as Dask tasks on ``client``; yield
    ``(indices into compiled, records)`` per batch as it finishes. A batch that raised
    yields rows with status ``error`` (a rerun recomputes them), never a lost scan.
    ``compiled`` is emptied once grouped: the groups hold the points' numbers."""
    if not compiled:
        return
    background_samples = {c["name"]: {s["name"] for s in c["samples"]} for c in ws["channels"]}
    background_parameters = {
        m["name"] for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]
    }
    groups = group_points(compiled, background_samples, background_parameters)
    compiled.clear()
    tasks = [
        (group, list(range(len(group.members)))[k : k + settings.batch_size])
        for group in groups
        for k in range(0, len(group.members), settings.batch_size)
    ]
    if pool is not None:
        run_batch = EngineFunction("hfpipe.scanning.batches", "run_batch_here")
        outcomes = pool.run_batches(run_batch, tasks, settings)
    elif client is None:
        from hfpipe.scanning.batches import attempt

        outcomes = ((k, attempt(*task, settings)) for k, task in enumerate(tasks))
    else:
        from hfpipe.scanning.batches import run_batch_here
        from hfpipe.scanning.distributed import run_batches

        outcomes = run_batches(client, run_batch_here, tasks, settings)
    for k, outcome in outcomes:
        group, chunk = tasks[k]
        if isinstance(outcome, BaseException):
            message = f"batch raised {type(outcome).__name__}: {outcome}".replace("\n", " ")
            outcome = [{"status": ERROR_STATUS, "message": message}] * len(chunk)
        yield [group.members[row] for row in chunk], outcome


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
    import pandas as pd  # here: a worker process, which only runs batches, needs no pandas

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
