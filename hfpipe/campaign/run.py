"""Running a campaign: fetch every analysis, scan it, draw its contour, summarise.

For each analysis of a :class:`~hfpipe.campaign.config.Campaign`: fetch the source
(:mod:`~hfpipe.campaign.fetch`), unpack it and pair its workspaces and patchsets by
digest (:mod:`~hfpipe.campaign.archive`), then for every pair

- scan it into ``<output>/<name>/scan.parquet`` — unless that table already exists with
  the same input digests, settings and points in its provenance: then nothing is
  computed (status ``cached``);
- draw its contour (``contour.png``, ``.pdf``, …) from the table, unless those files
  exist and the table was not recomputed.

A problem with one analysis (download, archive, digests) is recorded in the summary as
``failed`` with its message and the campaign goes on. The summary, one row per
analysis (pair), goes to ``<output>/summary.csv``: points, ok points, failures,
excluded points (observed and expected), the scan's wall time, status and outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hfpipe.campaign.archive import Pair, find_pairs, unpack
from hfpipe.campaign.config import AnalysisSource, Campaign
from hfpipe.campaign.fetch import fetch
from hfpipe.errors import HfpipeError
from hfpipe.results import read_table, write_table
from hfpipe.results.atomic import atomic_path
from hfpipe.scanning import ScanSettings, scan
from hfpipe.scanning.provenance import same_inputs, scan_provenance

__all__ = ["SUMMARY_COLUMNS", "ResolvedPair", "resolve", "run_campaign"]

SUMMARY_COLUMNS = [
    "analysis",
    "status",
    "points",
    "ok",
    "failures",
    "excluded_obs",
    "excluded_exp",
    "wall_seconds",
    "table",
    "contour",
    "message",
]


@dataclass(frozen=True)
class ResolvedPair:
    """A pair ready to scan, with the name its outputs go under."""

    name: str
    pair: Pair
    points: tuple[str, ...] | None


def resolve(analysis: AnalysisSource, cache: Path) -> list[ResolvedPair]:
    """Fetch and unpack an analysis; its (workspace, patchset) pairs, named.

    One pair keeps the analysis' name; several are named ``<name>-<patchset path>``.
    """
    if analysis.source is None:
        workspace = fetch(analysis.workspace, cache)
        patchset = fetch(analysis.patchset, cache)
        pairs = [Pair(workspace=workspace, patchset=patchset, label=analysis.name)]
    else:
        folder = unpack(fetch(analysis.source, cache, sha256=analysis.sha256), cache)
        pairs = find_pairs(folder)
    if len(pairs) == 1:
        return [ResolvedPair(analysis.name, pairs[0], analysis.points)]
    return [
        ResolvedPair(f"{analysis.name}-{p.label.replace('/', '-')}", p, analysis.points)
        for p in pairs
    ]


def _count(table: pd.DataFrame, level: float) -> dict:
    ok = table["status"] == "ok"
    return {
        "points": len(table),
        "ok": int(ok.sum()),
        "failures": int((~ok).sum()),
        "excluded_obs": int((ok & (table["cls_obs"] < level)).sum()),
        "excluded_exp": int((ok & (table["cls_exp"] < level)).sum()),
    }


def _scan_pair(
    item: ResolvedPair, settings: ScanSettings, folder: Path
) -> tuple[pd.DataFrame, dict, bool]:
    """The pair's table: read back if up to date, else computed and written."""
    path = folder / "scan.parquet"
    wanted = scan_provenance(item.pair.workspace, item.pair.patchset, settings, item.points)
    if path.exists():
        table, recorded = read_table(path)
        if same_inputs(recorded, wanted):
            return table, recorded, False
    start = time.perf_counter()
    table = scan(
        str(item.pair.workspace),
        str(item.pair.patchset),
        points=item.points,
        analysis=item.name,
        settings=settings,
    )
    wanted["wall_seconds"] = time.perf_counter() - start
    write_table(table, path, wanted)
    return table, wanted, True


def _draw(table: pd.DataFrame, folder: Path, campaign: Campaign, fresh: bool) -> list[Path]:
    from hfpipe.plot import exclusion_contours, write_contour_data
    from hfpipe.plot.draw import draw_contours, save_figure

    outputs = [folder / f"contour.{suffix}" for suffix in campaign.formats]
    if not fresh and all(p.exists() for p in outputs):
        return outputs
    contours = exclusion_contours(table, cl=campaign.cl)
    figures = [p for p in outputs if p.suffix not in (".csv", ".parquet")]
    for path in outputs:
        if path not in figures:
            write_contour_data(contours, path)
    if figures:
        save_figure(draw_contours(contours, title=folder.name), figures)
    return outputs


def run_campaign(
    campaign: Campaign, *, report: Callable[[str], None] = lambda message: None
) -> pd.DataFrame:
    """Run every analysis of ``campaign``; returns (and writes) the summary table."""
    settings = ScanSettings(**campaign.settings)
    level = round(1 - campaign.cl, 12)
    rows = []
    for analysis in campaign.analyses:
        try:
            items = resolve(analysis, campaign.cache)
        except HfpipeError as error:
            rows.append({"analysis": analysis.name, "status": "failed", "message": str(error)})
            report(f"{analysis.name}: failed: {error}")
            continue
        for item in items:
            folder = campaign.output / item.name
            row = {"analysis": item.name, "table": str(folder / "scan.parquet"), "message": ""}
            try:
                table, provenance, fresh = _scan_pair(item, settings, folder)
                row |= _count(table, level)
                row["status"] = "computed" if fresh else "cached"
                row["wall_seconds"] = provenance.get("wall_seconds")
                report(f"{item.name}: {row['status']}, {row['points']} points")
            except HfpipeError as error:
                rows.append(row | {"status": "failed", "message": str(error)})
                report(f"{item.name}: failed: {error}")
                continue
            try:
                row["contour"] = ", ".join(str(p) for p in _draw(table, folder, campaign, fresh))
            except HfpipeError as error:
                row["message"] = f"no contour: {error}"
            rows.append(row)
    summary = pd.DataFrame.from_records(rows).reindex(columns=SUMMARY_COLUMNS)
    with atomic_path(campaign.output / "summary.csv") as temporary:
        summary.to_csv(temporary, index=False)
    return summary
