"""The plain ``hfpipe scan`` of ATLAS 1Lbb, cold: wall, CPU/wall, peak memory, agreement.

Each run is a fresh ``hfpipe scan BKG PATCHSET -o OUT`` process (no other flags: every
core the batches keep busy), timed from start to exit; its CPU time (user + system, its
worker processes included) over its wall time says how many cores it used, and the
resident memory of the process and all its children, sampled every 20 ms, gives the
peak. Runs with a warm compilation cache (the user's, filled by the first run) and with
a new, empty one (compilation included) are timed separately, ``--repeat`` times each,
and the same command with ``--workers 1`` once as the one-process baseline. Every
table is compared with the first one (one process): the largest difference of CLs,
limits and -2 ln L over all rows must be below 1e-8.

    python benchmarks/scan_cold.py [../shared/data/atlas-1lbb] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

VALUES = ["cls_obs", "cls_exp_m2", "cls_exp_m1", "cls_exp", "cls_exp_p1", "cls_exp_p2"]


def _inputs(folder: Path) -> list[str]:
    suffix = ".json.gz" if (folder / "BkgOnly.json.gz").exists() else ".json"
    return [str(folder / f"BkgOnly{suffix}"), str(folder / f"patchset{suffix}")]


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def run(command: list[str], env: dict) -> dict:
    """One fresh process: wall and CPU seconds, peak resident memory of its tree."""
    cpu0 = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    process, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            peak = max(peak, _tree_rss(process))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    if child.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    wall = time.perf_counter() - start
    cpu = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - cpu0
    return {"wall": wall, "cpu": cpu, "peak_gb": peak / 2**30}


def _largest_difference(frame: pd.DataFrame, reference: pd.DataFrame) -> float:
    a, b = frame.set_index("point"), reference.set_index("point")
    columns = [*VALUES, "twice_nll"]
    return float(np.nanmax(np.abs(a.loc[b.index, columns].to_numpy() - b[columns].to_numpy())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "atlas-1lbb"
    parser.add_argument("folder", nargs="?", type=Path, default=default)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    inputs = _inputs(args.folder)
    print(
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        warm = dict(os.environ, HFPIPE_COMPILATION_CACHE=str(tmp / "warm"))
        subprocess.run(
            ["hfpipe", "scan", *inputs, "-o", str(tmp / "fill.parquet")],
            env=warm,
            check=True,
            stderr=subprocess.DEVNULL,
        )  # fills the warm cache, untimed
        kinds = [
            ("one process (--workers 1), empty cache", ["--workers", "1"], False, 1),
            ("plain command, empty cache", [], False, args.repeat),
            ("plain command, warm cache", [], True, args.repeat),
        ]
        reference, count = None, 0
        for label, flags, use_warm, repeat in kinds:
            runs = []
            for _ in range(repeat):
                count += 1
                empty = dict(os.environ, HFPIPE_COMPILATION_CACHE=str(tmp / f"empty{count}"))
                out = tmp / f"scan{count}.parquet"
                command = ["hfpipe", "scan", *inputs, "-o", str(out), *flags]
                runs.append(run(command, warm if use_warm else empty))
                frame = pd.read_parquet(out)
                reference = frame if reference is None else reference
                runs[-1] |= {
                    "load": os.getloadavg()[0],
                    "diff": _largest_difference(frame, reference),
                    "ok": int((frame["status"] == "ok").sum()),
                }
            print(f"{label}: median {statistics.median(r['wall'] for r in runs):.1f} s wall")
            for r in runs:
                print(
                    f"  {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU (CPU/wall "
                    f"{r['cpu'] / r['wall']:.2f}), peak {r['peak_gb']:.2f} GB, "
                    f"{r['ok']}/{len(frame)} ok, largest |difference| to one process "
                    f"{r['diff']:.1e} (load {r['load']:.2f})",
                    flush=True,
                )
        print(f"command: hfpipe scan {' '.join(inputs)} -o OUT.parquet")


if __name__ == "__main__":
    main()
