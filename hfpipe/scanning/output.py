"""Scans that lose nothing: incremental output and resume (:func:`scan_to_parquet`).

A scan writing ``OUT.parquet`` keeps its finished batches in ``OUT.parquet.parts/``
(:class:`~hfpipe.results.parts.PartStore`), each part written atomically, so a killed
scan leaves only complete files and loses nothing already computed. Every part records,
in its provenance, the *run digest* (inputs that all points share: the background-only
workspace, the settings, the hfpipe version) and one *point digest* per row (that
point's patch; for signal hypotheses from a table, its rows and the signal config). A
rerun with the same output reads the parts back and skips every point whose two
digests still match; anything else is recomputed. The final merge writes
``OUT.parquet`` atomically and only then removes the parts directory.

A finished ``OUT.parquet`` counts as done too: rerunning a complete scan recomputes
nothing, and a rerun with more points computes only the new ones.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from hfpipe import __version__, spec
from hfpipe.results.parts import PartStore, digest, document_digest
from hfpipe.scanning.pool import inputs_out_of_collector, may_use_processes, start_process_server
from hfpipe.scanning.provenance import scan_provenance
from hfpipe.scanning.run import ScanSettings, local_pool, resolve_settings, scan

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["scan_to_parquet"]

log = logging.getLogger(__name__)

#: Finished rows are written as a part at least this often (seconds), not once per
#: batch: a part is a Parquet file, and a scan of small batches would spend more time
#: writing parts than fitting. A killed scan loses at most this much work. The first
#: finished batch is written at once, so that even a short scan shows progress on disk.
PART_SECONDS = 2.0


def scan_to_parquet(
    workspace,
    patchset,
    output: str | os.PathLike,
    *,
    points: Sequence[str] | None = None,
    analysis: str | None = None,
    settings: ScanSettings | None = None,
    resume: bool = True,
    **options,
) -> pd.DataFrame:
    """:func:`~hfpipe.scanning.scan` writing to ``output`` (Parquet) as it goes.

    ``patchset``: a patchset (path or loaded) or signal hypotheses from a table
    (:func:`hfpipe.spec.load_signals`). Finished rows are kept as parts in
    ``OUT.parquet.parts/`` (every :data:`PART_SECONDS` at least); at the end the whole
    table goes to ``output`` atomically, with provenance (hfpipe version, sha256 of both
    inputs — for signal hypotheses, of the table and its config —, settings). With
    ``resume`` (default), points an earlier run with the same output, inputs and
    settings finished — in its parts or its final table — are read back, not recomputed.
    ``options`` go to :func:`~hfpipe.scanning.scan` (``client``, ``progress``,
    ``chunk_size``, setting overrides). The frame's ``attrs["computed"]`` and
    ``attrs["reused"]`` count both kinds of points.

    Without a Dask client the scan runs on a process pool where it needs one
    (``workers``, see :func:`~hfpipe.scanning.scan`), started as soon as the points are
    counted, so that its processes start up while the workspace is read; the fork server
    its processes come from (:func:`~hfpipe.scanning.pool.process_context`) is started
    first, to import the engine while the patchset is read.
    """
    settings = resolve_settings(settings, {k: options.pop(k) for k in _setting_names(options)})
    may_use_pool = _may_use_pool(output, resume, options)
    if may_use_pool:  # its processes' imports overlap reading the patchset
        start_process_server()
    with contextlib.ExitStack() as scope:
        inputs_read = scope.enter_context(inputs_out_of_collector())
        loaded = patchset if _is_loaded(patchset) else spec.load_patchset(patchset)
        pool = _scan_pool(loaded, points, settings, options) if may_use_pool else None
        scope.enter_context(pool or contextlib.nullcontext())
        ws = spec.load_workspace(workspace)
        ps = _points(loaded, ws, settings)
        chosen = list(points) if points is not None else list(ps.names)
        point_digests = _PointDigests(ps, chosen)
        numeric = {k: v for k, v in asdict(settings).items() if k != "batch_size"}
        store = PartStore(
            output, digest([__version__, analysis, spec.workspace_digest(ws), numeric])
        )
        reuse = {}
        if resume:
            reuse = {r["point"]: r for r in store.finished(point_digests)}
            if reuse:
                log.info("%s: %d of %d points already computed", output, len(reuse), len(chosen))

        pending: list[dict] = []
        written = [-math.inf]  # the first batch is written at once

        def write_pending() -> None:
            if pending:
                import pandas as pd  # see below

                store.write(pd.DataFrame.from_records(pending), point_digests)
                pending.clear()
            written[0] = time.monotonic()

        def keep(records: list[dict]) -> None:
            point_digests.compute(record["point"] for record in records)
            pending.extend(records)
            if time.monotonic() - written[0] >= PART_SECONDS:
                write_pending()

        background = spec.PatchBase.of(ws)
        inputs_read()
        if pool is None:
            # pandas and pyarrow for the parts: with a pool, first needed once its
            # workers fit (this process hands out the points first); without one, this
            # process prepares them itself, and imported now, a first part is written
            # as soon as the first batch is done, while the others (on Dask) still run
            import pandas  # noqa: F401
            import pyarrow.parquet  # noqa: F401

        try:
            frame = scan(
                background,
                ps,
                points=chosen,
                analysis=analysis,
                settings=settings,
                reuse=reuse,
                on_batch=keep,
                pool=pool,
                **options,
            )
        finally:
            write_pending()  # also what a failing or interrupted scan finished
        if spec.is_signals(ps, "SignalPatches"):
            provenance = scan_provenance(workspace, {}, settings, points)
            provenance["patchset"] = ps.signals.provenance()
        else:
            provenance = scan_provenance(workspace, patchset, settings, points)
        store.merge(frame, provenance, point_digests)
        return frame


def _is_loaded(patchset) -> bool:
    """Whether ``patchset`` is a loaded patchset or signal hypotheses, not a path."""
    return isinstance(patchset, spec.PatchSet) or spec.is_signals(patchset)


def _may_use_pool(output, resume: bool, options: dict) -> bool:
    """Whether a scan may run on a process pool, before its points are counted: not with
    a Dask client, not on one core or one worker, not for a rerun of an output that
    already exists (whose points may all be done)."""
    rerun = Path(output).exists() or Path(f"{os.fspath(output)}.parts").exists()
    return (
        options.get("client") is None
        and may_use_processes(options.get("workers", 1))
        and not (resume and rerun)
    )


def _scan_pool(loaded, points, settings, options: dict):
    """The process pool of a scan that may use one (:func:`_may_use_pool`), started
    before the workspace is read (its processes import the engine meanwhile), or None
    where one process is best."""
    if points is None:
        points = loaded.table.points if spec.is_signals(loaded, "SignalSet") else loaded.names
    return local_pool(None, options.get("workers", 1), len(points), settings.batch_size)


def _points(loaded, workspace: dict, settings: ScanSettings):
    """The loaded patchset, or signal hypotheses bound to the workspace."""
    if spec.is_signals(loaded, "SignalSet"):
        return loaded.bind(workspace, measurement=settings.measurement)
    return loaded


class _PointDigests(Mapping):
    """Per chosen point, the digest of what its row is computed from: its patch, or for
    signal hypotheses its table rows and the signal config (no patch need be made for
    it). Each is computed when first asked for, or as its row arrives
    (:meth:`compute`): a new scan needs a point's digest only when it writes the point's
    row, and computes it while it waits for its workers, not before they start or after
    they finish."""

    def __init__(self, ps, chosen: Sequence[str]):
        self._ps = ps
        self._names = set(chosen) & set(ps.names)
        self._found: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._found:
            self._found[name] = self._digest(name)
        return self._found[name]

    def compute(self, names: Iterable[str]) -> None:
        """Compute the digests of ``names`` now (those of chosen points)."""
        for name in names:
            self[name]

    def _digest(self, name: str) -> str:
        if spec.is_signals(self._ps, "SignalPatches"):
            return self._ps.point_digest(name)
        patch = self._ps[name]
        return document_digest([patch.name, patch.values, patch.operations])

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _setting_names(options: dict) -> list[str]:
    fields = ScanSettings.__dataclass_fields__
    return [k for k in options if k in fields]
