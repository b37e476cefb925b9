"""Scan a whole patchset with hfpipe and compare with pyhf in the same run.

hfpipe: ``hfpipe scan`` in a fresh process (cold: imports and compilation included),
its peak memory, then a warm in-process scan (compiled code cached). pyhf 0.7.6
(numpy + scipy, its default): ``hypotest`` on ``--pyhf-points`` points, timed and
extrapolated per point to the whole patchset. Prints the ratios.

    python benchmarks/scan_vs_pyhf.py ../shared/data/atlas-1lbb [--pyhf-points 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def _inputs(folder: Path) -> tuple[Path, Path]:
    suffix = ".json.gz" if (folder / "BkgOnly.json.gz").exists() else ".json"
    return folder / f"BkgOnly{suffix}", folder / f"patchset{suffix}"


def _load(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path) as f:
        return json.load(f)


def hfpipe_cold(background: Path, patchset: Path) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scan.parquet"
        start = time.perf_counter()
        subprocess.run(
            ["hfpipe", "scan", str(background), str(patchset), "-o", str(out)], check=True
        )
        seconds = time.perf_counter() - start
        import pandas as pd

        frame = pd.read_parquet(out)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    return seconds, peak_gb, int((frame["status"] == "ok").sum())


def hfpipe_warm(background: Path, patchset: Path) -> tuple[float, int]:
    from hfpipe.scanning import scan

    scan(background, patchset)  # compile
    start = time.perf_counter()
    frame = scan(background, patchset)
    return time.perf_counter() - start, len(frame)


def pyhf_per_point(background: Path, patchset: Path, n_points: int) -> float:
    import pyhf

    warnings.simplefilter("ignore")
    pyhf.set_backend("numpy", "scipy")
    workspace = pyhf.Workspace(_load(background))
    patches = pyhf.PatchSet(_load(patchset))
    names = [p.name for p in patches.patches][:: max(1, len(patches.patches) // n_points)]
    start = time.perf_counter()
    for name in names[:n_points]:
        patched = pyhf.Workspace(patches.apply(workspace, name))
        model = patched.model()
        pyhf.infer.hypotest(
            1.0, patched.data(model), model, test_stat="qtilde", return_expected_set=True
        )
    return (time.perf_counter() - start) / min(n_points, len(names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--pyhf-points", type=int, default=5)
    args = parser.parse_args()
    background, patchset = _inputs(args.folder)
    n_total = len(_load(patchset)["patches"])
    cold, peak, ok = hfpipe_cold(background, patchset)
    warm, _ = hfpipe_warm(background, patchset)
    per_point = pyhf_per_point(background, patchset, args.pyhf_points)
    pyhf_total = per_point * n_total
    print(f"points: {n_total} ({ok} ok)")
    print(f"hfpipe cold (process, compile included): {cold:.1f} s, peak RSS {peak:.2f} GB")
    print(f"hfpipe warm (compiled): {warm:.1f} s")
    print(f"pyhf numpy+scipy: {per_point:.2f} s/point x {n_total} = {pyhf_total:.0f} s")
    print(f"ratio pyhf / hfpipe: cold {pyhf_total / cold:.0f}x, warm {pyhf_total / warm:.0f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
