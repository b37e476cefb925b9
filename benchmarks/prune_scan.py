"""Size-prune a background and scan it: what went, how much CLs moved, how much faster.

Prunes the background-only workspace with ``hfpipe.spec.prune_by_size`` (normsys and
histosys below ``--threshold`` in every bin, staterror/shapesys bins below it), prints
what was removed by type, then scans the same points of the patchset on the pruned and
the unpruned background with ``hfpipe.scanning.scan`` (in this process, each timed after a
first scan that compiles it) and prints the largest |ΔCLs| (observed and expected band),
both timings and their ratio.

    python benchmarks/prune_scan.py ../shared/data/atlas-1lbb [--threshold 1e-3] [--all]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

CLS_COLUMNS = ["cls_obs", "cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]


def _inputs(folder: Path) -> tuple[Path, Path]:
    suffix = ".json.gz" if (folder / "BkgOnly.json.gz").exists() else ".json"
    return folder / f"BkgOnly{suffix}", folder / f"patchset{suffix}"


def _timed_scan(workspace, patchset, points) -> tuple[float, object]:
    """Seconds of a scan already compiled (a first scan compiles), and its table."""
    from hfpipe.scanning import scan

    scan(workspace, patchset, points=points)
    start = time.perf_counter()
    frame = scan(workspace, patchset, points=points)
    return time.perf_counter() - start, frame.set_index("point")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--threshold", type=float, default=1e-3)
    parser.add_argument("--all", action="store_true", help="Scan every point, not three.")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from hfpipe import spec

    background, patchset_path = _inputs(args.folder)
    workspace = spec.load_workspace(background)
    document = spec.load_json(patchset_path)
    patchset = spec.load_patchset(document, name=str(patchset_path))
    start = time.perf_counter()
    pruned, report = spec.prune_by_size(workspace, args.threshold)
    pruning = time.perf_counter() - start
    rebased = spec.load_patchset(spec.rebase_patchset(document, pruned))
    names = list(patchset.names)
    points = names if args.all else [names[0], names[len(names) // 2], names[-1]]

    print(f"background: {background} ({len(names)} points, scanning {len(points)})")
    print(f"pruned at {args.threshold:g} in {pruning:.2f} s: {report.summary()}")
    for kind, count in report.counts().items():
        print(f"  {kind}: {count}")
    print(f"  parameters gone: {', '.join(report.parameters) or 'none'}")
    full_seconds, full = _timed_scan(workspace, patchset, points)
    pruned_seconds, reduced = _timed_scan(pruned, rebased, points)
    delta = (reduced.loc[points, CLS_COLUMNS] - full.loc[points, CLS_COLUMNS]).abs()
    print(
        f"status ok: unpruned {(full['status'] == 'ok').sum()}, pruned {(reduced['status'] == 'ok').sum()}"
    )
    print(
        f"max |ΔCLs| over {len(points)} points: {delta.to_numpy().max():.2e} (observed {delta['cls_obs'].max():.2e})"
    )
    print(f"scan unpruned: {full_seconds:.2f} s, pruned: {pruned_seconds:.2f} s")
    print(f"ratio unpruned / pruned: {full_seconds / pruned_seconds:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
