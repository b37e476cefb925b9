"""Incremental scan output: one Parquet part per finished batch, merged at the end.

:func:`scan_to_parquet` runs :func:`hfpipe.scan.scan` so that nothing computed is lost.
A scan writing ``OUT.parquet`` keeps its finished batches in ``OUT.parquet.parts/``,
each part written atomically (:func:`hfpipe.results.table.write_table`), so a killed
scan leaves only complete files and loses nothing already computed. Every part records,
in its provenance, the *run digest* (inputs that all points share: the background-only
workspace, the settings, the hfpipe version) and one *point digest* per row (that
point's patch). A rerun with the same output reads the parts back and skips every point
whose two digests still match; anything else is recomputed. The final merge writes
``OUT.parquet`` atomically and only then removes the parts directory.

A finished ``OUT.parquet`` counts as done too: rerunning a complete scan recomputes
nothing, and a rerun with more points computes only the new ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from hfpipe import __version__, spec
from hfpipe.results.table import read_table, write_table
from hfpipe.scan import ERROR_STATUS, ScanSettings, resolve_settings, scan
from hfpipe.scan.provenance import scan_provenance

__all__ = ["PartStore", "digest", "scan_to_parquet"]

log = logging.getLogger(__name__)


def digest(value) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
    """:func:`hfpipe.scan.scan` writing to ``output`` (Parquet) as it goes.

    Every finished batch is kept as a part in ``OUT.parquet.parts/``; at the end the
    whole table goes to ``output`` atomically, with provenance (hfpipe version, sha256
    of both inputs, settings). With ``resume`` (default), points an earlier run with the
    same output, inputs and settings finished — in its parts or its final table — are
    read back, not recomputed. ``options`` go to :func:`~hfpipe.scan.scan` (``client``,
    ``progress``, setting overrides). The frame's ``attrs["computed"]`` and
    ``attrs["reused"]`` count both kinds of points.
    """
    settings = resolve_settings(settings, {k: options.pop(k) for k in _setting_names(options)})
    ws = spec.load_workspace(workspace)
    ps = patchset if isinstance(patchset, spec.PatchSet) else spec.load_patchset(patchset)
    chosen = list(points) if points is not None else list(ps.names)
    point_digests = {
        patch.name: digest([patch.name, patch.values, patch.operations]) for patch in ps.patches
    }
    numeric = {k: v for k, v in asdict(settings).items() if k != "batch_size"}
    store = PartStore(output, digest([__version__, analysis, spec.workspace_digest(ws), numeric]))
    reuse = {}
    if resume:
        wanted = {name: point_digests[name] for name in chosen if name in point_digests}
        reuse = {r["point"]: r for r in store.finished(wanted).to_dict("records")}
        if reuse:
            log.info("%s: %d of %d points already computed", output, len(reuse), len(chosen))

    def keep(records: list[dict]) -> None:
        store.write(pd.DataFrame.from_records(records), point_digests)

    frame = scan(
        ws,
        ps,
        points=chosen,
        analysis=analysis,
        settings=settings,
        reuse=reuse,
        on_batch=keep,
        **options,
    )
    provenance = scan_provenance(workspace, patchset, settings, points)
    store.merge(frame, provenance, point_digests)
    return frame


def _setting_names(options: dict) -> list[str]:
    fields = ScanSettings.__dataclass_fields__
    return [k for k in options if k in fields]


class PartStore:
    """The parts directory of one scan output, for one run digest."""

    def __init__(self, output: str | os.PathLike, run_digest: str):
        self.output = Path(output)
        self.directory = self.output.with_name(self.output.name + ".parts")
        self.run_digest = run_digest

    def finished(self, point_digests: dict[str, str]) -> pd.DataFrame:
        """Rows already computed for these points (by name → point digest), from the final
        table and the parts; the newest part wins where a point appears twice."""
        self._remove_temporaries()
        sources = [self.output] if self.output.exists() else []
        if self.directory.is_dir():
            sources += sorted(self.directory.glob("*.parquet"), key=lambda p: p.stat().st_mtime)
        found: dict[str, dict] = {}
        for path in sources:
            try:
                frame, provenance = read_table(path)
            except Exception as error:  # an unreadable file is recomputed, never fatal
                warnings.warn(
                    f"{path}: unreadable, its points are recomputed ({error})", stacklevel=2
                )
                continue
            if provenance.get("run_digest") != self.run_digest:
                continue
            digests = provenance.get("point_digests", {})
            for record in frame.to_dict("records"):
                name = record.get("point")
                if (
                    name in point_digests
                    and digests.get(name) == point_digests[name]
                    and record.get("status") != ERROR_STATUS
                ):
                    found[name] = record
        return pd.DataFrame.from_records(list(found.values()))

    def write(self, frame: pd.DataFrame, point_digests: dict[str, str]) -> Path:
        """Write one finished batch as a part (atomically); named by its points."""
        names = list(frame["point"])
        key = digest([self.run_digest, names])[:20]
        provenance = {
            "run_digest": self.run_digest,
            "point_digests": {name: point_digests[name] for name in names},
        }
        return write_table(frame, self.directory / f"part-{key}.parquet", provenance)

    def merge(self, frame: pd.DataFrame, provenance: dict, point_digests: dict[str, str]) -> Path:
        """Write the whole table to the output atomically, then drop the parts."""
        provenance = {
            **provenance,
            "run_digest": self.run_digest,
            "point_digests": {name: point_digests[name] for name in frame["point"]},
        }
        path = write_table(frame, self.output, provenance)
        shutil.rmtree(self.directory, ignore_errors=True)
        return path

    def _remove_temporaries(self) -> None:
        """Temporary files of writes a kill interrupted (never complete: renamed otherwise)."""
        stale = list(self.output.parent.glob(f".{self.output.name}.*.tmp"))
        if self.directory.is_dir():
            stale += self.directory.glob(".*.tmp")
        for path in stale:
            path.unlink(missing_ok=True)
